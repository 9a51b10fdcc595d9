"""Reader for dlib's binary serialization of a DNN (the ``.dat`` files written by
``dlib::serialize(path) << net``).

dlib writes a network recursively: every layer first writes its version number and
then its sub-network, and only after the sub-network returns does it write its own
details.  The byte stream is therefore

    loss layer header, version of every layer (outermost first) ...,
    input layer, details of layer 1, details of layer 2, ... (innermost first)

Tags and skips (``tagN``/``skipN``) write a version and nothing else, so the data
does not say which of the two they are, nor their id: the network topology comes
from the Keras definition in :mod:`convert.dlib_keras`, which consumes the flat list
of layers this module returns.

Primitive encodings (dlib/serialize.h):
- integers: one control byte (low nibble = byte count, 0x80 = negative) followed
  by that many little-endian bytes; zero is a single control byte 0x00... except
  dlib writes at least one byte, so 0 is ``01 00``.
- strings: an integer length then the raw bytes.
- bool: the character '1' or '0'.
- float/double: ``float_details``: mantissa (int64) then exponent (int16),
  value = mantissa * 2**exponent.
- tensor (version 2): num_samples, k, nr, nc then raw little-endian float32.
- alias_tensor (version 1): num_samples, k, nr, nc (a view into ``params``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class DlibFormatError(ValueError):
    """The file is not a dlib network of the kind this reader understands."""


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        n = self.int()
        if n < 0 or n > 1 << 16:
            raise DlibFormatError(f"implausible string length {n} at byte {self.pos}")
        return self._take(n).decode("latin-1")

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        # dlib reserves a few exponent values for inf / -inf / nan.
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent in (32002, 32003):
            return math.nan
        return math.ldexp(mantissa, exponent)

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"unsupported alias_tensor version {version} at byte {self.pos}")
        return tuple(self.int() for _ in range(4))


@dataclass
class Layer:
    """One computational layer as dlib stored it (``kind`` is dlib's class name
    without the version suffix, e.g. ``con``, ``affine``, ``relu``)."""

    kind: str
    params: dict = field(default_factory=dict)


@dataclass
class DlibNetwork:
    loss: str
    loss_params: dict
    input: dict
    layers: list  # innermost first; ``Layer("tag_or_skip")`` marks a tag/skip


def _read_details(r: _Reader) -> Layer:
    name = r.string()
    if name in ("con_4", "con_5", "con_6"):
        p = {"params": r.tensor(), "num_filters": r.int(), "nr": r.int(), "nc": r.int(),
             "stride_y": r.int(), "stride_x": r.int(), "padding_y": r.int(), "padding_x": r.int(),
             "filters_shape": r.alias_tensor(), "biases_shape": r.alias_tensor()}
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        p["use_bias"] = r.bool() if name in ("con_5", "con_6") else True
        if name == "con_6" and r.bool():
            raise DlibFormatError("con_ with a fused relu is not supported")
        n, k, nr, nc = p["filters_shape"]
        flat = p["params"].reshape(-1)
        p["filters"] = flat[: n * k * nr * nc].reshape(n, k, nr, nc)
        p["biases"] = flat[n * k * nr * nc: n * k * nr * nc + n] if p["use_bias"] else np.zeros(n, np.float32)
        return Layer("con", p)
    if name in ("fc_2", "fc_3"):
        p = {"num_outputs": r.int(), "num_inputs": r.int(), "params": r.tensor(),
             "weights_shape": r.alias_tensor(), "biases_shape": r.alias_tensor(), "bias_mode": r.int()}
        for _ in range(4):
            r.float()
        if name == "fc_3":
            r.bool()  # use_bias flag; bias_mode already says it
        n_in, n_out = p["num_inputs"], p["num_outputs"]
        flat = p["params"].reshape(-1)
        p["weights"] = flat[: n_in * n_out].reshape(n_in, n_out)
        p["has_bias"] = p["bias_mode"] == 0 and flat.size >= (n_in + 1) * n_out
        p["biases"] = flat[n_in * n_out:(n_in + 1) * n_out] if p["has_bias"] else np.zeros(n_out, np.float32)
        return Layer("fc", p)
    if name == "affine_":  # oldest form: params, gamma, beta, mode
        p = {"params": r.tensor(), "gamma_shape": r.alias_tensor(), "beta_shape": r.alias_tensor(), "mode": r.int()}
        return Layer("affine", _split_affine(p))
    if name == "affine_2":
        p = {"params": r.tensor(), "gamma_shape": r.alias_tensor(), "beta_shape": r.alias_tensor(),
             "mode": r.int(), "disabled": r.bool()}
        return Layer("affine", _split_affine(p))
    if name == "relu_":
        return Layer("relu")
    if name == "relu_2":
        return Layer("relu", {"disabled": r.bool()})
    if name == "add_prev_":
        return Layer("add_prev")
    if name in ("max_pool_", "max_pool_2", "avg_pool_", "avg_pool_2"):
        p = {"nr": r.int(), "nc": r.int(), "stride_y": r.int(), "stride_x": r.int()}
        if name.endswith("_2"):
            p["padding_y"], p["padding_x"] = r.int(), r.int()
        else:
            p["padding_y"] = p["padding_x"] = 0
        return Layer("max_pool" if name.startswith("max") else "avg_pool", p)
    raise DlibFormatError(f"unsupported dlib layer '{name}'")


def _split_affine(p: dict) -> dict:
    g = int(np.prod(p["gamma_shape"]))
    flat = p["params"].reshape(-1)
    p["gamma"] = flat[:g].copy()
    p["beta"] = flat[g:2 * g].copy()
    return p


def read_network(data: bytes) -> DlibNetwork:
    """Parse a serialized ``loss_<...><add_layer<...>>`` network."""
    r = _Reader(data)
    if r.int() != 1:
        raise DlibFormatError("not a dlib network file (no add_loss_layer header)")
    loss = r.string()
    if loss != "loss_metric_2" and loss != "loss_metric_":
        raise DlibFormatError(f"unsupported loss layer '{loss}'")
    loss_params = {"margin": r.float(), "dist_thresh": r.float()} if loss == "loss_metric_2" else {}

    # Versions, outermost first, down to the add_layer that holds the input layer (v3, or v2 when old).
    versions = []
    while True:
        v = r.int()
        if v == 3:
            break
        if v not in (1, 2):
            raise DlibFormatError(f"unexpected layer version {v} at byte {r.pos}")
        versions.append(v)
        if len(versions) > 10000:
            raise DlibFormatError("no input layer found")

    name = r.string()
    if name != "input_rgb_image_sized":
        raise DlibFormatError(f"unsupported input layer '{name}'")
    inp = {"avg_red": r.float(), "avg_green": r.float(), "avg_blue": r.float(), "nr": r.int(), "nc": r.int()}

    def trailing(input_layer: bool) -> None:
        for _ in range(3):
            r.bool()
        for _ in range(3):  # x_grad, cached_output, params_grad / grad_final
            r.tensor()
        if input_layer:
            r.int()  # _sample_expansion_factor

    layers = [_read_details(r)]
    trailing(True)
    for v in reversed(versions):
        if v == 1:
            layers.append(Layer("tag_or_skip"))
        else:
            layers.append(_read_details(r))
            trailing(False)
    if r.pos != len(data):
        raise DlibFormatError(f"{len(data) - r.pos} trailing bytes after the network")
    return DlibNetwork(loss, loss_params, inp, layers)


def read_network_file(path) -> DlibNetwork:
    with open(path, "rb") as f:
        return read_network(f.read())
