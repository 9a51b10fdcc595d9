"""Workstation side: dlib format reader, metrics, and parity with dlib itself."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from convert.dlib_format import DlibFormatError, _Reader, read_network
from convert.metrics import best_threshold, kfold_accuracy, threshold_at_fmr
from conftest import DEMO


def test_dlib_integer_string_float_encoding():
    r = _Reader(bytes([0x01, 0x0D, 0x81, 0x05, 0x02, 0x00, 0x01, 0x01, 0x02]) + b"ab" + bytes([0x01, 0x03, 0x81, 0x01]))
    assert r.int() == 13 and r.int() == -5 and r.int() == 256
    assert r.string() == "ab"
    assert r.float() == 1.5  # mantissa 3 * 2**-1


def test_not_a_dlib_network_is_refused():
    with pytest.raises(DlibFormatError):
        read_network(b"PK\x03\x04 this is a zip")


def test_best_threshold_and_kfold():
    dist = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9] * 2)
    same = np.array([1, 1, 1, 0, 0, 0] * 2, bool)
    assert 0.3 < best_threshold(dist, same) < 0.7
    accs, _ = kfold_accuracy(dist, same, np.repeat([0, 1], 6))
    assert np.all(accs == 1.0)


def test_threshold_at_fmr_counts_impostors():
    imp = np.arange(1, 10001) / 10000.0  # 10,000 impostor distances
    t = threshold_at_fmr(imp, 1e-3)
    assert np.sum(imp <= t) == 10
    assert np.sum(imp <= threshold_at_fmr(imp, 1e-5)) == 0


def _dlib_dat() -> Path | None:
    env = os.environ.get("FACELATCH_DLIB_DIR")
    candidates = [Path(env)] if env else []
    if importlib.util.find_spec("face_recognition_models"):
        import face_recognition_models

        candidates.append(Path(face_recognition_models.__file__).parent / "models")
    for d in candidates:
        if (d / "dlib_face_recognition_resnet_model_v1.dat").exists() and (d / "shape_predictor_5_face_landmarks.dat").exists():
            return d
    return None


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None or importlib.util.find_spec("tensorflow") is None
                    or _dlib_dat() is None,
                    reason="needs dlib-bin, TensorFlow and the dlib models (FACELATCH_DLIB_DIR or face_recognition_models)")
def test_keras_import_matches_dlib_on_real_chips():
    import dlib

    from convert.dlib_format import read_network_file
    from convert.dlib_keras import build_keras_model
    from edge.pipeline import read_image

    d = _dlib_dat()
    model = build_keras_model(read_network_file(d / "dlib_face_recognition_resnet_model_v1.dat"))
    rec = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))
    sp = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
    hog = dlib.get_frontal_face_detector()
    worst = 0.0
    for p in sorted((DEMO / "enroll").glob("*")) + sorted((DEMO / "probe").glob("*")):
        rgb = read_image(p)
        for det in hog(rgb, 1):
            chip = dlib.get_face_chip(rgb, sp(rgb, det), size=150, padding=0.25)
            ours = model(chip[None].astype(np.float32)).numpy()[0]
            worst = max(worst, float(np.abs(ours - np.array(rec.compute_face_descriptor(chip))).max()))
    assert 0 < worst <= 1e-4


def test_convert_cli_bad_inputs_are_one_line_errors(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "bad.dat").write_bytes(b"\x07" * 100)
    for args, words in ((["import-dlib", str(tmp_path / "missing.dat"), str(tmp_path / "o.keras")], "No such file"),
                        (["import-dlib", str(tmp_path / "bad.dat"), str(tmp_path / "o.keras")], "not a dlib network"),
                        (["evaluate", str(tmp_path / "none.json"), "--lfw", str(tmp_path)], "not found")):
        r = subprocess.run([sys.executable, "-m", "convert.cli", *args], cwd=ROOT, capture_output=True, text=True)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr


def test_fmr_interval_is_the_exact_poisson_interval():
    from convert.metrics import fmr_interval, fmr_upper_bound

    assert fmr_interval(0, 1)[0] == 0 and fmr_interval(0, 1)[1] == pytest.approx(3.6889, abs=1e-3)
    lo, hi = fmr_interval(10, 1000)  # textbook exact Poisson limits for 10 events: 4.795, 18.390
    assert lo == pytest.approx(4.795e-3, abs=1e-6) and hi == pytest.approx(18.390e-3, abs=1e-6)
    assert fmr_upper_bound(0, 1) == pytest.approx(2.9957, abs=1e-3)  # one-sided 95 %: -ln 0.05


def test_threshold_at_fmr_bound_is_stricter_with_few_impostors_in_the_tail():
    from convert.metrics import fmr_upper_bound, threshold_at_fmr_bound

    imp = np.arange(1, 100001) / 100000.0  # 100,000 impostors: FMR 1e-4 is 10 of them
    k = int(np.sum(imp <= threshold_at_fmr_bound(imp, 1e-4)))
    assert k < 10 and fmr_upper_bound(k, len(imp)) <= 1e-4 < fmr_upper_bound(k + 1, len(imp))
    # with 100x the impostors the bound costs little: close to the point estimate
    big = np.arange(1, 10000001) / 10000000.0
    assert 900 < np.sum(big <= threshold_at_fmr_bound(big, 1e-4)) < 1000


def test_strictest_threshold_holds_on_every_source():
    from convert.metrics import fmr_upper_bound, strictest_threshold

    rng = np.random.default_rng(0)
    loose, tight = rng.uniform(0, 1, 200000), rng.uniform(0.05, 1, 50000)  # "loose" has more close impostors
    t, source = strictest_threshold({"loose": loose, "tight": tight}, 1e-3)
    assert source == "loose"
    for d in (loose, tight):
        assert fmr_upper_bound(int(np.sum(d <= t)), len(d)) <= 1e-3
