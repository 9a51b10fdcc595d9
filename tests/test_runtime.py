"""The interpreter's native stderr is captured, never lost: shown when creation fails,
and a native crash is visible on the real stderr."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, scaled
from edge import runtime
from edge.errors import FacelatchError

ENCODER = ROOT / "models" / "facelatch_dlib_resnet_int8.tflite"


def test_native_output_goes_to_the_buffer_not_to_stderr(capfd):
    log = runtime.NativeLog()
    with log.capture():
        os.write(2, b"ERROR: from C++\n")
    assert log.lines() == ["ERROR: from C++"]
    assert "from C++" not in capfd.readouterr().err
    os.write(2, b"after\n")  # fd 2 is back
    assert "after" in capfd.readouterr().err


def test_failed_creation_shows_what_the_interpreter_said(monkeypatch, tmp_path):
    class Failing:
        def __init__(self, model_path, num_threads):
            os.write(2, b"ERROR: Didn't find op for builtin opcode 'FOO'\nERROR: Registration failed.\n")
            raise RuntimeError("Failed to create interpreter")

    monkeypatch.setattr(runtime, "_interpreter_class", lambda: (Failing, "test"))
    with pytest.raises(FacelatchError) as e:
        runtime.TFLiteModel(ENCODER)
    msg = str(e.value)
    assert "\n" not in msg and "Failed to create interpreter" in msg
    assert "Didn't find op for builtin opcode 'FOO' | ERROR: Registration failed." in msg


def test_a_native_crash_while_creating_is_visible():
    # what QEMU 7.2 did to LiteRT's allocate_tensors: a segfault, formerly with no output at all
    code = ("import ctypes; from edge.runtime import NativeLog\n"
            "with NativeLog().capture():\n    ctypes.string_at(0)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=scaled(60))
    assert r.returncode != 0
    assert "Segmentation fault" in r.stderr and "string_at" in r.stderr


def test_real_model_loads_quietly_and_reports_xnnpack(capfd):
    m = runtime.TFLiteModel(ENCODER)
    assert capfd.readouterr().err == ""
    if m.runtime == "ai_edge_litert":
        assert m.xnnpack is True
