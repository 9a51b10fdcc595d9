import json

import numpy as np
import pytest

from edge.decision import Matcher, distance
from edge.errors import FacelatchError
from edge.modelcard import load_card, models_dir


def test_distances():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert distance(a, b, "euclidean") == pytest.approx(np.sqrt(5))
    assert distance(a, b, "cosine") == pytest.approx(1.0)
    assert distance(a, 3 * a, "cosine") == pytest.approx(0.0)


def test_match_is_distance_at_most_threshold():
    m = Matcher(np.array([1.0, 0.0]), "cosine", threshold=0.1, fmr=1e-4)
    assert m.compare(np.array([1.0, 0.1])).is_match
    assert not m.compare(np.array([0.0, 1.0])).is_match


def test_card_thresholds_cover_door_fmrs_and_tighten():
    card = load_card(models_dir() / "facelatch_dlib_resnet_int8.json", kind="encoder")
    t3, t4 = card.threshold(1e-3), card.threshold(1e-4)
    assert 0 < t4 < t3  # a lower FMR means a stricter threshold
    assert card.threshold(5e-4) == t4  # between entries: the stricter one
    with pytest.raises(FacelatchError, match="no threshold"):
        card.threshold(1e-7)


def test_card_with_wrong_sha_is_refused(tmp_path):
    src = models_dir() / "face_landmark.json"
    (tmp_path / "face_landmark.tflite").write_bytes(b"not the model")
    (tmp_path / "face_landmark.json").write_text(src.read_text())
    with pytest.raises(FacelatchError, match="does not match its card"):
        load_card(tmp_path / "face_landmark.json")


def test_every_shipped_card_matches_its_model():
    cards = sorted(models_dir().glob("*.json"))
    assert len(cards) >= 4
    for c in cards:
        card = load_card(c)
        assert card.kind in {"encoder", "detector", "landmarks", "liveness"}
        assert json.loads(c.read_text())["provenance"]
