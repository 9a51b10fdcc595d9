"""Face quality gate: measures move the right way on real faces; a poor face is "no decision"."""

import json

import cv2
import numpy as np
import pytest

from conftest import DEMO, host_only, run_cli
from edge.quality import QualityGate, light_asymmetry, measure


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


# --- chip coverage and lighting asymmetry (issue 22): synthetic geometry, then a real face ---

from edge.align import Aligner, chip_coverage  # noqa: E402
from edge.geometry import clip_to_rect, polygon_area  # noqa: E402


def test_clipping_a_polygon_to_the_frame():
    square = np.array([[-5, -5], [5, -5], [5, 5], [-5, 5]], float)
    assert polygon_area(square) == pytest.approx(100)
    assert polygon_area(clip_to_rect(square, 100, 100)) == pytest.approx(25)  # one quadrant inside
    assert polygon_area(clip_to_rect(square + 50, 100, 100)) == pytest.approx(100)
    assert len(clip_to_rect(square - 20, 100, 100)) == 0
    diamond = np.array([[0, -10], [10, 0], [0, 10], [-10, 0]], float) + [10, 0]  # half above y = 0
    assert polygon_area(clip_to_rect(diamond, 100, 100)) == pytest.approx(100)


def _warp(scale: float, angle_deg: float, centre) -> np.ndarray:
    """Image-to-chip warp for a 100 px chip whose centre sits at image point ``centre``."""
    a = np.radians(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([r, (np.array([49.5, 49.5]) - r @ np.asarray(centre, float))[:, None]])


def test_chip_coverage_is_the_share_of_the_chip_inside_the_frame():
    frame = (480, 640, 3)
    assert chip_coverage(_warp(1.0, 0, (320, 240)), 100, frame) == pytest.approx(1.0)
    assert chip_coverage(_warp(1.0, 0, (-0.5, 240)), 100, frame) == pytest.approx(0.5)  # centred on the left edge
    assert chip_coverage(_warp(1.0, 0, (-0.5, -0.5)), 100, frame) == pytest.approx(0.25)  # on the corner
    assert chip_coverage(_warp(0.5, 30, (320, 240)), 100, frame) == pytest.approx(1.0)  # 200 px chip, rotated
    assert chip_coverage(_warp(1.0, 45, (-0.5, 240)), 100, frame) == pytest.approx(0.5)  # a diamond, halved
    assert chip_coverage(_warp(1.0, 0, (-200, 240)), 100, frame) == 0.0
    assert chip_coverage(_warp(0.1, 0, (320, 240)), 100, frame) == pytest.approx(480 * 640 / 1000 ** 2)


def test_a_fused_chip_is_as_covered_as_its_least_covered_member(face):
    from edge.fusion import FusedAligner

    rgb, _, pts = face
    small = Aligner([33, 263, 1], [[30.0, 50.0], [80.0, 50.0], [55.0, 70.0]], 112)
    wide = Aligner([33, 263, 1], [[50.0, 60.0], [60.0, 60.0], [55.0, 64.0]], 112)  # the face tiny in a wide chip
    fused = FusedAligner([small, wide])
    edge_frame = rgb[:, : int(pts[:, 0].max())]  # the frame ends at the face's right side
    covered = [a.coverage(pts, edge_frame.shape) for a in (small, wide)]
    assert covered[1] < covered[0] and fused.coverage(pts, edge_frame.shape) == min(covered)
    assert fused.face_region == small.face_region


def test_light_asymmetry_compares_the_halves_whatever_the_exposure():
    chip = np.full((112, 112, 3), 120, np.uint8)
    region = (20, 100, 10, 56, 102)
    assert light_asymmetry(chip, region) == 0.0
    chip[:, :56] = 40
    assert light_asymmetry(chip, region) == pytest.approx(80 / 160, abs=0.01)
    assert light_asymmetry(chip // 2, region) == pytest.approx(light_asymmetry(chip, region), abs=0.01)
    assert light_asymmetry(np.zeros_like(chip), region) == 0.0


def test_the_face_region_is_the_templates_face(pipeline):
    a = pipeline.finder.aligner
    top, bottom, left, middle, right = a.face_region
    t = np.asarray(a.aligners[0].template if hasattr(a, "aligners") else a.template)
    assert 0 <= top < t[:, 1].min() < t[:, 1].max() < bottom <= a.size
    assert 0 <= left < t[:, 0].min() < middle < t[:, 0].max() < right
    assert abs((middle - left) - (right - middle)) <= 2


def _chip_measures(pipeline, rgb):
    found = pipeline.analyze(rgb)
    assert found
    return found[0].quality.measures


def test_a_cut_off_face_loses_coverage_and_a_side_lit_one_gains_asymmetry(pipeline, face):
    if pipeline.quality is None:
        pytest.skip("the default encoder's card has no quality limits")
    rgb, box, _ = face
    base = _chip_measures(pipeline, rgb)
    assert base["chip_coverage"] == 1.0 and base["light_asymmetry"] < 0.15
    x, y, w, h = (int(v) for v in box)  # the frame ends at the face's box: a person standing very close
    tight = cv2.resize(rgb[y:y + h, x:x + w], (2 * w, 2 * h))
    assert _chip_measures(pipeline, tight)["chip_coverage"] < 0.8
    shade = np.clip((np.arange(rgb.shape[1]) - x - w / 4) / (w / 2), 0.05, 1.0)  # left of the face dark, right lit
    lit = np.clip(rgb * shade[None, :, None] * 1.3, 0, 255).astype(np.uint8)
    assert _chip_measures(pipeline, lit)["light_asymmetry"] > base["light_asymmetry"] + 0.2


def test_the_door_spends_no_liveness_or_encoder_time_on_a_face_it_will_not_judge(pipeline, face):
    rgb, _, _ = face
    dark = (rgb * 0.06).astype(np.uint8)
    [r] = pipeline.analyze(dark, embed="none")
    pipeline.examine(dark, r, look="first", skip_poor=True)
    assert not r.quality.ok and r.embedding is None and r.live_score is None and r.first_look is None
    pipeline.examine(dark, r, look="first")  # every other caller still gets them
    assert r.embedding is not None and (r.live_score is not None) == (pipeline.liveness is not None)


def test_a_chip_limit_without_the_chip_is_an_error_not_a_pass(face):
    rgb, box, pts = face
    with pytest.raises(ValueError, match="chip_coverage"):
        QualityGate({"chip_coverage": [0.7, None]}).check(rgb, box, pts)
    a = Aligner([33, 263, 1], [[30.0, 50.0], [80.0, 50.0], [55.0, 70.0]], 112)
    q = QualityGate({"chip_coverage": [0.999, None], "light_asymmetry": [None, 0.9]}).check(
        rgb, box, pts, a.chip(rgb, pts), a)
    assert q.ok and q.measures["chip_coverage"] == 1.0


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
    assert set(basis) == {"sharpness", "face_px", "yaw", "pitch", "chip_coverage", "light_asymmetry"}
    for measure, b in basis.items():
        fitted = [v for v in b["limit"]]
        if fitted != [None, None]:  # a limit in force is the fitted one
            assert tuple(fitted) == gate.limits[measure]
        assert b["bins"] and all(isinstance(x["fails"], bool) or (x["fails"] is None and x["ref_imp"] == 0)
                                 for x in b["bins"])  # None: an empty bin, skipped
        assert "rule" in b and "data" in b
    for measure in ("sharpness", "face_px", "pitch", "light_asymmetry"):  # measured on data for both encoders
        assert measure in gate.limits
    # cut-off crops never failed a dlib bin (its 150 px chip reaches less far around the face)
    assert ("chip_coverage" in gate.limits) == (name == "facelatch_sface_int8")


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
        aligner = pipes[name].finder.aligner
        q = gate.check(rgb, r.face.box, moved, aligner.chip(rgb, moved), aligner)
        assert not q.ok and q.reason.startswith(measure), (measure, q)


@host_only  # CLI wiring of the gate's reason; the door test covers the measure on every machine
def test_enroll_names_a_cut_off_face_and_writes_nothing(tmp_path, pipeline):
    from frames import close_up, crops

    close = tmp_path / "close.jpg"
    cv2.imwrite(str(close), close_up(crops()["obama_enroll"], 0.45), [cv2.IMWRITE_JPEG_QUALITY, 95])
    t = tmp_path / "t.json"
    rc, _, err = run_cli("enroll", DEMO / "enroll" / "obama2.jpg", close, "--template", t)
    low = pipeline.encoder_card.data["quality"]["enrol_limits"]["chip_coverage"][0]  # enrolment's, stricter
    assert rc == 2 and "close.jpg" in err and "chip_coverage" in err and f"< {low:g}" in err, err
    assert "with room around it" in err
    assert not t.exists()


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


def test_the_door_judges_a_side_lit_face_that_enrolment_refuses(tmp_path, pipeline):
    """Window light from one side: the door judges the face (a side-lit probe against an
    evenly lit template matches strangers no more often than the card says), enrolment
    refuses it as a template (two side-lit faces of different people do), naming the
    measure and what to do, and writes nothing."""
    q = pipeline.encoder_card.data["quality"]
    door, enrol = q["limits"]["light_asymmetry"][1], q["enrol_limits"]["light_asymmetry"][1]
    assert enrol < door
    rgb = read("enroll/obama.jpg")
    x, _, w, _ = (int(v) for v in pipeline.analyze(rgb)[0].face.box)
    shade = np.clip((np.arange(rgb.shape[1]) - x - w / 4) / (w / 2), 0.25, 1.0)  # the left of the face in shadow
    lit = np.clip(rgb * shade[None, :, None] * 1.3, 0, 255).astype(np.uint8)
    face = pipeline.analyze(lit)[0]
    assert enrol < face.quality.measures["light_asymmetry"] < door and face.quality.ok
    assert not pipeline.enrolment_quality(face).ok
    refused_for_enrolment_but_matched(tmp_path, lit, f"light_asymmetry {face.quality.measures['light_asymmetry']:g} "
                                      f"> {enrol:g}", "evenly")


def refused_for_enrolment_but_matched(tmp_path, rgb, reason: str, hint: str) -> None:
    """``facelatch enroll`` refuses this image in one line naming ``reason`` and ``hint``
    and writes nothing; against a template of the demo's good photo, the door's gate
    judges it and ``verify`` finds the match."""
    image = tmp_path / "poor.png"
    cv2.imwrite(str(image), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    t = tmp_path / "t.json"
    rc, _, err = run_cli("enroll", image, "--template", t)
    lines = [x for x in err.splitlines() if x.strip()]
    assert rc == 2 and len(lines) == 1 and reason in lines[0] and hint in lines[0], err
    assert not t.exists()
    rc, _, err = run_cli("enroll", DEMO / "enroll" / "obama.jpg", "--template", t)
    assert rc == 0, err
    rc, out, err = run_cli("--no-liveness", "verify", image, "--template", t, "--json")
    assert rc == 0 and json.loads(out.splitlines()[0])["decision"] == "match", (out, err)


def test_the_door_judges_a_close_face_that_enrolment_refuses(tmp_path, pipeline):
    """Standing close: the frame cuts a little off the chip.  The door judges the face (a
    cut-off probe against a whole-face template matches strangers no more often than the
    card says), enrolment refuses it as a template (two cut-off faces of different people
    match more often), says to step back, and writes nothing."""
    from frames import close_up, crops

    q = pipeline.encoder_card.data["quality"]
    door, enrol = q["limits"]["chip_coverage"][0], q["enrol_limits"]["chip_coverage"][0]
    assert door < enrol
    crop = crops()["obama_enroll"]
    for keep in (0.95, 0.9, 0.85, 0.8, 0.75, 0.7):
        face = pipeline.analyze(close_up(crop, keep))[0]
        if face.quality.measures["chip_coverage"] < enrol:
            break
    assert door <= face.quality.measures["chip_coverage"] < enrol and face.quality.ok, face.quality
    assert not pipeline.enrolment_quality(face).ok
    refused_for_enrolment_but_matched(tmp_path, close_up(crop, keep), f"chip_coverage "
                                      f"{face.quality.measures['chip_coverage']:g} < {enrol:g}", "with room around it")


@pytest.mark.parametrize("encoder", ["facelatch_sface_int8", "facelatch_dlib_resnet_int8", "facelatch_fusion_int8"])
def test_every_cards_enrolment_gate_judges_a_close_face_without_error(encoder):
    """A card's enrolment gate may limit a measure its door gate does not (dlib: chip
    coverage for enrolment only): the pipeline measures every face's chip, so enrolment
    judges the face and names the measure instead of failing."""
    from frames import close_up, crops

    from edge.pipeline import FacePipeline

    pipe = FacePipeline(encoder, liveness=None)
    enrol = pipe.encoder_card.data["quality"]["enrol_limits"]
    assert set(pipe.enrol_quality.limits) >= set(pipe.quality.limits) and "chip_coverage" in enrol
    face = pipe.analyze(close_up(crops()["obama_enroll"], 0.7))[0]
    q = pipe.enrolment_quality(face)
    assert not q.ok and q.reason.startswith("chip_coverage"), q
    whole = pipe.analyze(read("enroll/obama.jpg"))[0]
    assert pipe.enrolment_quality(whole).ok


def test_the_enrolment_gate_is_the_doors_with_the_cards_enrolment_limits():
    from edge.modelcard import load_card, models_dir

    card = load_card(models_dir() / "facelatch_sface_int8.json", kind="encoder")
    door, enrol = QualityGate.from_card(card), QualityGate.from_card(card, enrolment=True)
    assert set(door.limits) == set(enrol.limits)
    changed = {k for k in door.limits if door.limits[k] != enrol.limits[k]}
    assert changed == set(card.data["quality"]["enrol_limits"]) == {"light_asymmetry", "chip_coverage"}
    m = {k: (lo if lo is not None else hi) for k, (lo, hi) in enrol.limits.items()}  # every measure at enrolment's edge
    assert door.judge(m).ok and enrol.judge(m).ok
    for name, value in (("light_asymmetry", 0.5), ("chip_coverage", 0.8)):
        poor = {**m, name: value}
        assert door.judge(poor).ok and not enrol.judge(poor).ok and enrol.judge(poor).reason.startswith(name)
