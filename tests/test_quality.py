"""Face quality gate: measures move the right way on real faces; a poor face is "no decision"."""

import json

import cv2
import numpy as np
import pytest

from conftest import DEMO, run_cli
from edge.quality import QualityGate, measure


@pytest.fixture(scope="module")
def face(pipeline):
    from edge.pipeline import read_image

    rgb = read_image(DEMO / "enroll" / "obama.jpg")
    r = pipeline.analyze(rgb)[0]
    return rgb, r.face.box, r.landmarks


def test_measures_follow_light_blur_and_pose(face):
    rgb, box, pts = face
    base = measure(rgb, box, pts)
    dark = measure((rgb * 0.15).astype(np.uint8), box, pts)
    flat = measure((128 + (rgb.astype(np.float32) - 128) * 0.2).astype(np.uint8), box, pts)
    blurred = measure(cv2.GaussianBlur(rgb, (0, 0), 4), box, pts)
    assert dark["brightness"] < 0.2 * base["brightness"] and dark["contrast"] < 0.2 * base["contrast"]
    assert flat["contrast"] < 0.3 * base["contrast"]
    assert blurred["sharpness"] < 0.2 * base["sharpness"]
    assert abs(base["yaw"]) < 0.15 and 0.2 < base["pitch"] < 0.8  # a frontal portrait
    turned = pts.copy()
    turned[1, 0] += 0.4 * np.linalg.norm(pts[263] - pts[33])  # nose tip moved sideways
    assert measure(rgb, box, turned)["yaw"] > base["yaw"] + 0.3
    assert base["face_px"] == pytest.approx(max(box[2], box[3]), abs=0.1)


def test_gate_names_the_first_failed_measure(face):
    rgb, box, pts = face
    gate = QualityGate({"brightness": [40, None], "face_px": [10, None]})
    assert gate.check(rgb, box, pts).ok
    q = gate.check((rgb * 0.1).astype(np.uint8), box, pts)
    assert not q.ok and q.reason.startswith("brightness") and "< 40" in q.reason


def test_verify_reports_a_too_dark_face_as_no_decision(tmp_path, pipeline):
    if pipeline.quality is None:
        pytest.skip("the default encoder's card has no quality limits")
    from edge.pipeline import read_image

    rc, _, err = run_cli("enroll", DEMO / "enroll" / "obama.jpg", "--template", tmp_path / "t.json")
    assert rc == 0, err
    rgb = read_image(DEMO / "probe" / "obama3.jpg")
    dark = tmp_path / "dark.png"
    cv2.imwrite(str(dark), cv2.cvtColor((rgb * 0.06).astype(np.uint8), cv2.COLOR_RGB2BGR))
    rc, out, err = run_cli("--no-liveness", "verify", dark, DEMO / "probe" / "obama3.jpg", "--template",
                           tmp_path / "t.json", "--json")
    assert rc == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert recs[0]["decision"] == "no decision"
    assert recs[0]["quality"]["reason"].startswith(("brightness", "contrast"))
    assert recs[1]["decision"] == "match"
