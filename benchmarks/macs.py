"""Multiply-accumulates and size of a .tflite model, counted from its graph."""

from __future__ import annotations

import os

import numpy as np


def tflite_macs(path) -> int:
    from edge.runtime import TFLiteModel

    interp = TFLiteModel(path).interpreter
    shapes = {t["index"]: tuple(t["shape"]) for t in interp.get_tensor_details()}
    total = 0
    for op in interp._get_ops_details():
        name, ins, outs = op["op_name"], op["inputs"], op["outputs"]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) >= 2:
            out = shapes[outs[0]]  # (1, H, W, C)
            w = shapes[ins[1]]  # conv: (O, kh, kw, I); depthwise: (1, kh, kw, O)
            per_out = w[1] * w[2] * (w[3] if name == "CONV_2D" else 1)
            total += int(np.prod(out)) * int(per_out)
        elif name == "FULLY_CONNECTED" and len(ins) >= 2:
            w = shapes[ins[1]]  # (out, in)
            total += int(np.prod(shapes[outs[0]][:-1])) * int(w[0]) * int(w[1])
    return total


def model_size_mb(path) -> float:
    return os.path.getsize(path) / 1e6
