"""Liveness: the crop, the shipped model through the CLI, and NUAA checks (skipped without ../shared)."""

import json

import numpy as np
import pytest

from conftest import DEMO, SHARED, run_cli
from edge.liveness import FRAME, frame_patch, live_probability, parse_scale, shifted_crop, stacked_patches

NUAA = SHARED / "data" / "nuaa-train"


def test_patch_is_the_scaled_box_shifted_inside_the_frame():
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[110:130, 150:170] = 255  # a 20x20 white "face" in the middle
    patch = shifted_crop(rgb, (150, 110, 20, 20), 80, 4.0)  # an 80 px side for a 20 px face
    white = np.argwhere(patch[:, :, 0] > 128)
    assert patch.shape == (80, 80, 3)
    assert np.allclose(white.mean(0), [40, 40], atol=1.5) and 18 <= len(np.unique(white[:, 0])) <= 22
    # at the frame's corner the patch is shifted inside, not padded: the face sits in the corner of the patch
    rgb[:] = 40
    rgb[0:20, 0:20] = 255
    corner = shifted_crop(rgb, (0, 0, 20, 20), 80, 4.0)
    assert corner.min() >= 40 and corner[:15, :15].min() > 128 and corner[-10:, -10:].max() == 40
    # a face too big for the scale: the whole (smaller) side is used, never more
    big = shifted_crop(rgb, (60, 20, 200, 200), 80, 2.7)
    assert big.shape == (80, 80, 3)


def test_stacked_patches_and_fused_probability():
    rgb = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    stack = stacked_patches(rgb, (140, 100, 40, 40), 80, [2.7, 4.0])
    assert stack.shape == (80, 80, 6)
    assert np.array_equal(stack[:, :, :3], shifted_crop(rgb, (140, 100, 40, 40), 80, 2.7))
    # two members: P(live) is the mean of their softmax[1]
    logits = np.array([0.0, np.log(3.0), 0.0, 0.0, 0.0, 0.0])  # member 1: 3/5 live; member 2: 1/3
    assert np.isclose(live_probability(logits), (0.6 + 1 / 3) / 2)


def test_the_frame_member_sees_the_whole_4_3_frame_wherever_the_face_is():
    import cv2

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    whole = cv2.resize(rgb, (80, 80), interpolation=cv2.INTER_AREA)
    assert np.array_equal(frame_patch(rgb, 80), whole)  # a 4:3 frame: all of it
    stack = stacked_patches(rgb, (300, 200, 60, 60), 80, [2.7, FRAME])
    assert stack.shape == (80, 80, 6) and np.array_equal(stack[:, :, 3:], whole)
    assert np.array_equal(stacked_patches(rgb, (10, 10, 30, 30), 80, [FRAME]), whole)  # the face does not move it
    # a 16:9 camera: the centred 4:3 region (the sides go), not the frame squeezed
    wide = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    assert np.array_equal(frame_patch(wide, 80), cv2.resize(wide[:, 160:1120], (80, 80), interpolation=cv2.INTER_AREA))
    assert frame_patch(rng.integers(0, 256, (1, 5, 3), dtype=np.uint8), 80).shape == (80, 80, 3)


def test_a_crop_scale_is_a_positive_number_or_frame():
    from edge.errors import FacelatchError

    assert parse_scale(2.7) == 2.7 and parse_scale("4") == 4.0 and parse_scale("frame") == FRAME
    for bad in ("Frame", "wide", 0, -1, float("nan"), float("inf"), None, True, [2.7]):
        with pytest.raises(FacelatchError, match="crop scale"):
            parse_scale(bad)


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
def test_shipped_model_on_nuaa():
    """Printed photos rejected, live faces accepted at the card's threshold (NUAA's
    live frames were among those the threshold rule saw; its attacks were not)."""
    from edge.liveness import Liveness
    from edge.modelcard import load_card, models_dir
    from edge.pipeline import FaceFinder, read_image

    live = Liveness(load_card(models_dir() / "facelatch_liveness.json", kind="liveness"))
    finder = FaceFinder(None)
    scores = {"real": [], "attack": []}
    for kind in scores:
        for p in sorted((NUAA / kind).glob("*/*.jpg"))[::25]:
            rgb = read_image(p)
            scores[kind].append(live.score(rgb, finder.find(rgb, chips="none")[0].face))
    apcer = np.mean(np.array(scores["attack"]) >= live.threshold)
    bpcer = np.mean(np.array(scores["real"]) < live.threshold)
    assert len(scores["real"]) > 60 and apcer <= 0.02 and bpcer <= 0.02, (apcer, bpcer)


def test_card_records_provenance_and_leave_one_source_out_figures():
    from edge.modelcard import load_card, models_dir

    card = load_card(models_dir() / "facelatch_liveness.json", kind="liveness")
    d = card.data
    assert d["members"][0]["source_sha256"] == "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0"
    assert "Apache-2.0" in d["provenance"]["licence"] and "minivision" in d["provenance"]["weights"]
    per = d["evaluation"]["per_source"]
    assert {"nuaa", "dracarys", "dangthanhliem", "codersworld", "spp77"} <= set(per)
    assert 0 < d["threshold"]["live_score"] < 1


def test_installer_check_on_the_camera(tmp_path):
    """`facelatch liveness --camera`: the P(live) distribution of the person in front of
    the configured camera, and a warning (exit 1) when the configured threshold would
    reject more than 5 % of their frames."""
    import sys

    sys.path.insert(0, str(DEMO.parent.parent / "tests"))
    from frames import crops, frame, write_sequence

    seq = write_sequence(tmp_path / "cam", [frame()] * 3 + [frame(crops()["obama"])] * 6)
    for threshold, want_rc in ((0.0, 0), (0.999999, 1)):
        cfg = tmp_path / f"c{want_rc}.toml"
        cfg.write_text(f'[camera]\nsource = "images"\ndevice = "{seq}"\npace = false\n'
                       f'[liveness]\nthreshold = {threshold}\n[security]\nallow_insecure = true\n')
        rc, out, err = run_cli("liveness", "--camera", "--config", cfg, "--seconds", "30", "--json")
        assert rc == want_rc, err
        summary = json.loads(out)
        assert summary["frames"] == 9 and summary["face_frames"] == 6
        assert summary["threshold"] == round(threshold, 4) and 0 <= summary["min"] <= summary["median"] <= 1
        assert ("would reject" in err) == (want_rc == 1)
    empty = write_sequence(tmp_path / "empty", [frame()] * 3)
    cfg = tmp_path / "e.toml"
    cfg.write_text(f'[camera]\nsource = "images"\ndevice = "{empty}"\npace = false\n')
    rc, out, err = run_cli("liveness", "--camera", "--config", cfg, "--seconds", "30")
    assert rc == 2 and "no face" in err


def test_the_cards_head_is_checked_and_computed_as_written():
    import numpy as np
    import pytest

    from edge.errors import FacelatchError
    from edge.liveness import LinearHead, member_log_odds

    rng = np.random.default_rng(0)
    head = {"inputs": "features", "mean": rng.normal(size=6).tolist(), "std": rng.uniform(0.5, 2, 6).tolist(),
            "w": rng.normal(size=6).tolist(), "b": 0.3}
    h = LinearHead(head, members=2, features=6)
    f, z = rng.normal(size=6), rng.normal(size=6)
    want = 1 / (1 + np.exp(-(((f - np.array(head["mean"])) / np.array(head["std"])) @ np.array(head["w"]) + 0.3)))
    assert h(f, z) == pytest.approx(want)
    lo = LinearHead({**head, "inputs": "log_odds", "mean": [0, 0], "std": [1, 1], "w": [1, 2]}, members=2, features=6)
    assert lo(f, z) == pytest.approx(1 / (1 + np.exp(-(member_log_odds(z) @ [1, 2] + 0.3))))
    for bad in ({**head, "w": head["w"][:5]}, {**head, "std": [0.0] * 6}, {**head, "inputs": "pixels"}, {"w": 1}):
        with pytest.raises(FacelatchError, match="liveness card"):
            LinearHead(bad, members=2, features=6)


def test_a_damaged_head_is_a_one_line_error_not_a_door_that_never_opens(tmp_path):
    import json
    import shutil

    import numpy as np
    import pytest

    from edge.errors import FacelatchError
    from edge.liveness import LinearHead, Liveness
    from edge.modelcard import load_card, models_dir

    head = {"inputs": "features", "mean": [0.0] * 6, "std": [1.0] * 6, "w": [1.0] * 6, "b": 0.0}
    for bad in ({**head, "w": [float("nan")] * 6}, {**head, "b": float("inf")}, {**head, "mean": [float("-inf")] * 6}):
        with pytest.raises(FacelatchError, match="finite"):
            LinearHead(bad, members=2, features=6)
    card = json.loads((models_dir() / "facelatch_liveness.json").read_text())
    shutil.copy(models_dir() / "facelatch_liveness.tflite", tmp_path / "facelatch_liveness.tflite")
    for broken in ({**card, "head": {}}, {**card, "head": None}, {**card, "outputs": {"logits": 9}}):
        (tmp_path / "facelatch_liveness.json").write_text(json.dumps(broken))
        with pytest.raises(FacelatchError) as e:  # was: the members' mean at the head's threshold, or a crash per face
            Liveness(load_card(tmp_path / "facelatch_liveness.json", kind="liveness"))
        assert "\n" not in str(e.value)
    # numbers beyond any float: an integer b of 401 digits reaches float(), one of 5001 digits
    # stops json itself (Python's 4300-digit limit), nesting too deep stops it too; each was a traceback at start
    text = json.dumps(card)
    b = json.dumps(card["head"]["b"])
    assert text.count(b) == 1
    for odd in ("1" + "0" * 400, "1" + "0" * 5000, "[" * 100000 + "]" * 100000):
        (tmp_path / "facelatch_liveness.json").write_text(text.replace(b, odd))
        with pytest.raises(FacelatchError) as e:
            Liveness(load_card(tmp_path / "facelatch_liveness.json", kind="liveness"))
        assert "\n" not in str(e.value)
    (tmp_path / "facelatch_liveness.json").write_text(json.dumps(card))
    assert Liveness(load_card(tmp_path / "facelatch_liveness.json", kind="liveness")).head is not None
    assert np.isfinite(card["head"]["b"])


def test_an_int8_stack_with_features_is_dequantised_before_the_head(tmp_path):
    """A full-int8 liveness model (uint8 input, one int8 output of features then logits,
    as ``import-minifasnet --int8 --features`` writes it): the head reads the dequantised
    features, not the raw int8 codes."""
    pytest.importorskip("tensorflow")
    import keras

    from convert.quantize import to_tflite
    from edge.liveness import LinearHead, Liveness
    from edge.modelcard import load_card
    from edge.runtime import TFLiteModel, sha256_file

    rng = np.random.default_rng(0)
    inp = keras.Input((8, 8, 9), batch_size=1)
    x = keras.layers.Dense(15)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp)))  # 6 features + 9 logits
    model = keras.Model(inp, x)
    patches = rng.integers(0, 256, (40, 8, 8, 9)).astype(np.float32)
    (tmp_path / "live8.tflite").write_bytes(to_tflite(model, patches))
    raw = TFLiteModel(tmp_path / "live8.tflite")
    assert raw.input_dtype == np.uint8 and raw.outputs[0]["dtype"] == np.int8
    head = {"inputs": "features", "mean": rng.normal(size=6).tolist(), "std": rng.uniform(0.5, 2, 6).tolist(),
            "w": rng.normal(size=6).tolist(), "b": 0.1}
    card = {"kind": "liveness", "name": "live8", "sha256": sha256_file(tmp_path / "live8.tflite"),
            "crop": {"size": 8, "scales": [2.7, 4.0, 8.0]}, "outputs": {"features": 6, "logits": 9},
            "threshold": {"live_score": 0.5}, "head": head}
    (tmp_path / "live8.json").write_text(json.dumps(card))
    live = Liveness(load_card(tmp_path / "live8.json", kind="liveness"))
    patch = patches[0].astype(np.uint8)
    interp = raw.interpreter
    interp.set_tensor(raw.input["index"], patch[None])
    interp.invoke()
    q = interp.get_tensor(raw.outputs[0]["index"]).reshape(-1)
    scale, zero = raw.outputs[0]["quantization"]
    real = (q.astype(np.float32) - zero) * scale
    want = LinearHead(head, 3, 6)(real[:6], real[6:])
    assert live.score_patch(patch) == pytest.approx(want, abs=1e-6)
    assert live.score_patch(patch) != pytest.approx(LinearHead(head, 3, 6)(q[:6].astype(float), q[6:]), abs=1e-3)
    # and the dequantised output is the float model's, within the int8 step
    assert np.abs(real - model(patch[None].astype(np.float32)).numpy().reshape(-1)).max() < 4 * scale


def test_the_patch_moves_as_little_as_the_box():
    """Boxes differ by ~0.005 px between machines (float kernels): the patch, and so
    P(live), must not jump by a whole pixel when one does."""
    import cv2

    rgb = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 256, (1080, 1440, 3), dtype=np.uint8), (0, 0), 2)
    w = 61.3
    for scale in (2.7, 4.0, 8.0):
        corner = 300.0 + (w * scale - w) / 2 - 1e-4  # the patch's corner just short of a whole pixel
        box = np.array([corner, corner, w, w])
        a = shifted_crop(rgb, box, 80, scale).astype(int)
        b = shifted_crop(rgb, box + [2e-4, 2e-4, 0.0, 0.0], 80, scale).astype(int)  # ... and just past it
        assert np.abs(a - b).max() <= 1, scale


def test_any_box_gives_a_patch_of_the_image_never_an_exception():
    """Whatever box the detector hands over — off the frame, larger than it, degenerate,
    in a frame of any size — the patch is size x size RGB and made of the image's own
    values (interpolated, never padded with black)."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings, strategies as st

    coord = st.floats(-2000, 2000, allow_nan=False)

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(st.integers(1, 120), st.integers(1, 160), coord, coord, coord, coord,
           st.sampled_from([2.7, 4.0, 8.0, 1.0]), st.integers(0, 2**31))
    def check(img_h, img_w, x, y, w, h, scale, seed):
        rgb = np.random.default_rng(seed).integers(30, 220, (img_h, img_w, 3), dtype=np.uint8)
        patch = shifted_crop(rgb, (x, y, w, h), 80, scale)
        assert patch.shape == (80, 80, 3) and patch.dtype == np.uint8
        assert (patch.min(axis=(0, 1)) >= rgb.min(axis=(0, 1))).all()
        assert (patch.max(axis=(0, 1)) <= rgb.max(axis=(0, 1))).all()

    check()
