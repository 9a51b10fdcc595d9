"""The ONE place that picks a TFLite interpreter.

Order: ``ai_edge_litert`` (LiteRT, int8 through XNNPACK, numpy 2) ->
``tflite_runtime`` (the `tflite` extra) -> ``tensorflow.lite``
(a workstation that has TensorFlow and nothing else).
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import os
import sys
import tempfile
from importlib import metadata

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
        raise FacelatchError("no TFLite interpreter found: pip install ai-edge-litert (x86-64, 64-bit ARM) or "
                             "tflite-runtime; 32-bit Raspberry Pi OS is not supported (docs/raspberry-pi.md)") from None


# Everything the interpreter's native side said in this process (it logs some things,
# like the XNNPACK line, only once per process), for `facelatch bench`.
_NATIVE_MESSAGES: list[str] = []


def native_messages() -> list[str]:
    return list(_NATIVE_MESSAGES)


class NativeLog:
    """Captures what the interpreter's C++ side writes to stderr (fd 2) while it is
    created: the CLI's stderr stays for our own one-line messages, yet nothing is
    lost.  ``text`` holds the captured lines afterwards (shown when creation fails;
    "XNNPACK delegate" in it says XNNPACK is on).  A native *crash* inside the block
    is not hidden either: faulthandler writes the fatal signal and the Python
    traceback to the real stderr."""

    def __init__(self):
        self.text = ""

    @contextlib.contextmanager
    def capture(self):
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield self
            return
        handler_was_on = faulthandler.is_enabled()
        real_stderr = os.fdopen(os.dup(saved), "w")
        try:
            with tempfile.TemporaryFile() as buf:
                faulthandler.enable(file=real_stderr)
                os.dup2(buf.fileno(), 2)
                try:
                    yield self
                finally:
                    os.dup2(saved, 2)
                    buf.seek(0)
                    self.text = buf.read().decode("utf-8", "replace")
                    _NATIVE_MESSAGES.extend(self.lines()[:20 - len(_NATIVE_MESSAGES)])
        finally:
            os.close(saved)
            faulthandler.disable()
            if handler_was_on:
                with contextlib.suppress(Exception):
                    faulthandler.enable()
            real_stderr.close()

    def lines(self) -> list[str]:
        return [ln for ln in self.text.splitlines() if ln.strip()]

    @property
    def xnnpack(self) -> bool:
        return "XNNPACK" in self.text


def runtime_name() -> str:
    return _interpreter_class()[1]


DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow.lite": "tensorflow"}


def runtime_description() -> str:
    """The interpreter in use and its package version, e.g. "ai_edge_litert 2.3.0"."""
    name = runtime_name()
    try:
        return f"{name} {metadata.version(DISTRIBUTIONS[name])}"
    except (KeyError, metadata.PackageNotFoundError):
        return name


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
        self.native_log = NativeLog()
        try:
            with self.native_log.capture():
                self.interpreter = Interpreter(model_path=path, num_threads=max(1, int(threads)))
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            native = " | ".join(ln.strip() for ln in self.native_log.lines())
            raise FacelatchError(f"not a usable TFLite model: {path} ({str(e).splitlines()[0]})"
                                 + (f"; the interpreter said: {native}" if native else "")) from None
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
    def xnnpack(self) -> bool | None:
        """Whether XNNPACK runs (part of) this model: its delegate node is in the
        execution plan.  None where the interpreter does not say."""
        try:
            return any(op.get("op_name") == "DELEGATE" for op in self.interpreter._get_ops_details())
        except Exception:  # an interpreter without the (private) ops listing
            return True if self.native_log.xnnpack else None

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
