"""Liveness: the crop, the shipped model through the CLI, and NUAA checks (skipped without ../shared)."""

import json

import numpy as np
import pytest

from conftest import DEMO, SHARED, run_cli
from edge.liveness import liveness_crop

NUAA = SHARED / "data" / "nuaa-train"


def test_crop_is_centred_on_the_box_with_context():
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[90:110, 140:160] = 255  # a 20x20 white "face"
    crop = liveness_crop(rgb, (140, 90, 20, 20), 80, 4.0)  # 80 px side for a 20 px face
    assert crop.shape == (80, 80, 3)
    white = np.argwhere(crop[:, :, 0] > 128)
    assert np.allclose(white.mean(0), [39.5, 39.5], atol=1.0) and 18 <= len(np.unique(white[:, 0])) <= 22
    # outside the image is black
    edge = liveness_crop(rgb, (0, 0, 20, 20), 80, 4.0)
    assert edge[:20, :20].max() == 0


def test_liveness_cli_json(tmp_path):
    rc, out, err = run_cli("liveness", DEMO / "probe/obama3.jpg", DEMO / "probe/astronaut.jpg", "--json")
    assert rc == 0, err
    recs = [json.loads(l) for l in out.splitlines()]
    assert [r["faces"] for r in recs] == [1, 1]
    for r in recs:
        assert set(r) == {"path", "faces", "live_score", "live"} and 0.0 <= r["live_score"] <= 1.0
        assert isinstance(r["live"], bool)


def test_liveness_cli_no_face_and_bad_file(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "wall.png"), np.full((240, 320, 3), 200, np.uint8))
    (tmp_path / "x.jpg").write_text("nope")
    rc, out, err = run_cli("liveness", tmp_path / "wall.png", tmp_path / "x.jpg", "--json")
    recs = [json.loads(l) for l in out.splitlines()]
    assert rc == 1 and recs[0] == {"path": str(tmp_path / "wall.png"), "faces": 0, "live_score": None, "live": None}
    assert "error" in recs[1]


def test_verify_shows_liveness(tmp_path):
    tpl = tmp_path / "t.json"
    run_cli("enroll", DEMO / "enroll/obama.jpg", "--template", tpl)
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", tpl, "--json")
    rec = json.loads(out)
    assert rc == 0 and "live_score" in rec and isinstance(rec["live"], bool) and rec["live_threshold"] > 0
    rc, out, err = run_cli("--no-liveness", "verify", DEMO / "probe/obama3.jpg", "--template", tpl, "--json")
    assert "live_score" not in json.loads(out)


@pytest.mark.skipif(not NUAA.exists(), reason="../shared/data/nuaa-train not available")
def test_shipped_model_on_nuaa_test_subjects():
    """Subjects the model never saw in training or tuning: printed photos rejected,
    live faces accepted, at the card's threshold."""
    from edge.liveness import Liveness
    from edge.modelcard import load_card, models_dir
    from edge.pipeline import FaceFinder, read_image

    card = load_card(models_dir() / "facelatch_liveness_int8.json", kind="liveness")
    test_subjects = card.data["evaluation"]["subjects"]["test"]
    live = Liveness(card)
    finder = FaceFinder(None)
    scores = {"real": [], "attack": []}
    for kind in scores:
        for s in test_subjects:
            for p in sorted((NUAA / kind / f"{s:04d}").glob("*.jpg"))[::8]:
                rgb = read_image(p)
                scores[kind].append(live.score(rgb, finder.find(rgb, chips="none")[0].face))
    apcer = np.mean(np.array(scores["attack"]) >= live.threshold)
    bpcer = np.mean(np.array(scores["real"]) < live.threshold)
    assert apcer <= 0.07 and bpcer <= 0.15, (apcer, bpcer)
