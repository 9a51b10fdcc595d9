"""facelatch-convert quantize: int8 output, card, and the parity gate's exit status."""

import pytest

tf = pytest.importorskip("tensorflow")

from conftest import DEMO, ROOT  # noqa: E402


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    import keras

    from convert.train import small_encoder

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    small_encoder(150, 32, width=8).save(path)
    return path


def quantize(tiny_keras, out, *extra):
    from convert.cli import main

    return main(["quantize", str(tiny_keras), "--alignment", str(ROOT / "models/facelatch_dlib_resnet_int8.json"),
                 "--calibration", str(DEMO), "--count", "5", "-o", str(out), *extra])


def test_quantize_writes_int8_model_and_card(tiny_keras, tmp_path, capsys):
    from edge.modelcard import load_card
    from edge.runtime import TFLiteModel

    rc = quantize(tiny_keras, tmp_path / "tiny_int8.tflite", "--force")
    report = capsys.readouterr().out
    assert rc == 0 and "parity gate" in report and "median float-vs-int8 cosine" in report
    card = load_card(tmp_path / "tiny_int8.json", kind="encoder")  # sha256 verified
    assert card.data["quantization"] == "int8" and card.data["embedding"]["dim"] == 32
    m = TFLiteModel(card.model_path)
    assert m.input_dtype.__name__ == "uint8" and m.input_shape == (1, 150, 150, 3)


def test_gate_failure_exits_nonzero_unless_forced(tiny_keras, tmp_path, monkeypatch, capsys):
    import convert.quantize as q

    monkeypatch.setattr(q, "MIN_MEDIAN_COSINE", 1.01)  # no int8 model can pass this
    assert quantize(tiny_keras, tmp_path / "a_int8.tflite") == 1
    assert "FAILED" in capsys.readouterr().out
    assert not (tmp_path / "a_int8.tflite").exists() and not (tmp_path / "a_int8.json").exists()
    assert quantize(tiny_keras, tmp_path / "b_int8.tflite", "--force") == 0
