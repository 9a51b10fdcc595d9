"""Our Keras definition of dlib's face-recognition ResNet
(``dlib_face_recognition_resnet_model_v1``), filled from a parsed ``.dat``.

dlib defines the network (dnn_face_recognition_ex.cpp) as::

    fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>

    alevel4 = 3 x ares<32>          alevel3 = ares_down<64>, then 3 x ares<64>
    alevel2 = ares_down<128>, 2 x ares<128>   alevel1 = ares_down<256>, 2 x ares<256>
    alevel0 = ares_down<256>

    ares<N>      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))
    ares_down<N> = relu(avg_pool2x2(x) + affine(con3x3(relu(affine(con3x3/2(x))))))

dlib's ``add_prev`` adds tensors of different shapes by zero-extending the smaller
one at the end of each axis (channels, rows, columns); ``ares_down`` relies on that
both for channel growth and for the odd spatial sizes (e.g. 3x3 block output + 4x4
pooled input -> 4x4).

Deliberate, exact rewrites for the edge:
- every ``affine`` (dlib's frozen batch-norm) is folded into the convolution before it;
- the input normalization ``(pixel - mean) / 256`` is folded into the first
  convolution (exact because that convolution has no padding), so the model takes
  RGB pixels 0..255 as float.
"""

from __future__ import annotations

import numpy as np

from .dlib_format import DlibFormatError, DlibNetwork

CHIP_SIZE = 150
EMBEDDING_DIM = 128


def _ares(n: int, down: bool) -> list[tuple]:
    body = [("tag1",), ("con", n, 2 if down else 1), ("affine",), ("relu",), ("con", n, 1), ("affine",)]
    if down:
        return body + [("tag2",), ("skip1",), ("avg_pool", 2), ("add_prev", "tag2"), ("relu",)]
    return body + [("add_prev", "tag1"), ("relu",)]


def architecture() -> list[tuple]:
    """The network as dlib serializes it, innermost layer first."""
    spec = [("con", 32, 2), ("affine",), ("relu",), ("max_pool", 3)]
    levels = [(32, 0, 3), (64, 1, 3), (128, 1, 2), (256, 1, 2), (256, 1, 0)]  # (filters, down?, plain blocks)
    for n, down, plain in levels:
        if down:
            spec += _ares(n, True)
        for _ in range(plain):
            spec += _ares(n, False)
    return spec + [("avg_pool_everything",), ("fc", EMBEDDING_DIM)]


def _check_matches(net: DlibNetwork, spec: list[tuple]) -> None:
    if len(net.layers) != len(spec):
        raise DlibFormatError(f"expected {len(spec)} layers (dlib face ResNet v1), file has {len(net.layers)}")
    for i, (layer, want) in enumerate(zip(net.layers, spec)):
        kind = want[0]
        expected = {"tag1": "tag_or_skip", "tag2": "tag_or_skip", "skip1": "tag_or_skip",
                    "avg_pool_everything": "avg_pool"}.get(kind, kind)
        if layer.kind != expected:
            raise DlibFormatError(f"layer {i}: expected {kind}, file has {layer.kind}")
        if kind == "con" and (layer.params["num_filters"] != want[1] or layer.params["stride_y"] != want[2]):
            raise DlibFormatError(f"layer {i}: conv shape differs from dlib face ResNet v1")
    if net.input["nr"] != CHIP_SIZE or net.input["nc"] != CHIP_SIZE:
        raise DlibFormatError("input is not a 150x150 RGB chip")


def build_keras_model(net: DlibNetwork, name: str = "dlib_resnet_v1"):
    """Return a Keras model: (1, 150, 150, 3) float RGB 0..255 -> (1, 128) descriptor
    (dlib's raw, un-normalized ``compute_face_descriptor`` output)."""
    import keras
    from keras import layers

    from .layers import ZeroExtend

    spec = architecture()
    _check_matches(net, spec)
    mean = np.array([net.input["avg_red"], net.input["avg_green"], net.input["avg_blue"]], np.float32)

    inputs = keras.Input(shape=(CHIP_SIZE, CHIP_SIZE, 3), batch_size=1, name="chip")
    x = inputs
    tags: dict[str, object] = {}
    pending_conv = None  # (layer params) waiting for its affine to be folded in
    first_conv = True
    conv_index = 0

    def emit_conv(p, gamma, beta):
        nonlocal x, first_conv, conv_index
        w = p["filters"].transpose(2, 3, 1, 0).astype(np.float64)  # (kh, kw, in, out)
        b = p["biases"].astype(np.float64)
        if first_conv:  # fold (pixel - mean) / 256
            b = b - np.einsum("hwio,i->o", w, mean) / 256.0
            w = w / 256.0
            first_conv = False
        w = w * gamma
        b = b * gamma + beta
        if p["padding_y"] or p["padding_x"]:
            x = layers.ZeroPadding2D(((p["padding_y"],) * 2, (p["padding_x"],) * 2))(x)
        conv = layers.Conv2D(p["num_filters"], (p["nr"], p["nc"]), strides=(p["stride_y"], p["stride_x"]),
                             padding="valid", name=f"conv{conv_index}")
        conv_index += 1
        x = conv(x)
        conv.set_weights([w.astype(np.float32), b.astype(np.float32)])

    for layer, want in zip(net.layers, spec):
        kind = want[0]
        if kind == "con":
            pending_conv = layer.params
            continue
        if kind == "affine":
            emit_conv(pending_conv, layer.params["gamma"].astype(np.float64), layer.params["beta"].astype(np.float64))
            pending_conv = None
        elif kind == "relu":
            x = layers.ReLU()(x)
        elif kind == "max_pool":
            p = layer.params
            x = layers.MaxPooling2D((p["nr"], p["nc"]), strides=(p["stride_y"], p["stride_x"]), padding="valid")(x)
        elif kind == "avg_pool":
            p = layer.params
            x = layers.AveragePooling2D((p["nr"], p["nc"]), strides=(p["stride_y"], p["stride_x"]), padding="valid")(x)
        elif kind in ("tag1", "tag2"):
            tags[kind] = x
        elif kind == "skip1":
            x = tags["tag1"]
        elif kind == "add_prev":
            other = tags[want[1]]
            h = max(x.shape[1], other.shape[1])
            w = max(x.shape[2], other.shape[2])
            c = max(x.shape[3], other.shape[3])
            x = layers.Add()([ZeroExtend(h, w, c)(x), ZeroExtend(h, w, c)(other)])
        elif kind == "avg_pool_everything":
            x = layers.GlobalAveragePooling2D()(x)
        elif kind == "fc":
            p = layer.params
            fc = layers.Dense(p["num_outputs"], use_bias=p["has_bias"], name="embedding")
            x = fc(x)
            fc.set_weights([p["weights"]] + ([p["biases"]] if p["has_bias"] else []))
    return keras.Model(inputs, x, name=name)
