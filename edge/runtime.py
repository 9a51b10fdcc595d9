"""The ONE place that picks a TFLite interpreter.

Order: ``ai_edge_litert`` (LiteRT, int8 through XNNPACK, numpy 2) ->
``tflite_runtime`` (older devices, e.g. 32-bit ARM) -> ``tensorflow.lite``
(a workstation that has TensorFlow and nothing else).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys

import numpy as np

from .errors import FacelatchError


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:  # last resort on a workstation; the device never needs TensorFlow
        import importlib

        return importlib.import_module("tensorflow").lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise FacelatchError("no TFLite interpreter found: pip install ai-edge-litert "
                             "(or tflite-runtime on 32-bit ARM)") from None


@contextlib.contextmanager
def _quiet_native_stderr():
    """LiteRT prints 'INFO: Created TensorFlow Lite XNNPACK delegate' from C++ on
    every interpreter; keep the CLI's stderr for our own one-line messages."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def runtime_name() -> str:
    return _interpreter_class()[1]


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TFLiteModel:
    """A loaded .tflite model with one input; hides quantization of input and outputs.

    ``run(x)`` takes float input in the model's *real* units (what the float model
    would take) or, for an int8/uint8 input, the already-integer values if
    ``x.dtype`` matches; returns the outputs as float32 arrays, dequantized.
    """

    def __init__(self, path, threads: int = 1):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FacelatchError(f"model file not found: {path}")
        Interpreter, self.runtime = _interpreter_class()
        try:
            with _quiet_native_stderr():
                self.interpreter = Interpreter(model_path=path, num_threads=max(1, int(threads)))
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise FacelatchError(f"not a usable TFLite model: {path} ({str(e).splitlines()[0]})") from None
        self.path = path
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise FacelatchError(f"model {path} has {len(inputs)} inputs, expected 1")
        self.input = inputs[0]
        self.outputs = self.interpreter.get_output_details()
        self.input_shape = tuple(int(v) for v in self.input["shape"])
        self.input_dtype = self.input["dtype"]
        scale, zero = self.input.get("quantization", (0.0, 0))
        self._in_scale, self._in_zero = float(scale), int(zero)

    @property
    def takes_raw_pixels(self) -> bool:
        """True when the input is uint8 quantized with scale 1, zero point 0: uint8
        pixels can be fed as they are, without a float round trip."""
        return self.input_dtype == np.uint8 and self._in_scale == 1.0 and self._in_zero == 0

    def pixels(self, img: np.ndarray) -> np.ndarray:
        """A uint8 image (H, W, 3) as this model's input batch of one."""
        return img[None] if self.takes_raw_pixels else img[None].astype(np.float32)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == self.input_dtype:
            return x
        if self.input_dtype in (np.int8, np.uint8):
            info = np.iinfo(self.input_dtype)
            q = np.round(x / self._in_scale + self._in_zero)
            return np.clip(q, info.min, info.max).astype(self.input_dtype)
        return x.astype(self.input_dtype)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input["index"], self._prepare(x).reshape(self.input_shape))
        self.interpreter.invoke()
        results = []
        for out in self.outputs:
            y = self.interpreter.get_tensor(out["index"])
            scale, zero = out.get("quantization", (0.0, 0))
            if y.dtype in (np.int8, np.uint8, np.int16) and scale:
                y = (y.astype(np.float32) - zero) * scale
            results.append(np.asarray(y, np.float32))
        return results
