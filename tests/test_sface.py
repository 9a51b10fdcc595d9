"""SFace import: our Keras definition equals onnxruntime and OpenCV's FaceRecognizerSF
on real aligned crops; the shipped int8 model agrees with the float import."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DEMO, ROOT

SFACE_ONNX = "face_recognition_sface_2021dec.onnx"


def _sface_onnx() -> Path | None:
    env = os.environ.get("FACELATCH_SFACE_ONNX")
    for p in ([Path(env)] if env else []) + [ROOT / ".ci-cache" / "models" / SFACE_ONNX]:
        if p.is_file():
            return p
    return None


def _real_chips() -> np.ndarray:
    """112x112 chips of the demo faces, cut by the device pipeline with the SFace card's alignment."""
    from edge.align import Aligner
    from edge.modelcard import load_card, models_dir
    from edge.pipeline import FaceFinder, read_image

    finder = FaceFinder(Aligner.from_card(load_card(models_dir() / "facelatch_sface_int8.json")))
    chips = [r.chip for p in sorted((DEMO / "enroll").glob("*")) + sorted((DEMO / "probe").glob("*"))
             for r in finder.find(read_image(p), chips="all")]
    assert len(chips) >= 6
    return np.stack(chips)


needs_reference = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "tensorflow")) or _sface_onnx() is None,
    reason=f"needs onnx, onnxruntime, TensorFlow and {SFACE_ONNX} (FACELATCH_SFACE_ONNX or .ci-cache/models)")


@pytest.fixture(scope="module")
def imported():
    from convert.sface import build_keras_model, read_sface_onnx

    return read_sface_onnx(_sface_onnx()), build_keras_model


@needs_reference
@pytest.mark.parametrize("prelu,equalized", [("dwrelu", True), ("dwrelu", False), ("prelu", False)])
def test_keras_import_matches_onnxruntime_and_opencv_on_real_chips(imported, prelu, equalized):
    import cv2
    import onnxruntime as ort

    from convert.sface import activation_ranges, equalize

    weights, build = imported
    if equalized:
        weights = equalize(weights, activation_ranges(weights, _real_chips()[:3]))
    model = build(weights, prelu=prelu)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(_sface_onnx()), opts)
    recognizer = cv2.FaceRecognizerSF.create(str(_sface_onnx()), "")
    worst_ort = worst_cv = 0.0
    for chip in _real_chips():
        ours = model(chip[None].astype(np.float32)).numpy()[0]
        ref = sess.run(None, {"data": chip[None].astype(np.float32).transpose(0, 3, 1, 2)})[0][0]
        ocv = recognizer.feature(cv2.cvtColor(chip, cv2.COLOR_RGB2BGR)).reshape(-1)  # it swaps to RGB itself
        worst_ort = max(worst_ort, float(np.abs(ours - ref).max()))
        worst_cv = max(worst_cv, float(np.abs(ours - ocv).max()))
    assert 0 < worst_ort <= 1e-4 and 0 < worst_cv <= 1e-4, (worst_ort, worst_cv)


@needs_reference
def test_shipped_int8_agrees_with_the_float_import(imported):
    from edge.embed import Embedder, l2_normalize
    from edge.modelcard import load_card, models_dir

    weights, build = imported
    model = build(weights)
    card = load_card(models_dir() / "facelatch_sface_int8.json", kind="encoder")
    embedder = Embedder(card)
    for chip in _real_chips():
        ref = model(chip[None].astype(np.float32)).numpy()[0]
        ref = ref + model(chip[None, :, ::-1].astype(np.float32)).numpy()[0] if card.data["embedding"]["flip_average"] else ref
        assert float(embedder.embed(chip) @ l2_normalize(ref)) > 0.98


def test_import_sface_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x07not an onnx file" * 10)
    have_onnx = importlib.util.find_spec("onnx") is not None  # without it the command says so first
    cases = [(["import-sface", str(tmp_path / "missing.onnx"), str(tmp_path / "o.keras")],
              "No such file" if have_onnx else "needs onnx")]
    if have_onnx:
        cases.append((["import-sface", str(tmp_path / "bad.onnx"), str(tmp_path / "o.keras")], "not an ONNX model"))
    for args, words in cases:
        r = subprocess.run([sys.executable, "-m", "convert.cli", *args], cwd=ROOT, capture_output=True, text=True)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr
        assert not (tmp_path / "o.keras").exists()
