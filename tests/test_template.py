import os
import stat

import numpy as np
import pytest

from edge.errors import FacelatchError
from edge.template import Template, load_template


def make(sha="a" * 64):
    return Template(sha, np.random.default_rng(0).normal(size=(2, 128)).astype(np.float32), "cosine", sources=["x.jpg"])


def test_roundtrip_mode_0600_and_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "t.json"
    make().save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(path.parent) == ["t.json"]
    t = load_template(path, "a" * 64)
    assert t.embeddings.shape == (2, 128)
    assert np.allclose(t.reference, make().reference, atol=1e-6)


def test_other_model_is_refused(tmp_path):
    make().save(tmp_path / "t.json")
    with pytest.raises(FacelatchError, match="another model.*re-enroll"):
        load_template(tmp_path / "t.json", "b" * 64)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01garbage", "corrupt"),
    (b'{"format": "something-else"}', "not a facelatch template"),
    (b'{"format": "facelatch-template", "version": 99}', "version"),
    (b'{"format": "facelatch-template", "version": 1, "model_sha256": "a", "metric": "cosine", "embeddings": []}', "corrupt"),
])
def test_bad_templates_give_clear_errors(tmp_path, content, message):
    p = tmp_path / "t.json"
    p.write_bytes(content)
    with pytest.raises(FacelatchError, match=message):
        load_template(p)


def test_missing_template(tmp_path):
    with pytest.raises(FacelatchError, match="enroll first"):
        load_template(tmp_path / "none.json")
