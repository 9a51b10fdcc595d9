"""Our Keras definition of OpenCV Zoo's SFace encoder (``face_recognition_sface_2021dec.onnx``),
filled from the ONNX file's initializers read by our own code.

The ONNX graph (opset 11, NCHW, input ``data`` 1x3x112x112 RGB 0..255) is a
MobileNetV1-style chain with PReLU activations::

    (x - 127.5) * 0.0078125
    14 x [Conv(3x3 full for the first, else depthwise 3x3 then pointwise 1x1) -> BatchNorm -> PRelu]
    BatchNorm -> Dropout -> Flatten (1024x7x7) -> Gemm 50176->128 -> BatchNorm  = ``fc1``

Deliberate, exact rewrites for the edge (TFLite, NHWC):
- every BatchNorm after a Conv is folded into that convolution;
- the BatchNorm after the last PRelu and the one after the Gemm are folded into the
  final dense layer; Dropout is the identity at inference;
- the Gemm's weights are re-ordered from NCHW flattening to NHWC flattening;
- convolution padding is explicit (ONNX pads 1 on every side; TensorFlow's "same"
  pads stride-2 convolutions asymmetrically);
- the input scaling stays a layer of its own (folding it into the first convolution
  would not be exact: that convolution zero-pads).

``prelu`` selects how the activations are written (equal in float):
- "dwrelu" (the default, what ships): ``z + relu((a - 1) * z)``, the slope a 1x1
  depthwise convolution with a fused ReLU, then ADD.  For a <= 1 that is PReLU
  (``(a - 1) z`` is positive exactly where z < 0).  The few channels with a > 1 are
  negated by their own convolution (z = -x) and negated back in the next layer's
  weights: ``-prelu(x) = z + relu((a - 1) z)`` then holds with a - 1 > 0.  Both ops
  run in int8 inside LiteRT's XNNPACK delegate and keep their own quantization
  scales;
- "prelu": Keras PReLU, i.e. TFLite PRELU, which XNNPACK does not run in int8 (the
  reference kernel and the partition breaks make that model ~10x slower).

``equalize`` (cross-layer range equalization, exact in float) is what makes the
int8 model agree with the float one; see its docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHIP_SIZE = 112
EMBEDDING_DIM = 128
PRELU_SPELLINGS = ("dwrelu", "prelu")


class SFaceFormatError(ValueError):
    """The ONNX file is not the SFace graph this importer knows."""


@dataclass
class ConvBlock:
    weight: np.ndarray  # ONNX layout (out, in/group, kh, kw)
    group: int
    stride: int
    pad: int
    bn: tuple  # (gamma, beta, mean, var, eps)
    alpha: np.ndarray  # PRelu slopes, (channels,)


@dataclass
class SFaceWeights:
    offset: float
    scale: float
    blocks: list = field(default_factory=list)
    head_bn: tuple = ()  # BatchNorm on the last feature map
    fc_weight: np.ndarray | None = None  # (128, 50176), NCHW flattening
    fc_bias: np.ndarray | None = None
    fc_bn: tuple = ()
    feature_shape: tuple = (1024, 7, 7)


def read_sface_onnx(path: Path) -> SFaceWeights:
    """Walk the ONNX graph in order and collect its weights, checking every node is
    one this definition reproduces."""
    import onnx
    from onnx import numpy_helper

    data = Path(path).read_bytes()  # a missing file is an OSError, not a format error
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # noqa: BLE001  (protobuf raises several kinds)
        raise SFaceFormatError(f"{path}: not an ONNX model ({e})") from None
    g = model.graph
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    if len(g.input) < 1 or [d.dim_value for d in g.input[0].type.tensor_type.shape.dim] != [1, 3, CHIP_SIZE, CHIP_SIZE]:
        raise SFaceFormatError(f"{path}: input is not 1x3x{CHIP_SIZE}x{CHIP_SIZE}")

    def attrs(node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def bn(node):
        a = attrs(node)
        gamma, beta, mean, var = (init[n] for n in node.input[1:5])
        return gamma, beta, mean, var, float(a.get("epsilon", 1e-5))

    nodes = list(g.node)
    ops = [n.op_type for n in nodes]
    if ops[:2] != ["Sub", "Mul"]:
        raise SFaceFormatError(f"{path}: expected the input scaling (Sub, Mul) first, found {ops[:2]}")
    w = SFaceWeights(offset=float(init[nodes[0].input[1]].reshape(-1)[0]),
                     scale=float(init[nodes[1].input[1]].reshape(-1)[0]))
    i = 2
    while i < len(nodes) and ops[i] == "Conv":
        if ops[i + 1:i + 3] != ["BatchNormalization", "PRelu"]:
            raise SFaceFormatError(f"{path}: node {i}: expected Conv, BatchNormalization, PRelu")
        a = attrs(nodes[i])
        pads, strides = list(a.get("pads", [0] * 4)), list(a.get("strides", [1, 1]))
        if len(set(pads)) != 1 or strides[0] != strides[1] or len(nodes[i].input) != 2:
            raise SFaceFormatError(f"{path}: node {i}: unsupported convolution {a}")
        w.blocks.append(ConvBlock(init[nodes[i].input[1]], int(a.get("group", 1)), int(strides[0]), int(pads[0]),
                                  bn(nodes[i + 1]), init[nodes[i + 2].input[1]].reshape(-1)))
        i += 3
    tail = ["BatchNormalization", "Dropout", "Flatten", "Gemm", "BatchNormalization"]
    if ops[i:] != tail:
        raise SFaceFormatError(f"{path}: expected the head {tail}, found {ops[i:]}")
    w.head_bn = bn(nodes[i])
    gemm = attrs(nodes[i + 3])
    if gemm.get("transB", 0) != 1 or gemm.get("alpha", 1.0) != 1.0 or gemm.get("beta", 1.0) != 1.0:
        raise SFaceFormatError(f"{path}: unsupported Gemm {gemm}")
    w.fc_weight, w.fc_bias = init[nodes[i + 3].input[1]], init[nodes[i + 3].input[2]]
    w.fc_bn = bn(nodes[i + 4])
    channels = w.blocks[-1].weight.shape[0]
    side = int(round((w.fc_weight.shape[1] / channels) ** 0.5))
    w.feature_shape = (channels, side, side)
    if channels * side * side != w.fc_weight.shape[1] or w.fc_weight.shape[0] != EMBEDDING_DIM:
        raise SFaceFormatError(f"{path}: dense layer {w.fc_weight.shape} does not fit the feature map")
    return w


def _fold_bn(weight_hwio: np.ndarray, bias: np.ndarray, bn: tuple, out_axis: int = -1):
    gamma, beta, mean, var, eps = bn
    k = gamma / np.sqrt(var + eps)
    shape = [1] * weight_hwio.ndim
    shape[out_axis] = -1
    return weight_hwio * k.reshape(shape), (bias - mean) * k + beta


def dense_head(w: SFaceWeights) -> tuple[np.ndarray, np.ndarray]:
    """The head (BatchNorm, Flatten, Gemm, BatchNorm) as one dense layer on the NHWC
    flattened feature map: (50176, 128) kernel and (128,) bias."""
    c, h, wd = w.feature_shape
    g, b, m, v, eps = w.head_bn
    k = g / np.sqrt(v + eps)  # per channel: x * k + (b - m * k)
    shift = b - m * k
    wt = w.fc_weight.reshape(EMBEDDING_DIM, c, h, wd)  # NCHW order
    kernel = wt * k[None, :, None, None]
    bias = w.fc_bias + np.einsum("ochw,c->o", wt, shift)
    kernel = kernel.transpose(2, 3, 1, 0).reshape(h * wd * c, EMBEDDING_DIM)  # NHWC flattening
    g2, b2, m2, v2, eps2 = w.fc_bn
    k2 = g2 / np.sqrt(v2 + eps2)
    return kernel * k2[None, :], (bias - m2) * k2 + b2


def activation_ranges(w: SFaceWeights, chips: np.ndarray) -> list[np.ndarray]:
    """Per block, per channel: max |pre-activation| of the float model over ``chips``."""
    import keras

    model = build_keras_model(w, prelu="prelu")
    names = [f"dw{n}" if b.group > 1 else f"conv{n}" for n, b in enumerate(w.blocks, 1)]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    ranges = [np.zeros(b.weight.shape[0]) for b in w.blocks]
    for chip in chips:
        for r, a in zip(ranges, probe(chip[None].astype(np.float32))):
            np.maximum(r, np.abs(np.asarray(a)).max(axis=(0, 1, 2)), out=r)
    return ranges


def equalize(w: SFaceWeights, ranges: list[np.ndarray]) -> SFaceWeights:
    """Cross-layer range equalization, exact in float: divide a block's output channel
    c by s_c (its BatchNorm's gamma and beta) and multiply the next layer's input
    channel c by s_c.  PReLU(z / s) = PReLU(z) / s for s > 0, so nothing else changes.
    Int8 gains because activations are quantized per tensor: without this, a few
    wide channels set the step for all.  Before a depthwise layer (per-channel
    weights) every channel is brought to the median range; before a pointwise or
    the dense layer, s balances activation and weight ranges (sqrt(r_act / r_w))."""
    import copy

    w = copy.deepcopy(w)
    c, h, wd = w.feature_shape
    for n, blk in enumerate(w.blocks):
        r_a = np.maximum(ranges[n], 1e-6)
        nxt = w.blocks[n + 1] if n + 1 < len(w.blocks) else None
        if nxt is not None and nxt.group > 1:
            s = r_a / np.median(r_a)
        else:
            if nxt is not None:
                r_w = np.abs(nxt.weight).max(axis=(0, 2, 3))
            else:  # the dense head, input channel c at every (h, w)
                g, b, m, v, eps = w.head_bn
                k = np.abs(g / np.sqrt(v + eps))
                r_w = np.abs(w.fc_weight.reshape(EMBEDDING_DIM, c, h, wd)).max(axis=(0, 2, 3)) * k
            s = np.sqrt(r_a / np.maximum(r_w, 1e-12))
            s = s / np.exp(np.mean(np.log(s)))
        gamma, beta, mean, var, eps = blk.bn
        blk.bn = (gamma / s, beta / s, mean, var, eps)
        if nxt is not None:
            shape = (-1, 1, 1, 1) if nxt.group > 1 else (1, -1, 1, 1)
            nxt.weight = nxt.weight * s.reshape(shape)
        else:
            g, b, m, v, eps = w.head_bn
            w.head_bn = (g * s, b, m / s, v, eps)
    return w


def build_keras_model(w: SFaceWeights, prelu: str = "dwrelu", name: str = "sface_2021dec"):
    """(1, 112, 112, 3) float RGB 0..255 -> (1, 128) ``fc1`` (not normalized), as the ONNX file."""
    import keras
    from keras import layers

    if prelu not in PRELU_SPELLINGS:
        raise ValueError(f"unknown PReLU spelling {prelu!r} (one of {', '.join(PRELU_SPELLINGS)})")
    inputs = keras.Input(shape=(CHIP_SIZE, CHIP_SIZE, 3), batch_size=1, name="chip")
    x = layers.Rescaling(w.scale, offset=-w.offset * w.scale, name="input_scaling")(inputs)
    sign_in = np.ones(3)  # -1 where the previous layer hands over a negated channel
    for n, blk in enumerate(w.blocks, 1):
        out_ch, in_per_group, kh, kw = blk.weight.shape
        # "same" equals ONNX's symmetric padding only for stride 1; stride 2 gets an explicit pad
        padding = "same" if blk.stride == 1 else "valid"
        if blk.stride != 1 and blk.pad:
            x = layers.ZeroPadding2D(blk.pad, name=f"pad{n}")(x)
        elif blk.stride == 1 and 2 * blk.pad != kh - 1:
            raise SFaceFormatError(f"block {n}: padding {blk.pad} is not 'same' for a {kh}x{kw} kernel")
        sign_out = np.where(blk.alpha > 1, -1.0, 1.0) if prelu == "dwrelu" else np.ones(out_ch)
        if blk.group > 1:
            if in_per_group != 1 or blk.group != out_ch:
                raise SFaceFormatError(f"block {n}: grouped convolution that is not depthwise")
            kernel = blk.weight.transpose(2, 3, 0, 1) * sign_in[None, None, :, None]  # (kh, kw, C, 1)
            kernel, bias = _fold_bn(kernel, np.zeros(out_ch), blk.bn, out_axis=2)
            kernel, bias = kernel * sign_out[None, None, :, None], bias * sign_out
            conv = layers.DepthwiseConv2D((kh, kw), strides=blk.stride, padding=padding, name=f"dw{n}")
        else:
            kernel = blk.weight.transpose(2, 3, 1, 0) * sign_in[None, None, :, None]  # (kh, kw, in, out)
            kernel, bias = _fold_bn(kernel, np.zeros(out_ch), blk.bn)
            kernel, bias = kernel * sign_out, bias * sign_out
            conv = layers.Conv2D(out_ch, (kh, kw), strides=blk.stride, padding=padding, name=f"conv{n}")
        x = conv(x)
        conv.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        if prelu == "dwrelu":  # z + relu((a - 1) * z); channels with a > 1 arrive negated (see the module doc)
            slope = layers.DepthwiseConv2D(1, use_bias=False, activation="relu", name=f"slope{n}")
            x = layers.Add(name=f"prelu{n}")([x, slope(x)])
            slope.set_weights([(blk.alpha - 1).reshape(1, 1, -1, 1).astype(np.float32)])
        elif prelu == "prelu":
            act = layers.PReLU(shared_axes=[1, 2], name=f"prelu{n}")
            x = act(x)
            act.set_weights([blk.alpha.reshape(1, 1, -1).astype(np.float32)])
        sign_in = sign_out
    kernel, bias = dense_head(w)
    kernel = kernel * np.tile(sign_in, kernel.shape[0] // len(sign_in))[:, None]  # NHWC: channel is fastest
    x = layers.Flatten(name="flatten")(x)
    fc = layers.Dense(EMBEDDING_DIM, name="embedding")
    x = fc(x)
    fc.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return keras.Model(inputs, x, name=name)
