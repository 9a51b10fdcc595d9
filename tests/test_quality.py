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


# --- the cards' measured limits (benchmarks/quality_limits.py) on real, degraded faces ---

from edge.modelcard import load_card, models_dir  # noqa: E402

CARDS = ("facelatch_sface_int8", "facelatch_dlib_resnet_int8")


@pytest.fixture(scope="module")
def pipes(pipeline):
    from edge.pipeline import FacePipeline

    return {name: pipeline if pipeline.encoder_card.data["name"] == name else FacePipeline(name, liveness=None)
            for name in CARDS}


def limits(name: str) -> dict:
    return load_card(models_dir() / f"{name}.json", kind="encoder").data["quality"]["limits"]


def read(name: str):
    from edge.pipeline import read_image

    return read_image(DEMO / name)


@pytest.mark.parametrize("name", CARDS)
def test_card_limits_load_with_their_measured_basis(name):
    card = load_card(models_dir() / f"{name}.json", kind="encoder")
    gate = QualityGate.from_card(card)
    basis = card.data["quality"]["limit_basis"]
    assert set(basis) == {"sharpness", "face_px", "yaw", "pitch"}
    for measure, b in basis.items():
        fitted = [v for v in b["limit"]]
        if fitted != [None, None]:  # a limit in force is the fitted one
            assert tuple(fitted) == gate.limits[measure]
        assert b["bins"] and all(isinstance(x["fails"], bool) for x in b["bins"])
        assert "rule" in b and "data" in b
    for measure in ("sharpness", "face_px", "pitch"):  # measured on data for both encoders
        assert measure in gate.limits


@pytest.mark.parametrize("name", CARDS)
def test_the_original_faces_pass_every_limit(name, pipes):
    for image in ("enroll/obama.jpg", "enroll/obama2.jpg"):
        q = pipes[name].analyze(read(image))[0].quality
        assert q is not None and q.ok, (image, q)


@pytest.mark.parametrize("name", CARDS)
def test_a_blurred_face_is_refused_for_sharpness(name, pipes):
    low = limits(name)["sharpness"][0]
    rgb = read("enroll/obama.jpg")
    for sigma in (2, 4, 6, 9, 12):
        found = pipes[name].analyze(cv2.GaussianBlur(rgb, (0, 0), sigma))
        assert found, sigma
        if found[0].quality.measures["sharpness"] < low:
            break
    q = found[0].quality
    assert not q.ok and q.reason.startswith("sharpness") and f"< {low:g}" in q.reason


@pytest.mark.parametrize("name", CARDS)
def test_a_far_away_face_is_refused_for_size(name, pipes):
    low = limits(name)["face_px"][0]
    rgb = read("enroll/obama.jpg")
    base = pipes[name].analyze(rgb)[0].quality.measures["face_px"]
    f = 0.8 * low / base  # the whole frame shrunk: the face ends a fifth under the limit
    small = cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)), interpolation=cv2.INTER_AREA)
    found = pipes[name].analyze(small)
    assert found
    q = found[0].quality
    assert not q.ok and q.reason.startswith("face_px"), q


@pytest.mark.parametrize("name", CARDS)
def test_turned_faces_are_refused_for_pose(name, pipes):
    """Pitch and yaw come from the landmarks: real faces of the group photo outside the
    limits are refused; where no fixture face is outside a limit, the frontal face's nose
    tip is moved past it (the measure is a ratio of landmarks)."""
    lim = limits(name)
    group = pipes[name].analyze(read("probe/group_photo.jpg"), embed="all")
    outside = [r.quality for r in group if r.quality.measures["pitch"] > lim["pitch"][1]]
    assert outside and all(not q.ok and q.reason.startswith("pitch") for q in outside)
    if lim["yaw"][1] < 0.36:  # the group photo's largest face is turned (yaw -0.36): refused by the yaw limit alone
        turned = [r for r in group if abs(r.quality.measures["yaw"]) > lim["yaw"][1]]
        yaw_only = QualityGate({"yaw": lim["yaw"]})
        assert turned and all(not yaw_only.check(read("probe/group_photo.jpg"), r.face.box, r.landmarks).ok
                              for r in turned)
    rgb = read("enroll/obama.jpg")
    r = pipes[name].analyze(rgb)[0]
    gate = QualityGate.from_card(pipes[name].encoder_card)
    pts = r.landmarks.astype(np.float64)
    eye = np.linalg.norm(pts[263] - pts[33])
    down = pts[[61, 291]].mean(0)[1] - pts[[33, 263]].mean(0)[1]
    checks = [("pitch", 1, (lim["pitch"][0] - 0.05 - r.quality.measures["pitch"]) * down)]
    if lim.get("yaw", [None, None])[1] is not None:
        checks.append(("yaw", 0, (lim["yaw"][1] + 0.05 - r.quality.measures["yaw"]) * eye))
    for measure, axis, shift in checks:
        moved = pts.copy()
        moved[1, axis] += shift
        q = gate.check(rgb, r.face.box, moved)
        assert not q.ok and q.reason.startswith(measure), (measure, q)


def test_enroll_refuses_a_face_too_poor_to_judge_and_writes_nothing(tmp_path, pipeline):
    low = pipeline.quality.limits["sharpness"][0]
    rgb = read("enroll/obama.jpg")
    for sigma in (4, 6, 9, 12):
        blurred = cv2.GaussianBlur(rgb, (0, 0), sigma)
        if pipeline.analyze(blurred)[0].quality.measures["sharpness"] < low:
            break
    poor = tmp_path / "blurred.jpg"
    cv2.imwrite(str(poor), cv2.cvtColor(blurred, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    t = tmp_path / "t.json"
    rc, out, err = run_cli("enroll", DEMO / "enroll" / "obama2.jpg", poor, "--template", t)
    lines = [x for x in err.splitlines() if x.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "blurred.jpg" in lines[0] and "sharpness" in lines[0] and f"< {low:g}" in lines[0]
    assert not t.exists()
    rc, _, err = run_cli("enroll", DEMO / "enroll" / "obama.jpg", "--template", t)
    assert rc == 0, err
    before = t.read_bytes()
    rc, _, err = run_cli("enroll", poor, "--add", "--template", t)
    assert rc == 2 and "sharpness" in err and t.read_bytes() == before
