"""MiniFASNet (Silent-Face-Anti-Spoofing by minivision-ai, Apache-2.0): our own Keras
definition, built from the shapes in the released PyTorch state dict, and our own
weight transfer.  Works for MiniFASNetV2 and MiniFASNetV1SE (the SE variant adds a
squeeze-and-excitation gate to the last residual block of each stage).

Network (PyTorch names): conv1 (3x3/2) -> conv2_dw (3x3 depthwise) -> conv_23
(bottleneck, /2) -> conv_3 (residual bottlenecks) -> conv_34 (/2) -> conv_4 ->
conv_45 (/2) -> conv_5 -> conv_6_sep (1x1) -> conv_6_dw (5x5 depthwise, valid) ->
linear (512->128) -> bn -> prob (128->3).  Every conv has BatchNorm; "conv" and
"conv_dw" of a bottleneck have PReLU, "project" has none.  Softmax index 1 = live.

Input difference to upstream: upstream feeds BGR 0..255; our model takes RGB 0..255
(the first convolution's input channels are reversed, so the arithmetic is the
same).  Output: the 3 logits (softmax on the device), so that int8 output
quantization keeps resolution where the threshold sits.

Reading the ``.pth`` needs PyTorch on the workstation (``torch.load`` with
``weights_only=True``); the device never sees it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

STRIDE2 = {"conv1", "conv_23", "conv_34", "conv_45"}
BN_EPS = 1e-5


def read_pth(path) -> dict[str, np.ndarray]:
    """The state dict as numpy arrays ('module.' prefix removed)."""
    try:
        import torch
    except ImportError:
        raise SystemExit("reading a .pth needs PyTorch on the workstation: pip install torch") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (torch raises many kinds)
        raise SystemExit(f"cannot read {path} as a PyTorch state dict ({str(e).splitlines()[0]})") from None
    return {k.removeprefix("module."): v.numpy() for k, v in state.items()}


def _units(state: dict) -> list[str]:
    """The feature-extractor units in order: 'conv1', 'conv_23', 'conv_3.model.0', ..."""
    seen = []
    for k in state:
        m = re.match(r"(conv\w*?(?:\.model\.\d+)?)\.", k)
        if m and m.group(1) not in seen:
            seen.append(m.group(1))
    return seen


PRELU_SPELLINGS = ("prelu", "dwrelu")


def build(state: dict, size: int = 80, name: str = "minifasnet", prelu: str = "prelu"):
    """Keras model with ``state``'s weights: RGB 0..255 (N, size, size, 3) -> 3 logits.

    ``prelu``: "prelu" (Keras PReLU, TFLite PRELU: what the float model ships) or
    "dwrelu", ``z + relu((a - 1) * z)`` — the slope a 1x1 depthwise convolution with a
    fused ReLU, then ADD; equal to PReLU for slopes a <= 1 (every slope of the released
    weights), and run in int8 inside XNNPACK, which has no int8 PRELU (the reference
    kernel and its partition breaks made the int8 stack 4x slower than the float one)."""
    import keras
    from keras import layers

    if prelu not in PRELU_SPELLINGS:
        raise ValueError(f"unknown PReLU spelling {prelu!r} (one of {', '.join(PRELU_SPELLINGS)})")

    assigned: list[tuple[layers.Layer, list[np.ndarray]]] = []

    def bn(prefix, x):
        layer = layers.BatchNormalization(epsilon=BN_EPS, name=prefix.replace(".", "_") + "_bn")
        assigned.append((layer, [state[f"{prefix}.weight"], state[f"{prefix}.bias"], state[f"{prefix}.running_mean"],
                                 state[f"{prefix}.running_var"]]))
        return layer(x)

    def conv(prefix, x, stride, act, flip_input=False):
        w = state[f"{prefix}.conv.weight"]  # (out, in/groups, k, k)
        k = w.shape[2]
        pad = 0 if prefix == "conv_6_dw" else k // 2
        if pad:
            x = layers.ZeroPadding2D(pad)(x)
        lname = prefix.replace(".", "_")
        if w.shape[1] == 1 and w.shape[0] == x.shape[-1]:  # depthwise
            layer = layers.DepthwiseConv2D(k, stride, use_bias=False, name=lname + "_dw")
            assigned.append((layer, [w.transpose(2, 3, 0, 1)]))  # (k, k, C, 1)
        else:
            kernel = w.transpose(2, 3, 1, 0)  # (k, k, in, out)
            if flip_input:
                kernel = kernel[:, :, ::-1, :]
            layer = layers.Conv2D(w.shape[0], k, stride, use_bias=False, name=lname + "_conv")
            assigned.append((layer, [np.ascontiguousarray(kernel)]))
        x = bn(f"{prefix}.bn", layer(x))
        if act and f"{prefix}.prelu.weight" in state:
            a = state[f"{prefix}.prelu.weight"].reshape(-1)
            if prelu == "dwrelu":
                if np.any(a > 1):
                    raise SystemExit(f"{prefix}: a PReLU slope above 1 cannot be written as z + relu((a - 1) z)")
                slope = layers.DepthwiseConv2D(1, use_bias=False, activation="relu", name=lname + "_slope")
                assigned.append((slope, [(a - 1).reshape(1, 1, -1, 1)]))
                return layers.Add(name=lname + "_prelu")([x, slope(x)])
            p = layers.PReLU(shared_axes=[1, 2], name=lname + "_prelu")
            assigned.append((p, [a.reshape(1, 1, -1)]))
            x = p(x)
        return x

    def se(prefix, x):
        g = layers.GlobalAveragePooling2D(keepdims=True)(x)
        for i, act in ((1, "relu"), (2, "sigmoid")):
            w = state[f"{prefix}.fc{i}.weight"]
            c = layers.Conv2D(w.shape[0], 1, use_bias=False, name=f"{prefix.replace('.', '_')}_fc{i}")
            assigned.append((c, [w.transpose(2, 3, 1, 0)]))
            g = layers.Activation(act)(bn(f"{prefix}.bn{i}", c(g)))
        return layers.Multiply()([x, g])

    inp = keras.Input((size, size, 3), name="crop_rgb")
    x = inp
    for unit in _units(state):
        top = unit.split(".")[0]
        if f"{unit}.conv.weight" in state:  # a plain conv block
            x = conv(unit, x, 2 if top == "conv1" else 1, act=True, flip_input=unit == "conv1")
            continue
        y = conv(f"{unit}.conv", x, 1, act=True)
        y = conv(f"{unit}.conv_dw", y, 2 if top in STRIDE2 else 1, act=True)
        y = conv(f"{unit}.project", y, 1, act=False)
        if ".model." in unit:  # residual block inside a stage
            if f"{unit}.se_module.fc1.weight" in state:
                y = se(f"{unit}.se_module", y)
            y = layers.Add(name=unit.replace(".", "_") + "_add")([x, y])
        x = y
    x = layers.Flatten()(x)
    lin = layers.Dense(state["linear.weight"].shape[0], use_bias=False, name="linear")
    assigned.append((lin, [state["linear.weight"].T]))
    x = bn("bn", lin(x))
    prob = layers.Dense(state["prob.weight"].shape[0], use_bias=False, name="prob")
    assigned.append((prob, [state["prob.weight"].T]))
    model = keras.Model(inp, prob(x), name=name)
    for layer, weights in assigned:
        layer.set_weights(weights)
    return model


def predict(model, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """P(live) of RGB uint8 crops through the Keras model."""
    from edge.liveness import live_probability

    out = [model(crops[i:i + batch].astype(np.float32), training=False).numpy() for i in range(0, len(crops), batch)]
    return live_probability(np.concatenate(out))


def load(path, size: int = 80, prelu: str = "prelu", equalize_on: np.ndarray | None = None):
    """Build the Keras model straight from a ``.pth`` (``prelu``: see ``build``; with
    ``equalize_on``, RGB patches of this member, the weights are range-equalized first:
    see ``equalize``)."""
    stem = Path(path).stem
    name = "minifasnet_v1se" if "V1SE" in stem else "minifasnet_v2" if "V2" in stem else "minifasnet"
    state = read_pth(path)
    if equalize_on is not None:
        state = equalize(state, activation_ranges(state, equalize_on, size))
    return build(state, size, name, prelu)


def conv_chain(state: dict) -> list[str]:
    """Every convolution in order, by its prefix: 'conv1', 'conv2_dw', 'conv_23.conv',
    'conv_23.conv_dw', 'conv_23.project', ..., 'conv_6_sep', 'conv_6_dw'."""
    out = []
    for unit in _units(state):
        parts = ("conv", "conv_dw", "project")
        out += [unit] if f"{unit}.conv.weight" in state else [f"{unit}.{part}" for part in parts]
    return out


def equalizable(state: dict) -> list[tuple[str, str]]:
    """(producer, consumer) pairs whose channels may be rescaled: the producer's output
    feeds the consumer alone — every convolution but a bottleneck's ``project``, whose
    output is the residual stream (added to the block's input, gated by SE); the last
    (``conv_6_dw``) feeds the ``linear`` layer."""
    chain = conv_chain(state)
    return [(p, c) for p, c in zip(chain, chain[1:] + ["linear"]) if not p.endswith(".project")]


def streams(state: dict) -> list[dict]:
    """The residual streams: per stage (conv_3, conv_4, conv_5), the convolutions writing
    to it (the entry bottleneck's ``project`` and each block's), the tensors it is made
    of (entry output, each block's sum), and what reads it (each block's ``conv`` and SE
    ``fc1``, and the next unit's first convolution)."""
    units, chain = _units(state), conv_chain(state)
    out = []
    for stage in dict.fromkeys(u.split(".model.")[0] for u in units if ".model." in u):
        blocks = [u for u in units if u.startswith(stage + ".model.")]
        entry = f"{units[units.index(blocks[0]) - 1]}.project"
        after = units[units.index(blocks[-1]) + 1]
        first = after if f"{after}.conv.weight" in state else f"{after}.conv"
        se = [f"{b}.se_module.fc1" for b in blocks if f"{b}.se_module.fc1.weight" in state]
        out.append({"writers": [entry] + [f"{b}.project" for b in blocks],
                    "tensors": [entry.replace(".", "_") + "_bn_bn"] + [b.replace(".", "_") + "_add" for b in blocks],
                    "readers": [f"{b}.conv" for b in blocks] + [first], "se": se})
        assert all(r in chain for r in out[-1]["readers"])
    return out


def activation_ranges(state: dict, patches: np.ndarray, size: int = 80) -> dict[str, np.ndarray]:
    """Per producer (``equalizable``), per channel: max |pre-activation| (its BatchNorm's
    output) of the float model over ``patches`` (N, size, size, 3) RGB; per residual
    stream (keyed ``stream:<i>``), the max over its tensors."""
    import keras

    model = build(state, size)
    names = [p.replace(".", "_") + "_bn_bn" for p, _ in equalizable(state)]
    keys = [p for p, _ in equalizable(state)]
    for i, st in enumerate(streams(state)):
        names += st["tensors"]
        keys += [f"stream:{i}"] * len(st["tensors"])
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    ranges = {}
    for i in range(0, len(patches), 64):
        for k, a in zip(keys, probe(patches[i:i + 64].astype(np.float32))):
            r = np.abs(np.asarray(a)).max(axis=(0, 1, 2))
            ranges[k] = np.maximum(ranges[k], r) if k in ranges else r
    return ranges


def equalize(state: dict, ranges: dict[str, np.ndarray]) -> dict:
    """Cross-layer range equalization (as convert.sface.equalize), exact in float: a
    producer's output channel c is divided by s_c (its BatchNorm's gamma and beta) and
    the consumer's input channel c multiplied by s_c; PReLU(z / s) = PReLU(z) / s for
    s > 0.  Int8 gains because activations are quantized per tensor.  Before a depthwise
    consumer every channel goes to the median range; before a pointwise one (or
    ``linear``), s = sqrt(r_act / r_weight), normalised to a geometric mean of 1."""
    state = dict(state)
    for prod, cons in equalizable(state):
        r_a = np.maximum(ranges[prod], 1e-6)
        w = state[f"{cons}.weight"] if cons == "linear" else state[f"{cons}.conv.weight"]
        depthwise = w.ndim == 4 and w.shape[1] == 1 and w.shape[0] == len(r_a)
        if depthwise:
            s = r_a / np.median(r_a)
        else:
            r_w = np.abs(w).max(axis=(0, 2, 3) if w.ndim == 4 else 0)
            s = np.sqrt(r_a / np.maximum(r_w, 1e-12))
            s = s / np.exp(np.mean(np.log(s)))
        state[f"{prod}.bn.weight"] = state[f"{prod}.bn.weight"] / s
        state[f"{prod}.bn.bias"] = state[f"{prod}.bn.bias"] / s
        shape = (-1, 1, 1, 1) if depthwise else (1, -1, 1, 1) if w.ndim == 4 else (1, -1)
        w = w * s.reshape(shape)
        state[f"{cons}.weight" if cons == "linear" else f"{cons}.conv.weight"] = w.astype(np.float32)
    for i, st in enumerate(streams(state)):  # a residual stream: one scale per channel for all its writers and readers
        if f"stream:{i}" not in ranges:
            continue
        r_a = np.maximum(ranges[f"stream:{i}"], 1e-6)
        r_w = np.max([np.abs(state[f"{r}.conv.weight"]).max(axis=(0, 2, 3)) for r in st["readers"]], axis=0)
        s = np.sqrt(r_a / np.maximum(r_w, 1e-12))
        s = s / np.exp(np.mean(np.log(s)))
        for w in st["writers"]:
            state[f"{w}.bn.weight"] = state[f"{w}.bn.weight"] / s
            state[f"{w}.bn.bias"] = state[f"{w}.bn.bias"] / s
        for r in st["readers"]:
            state[f"{r}.conv.weight"] = (state[f"{r}.conv.weight"] * s.reshape(1, -1, 1, 1)).astype(np.float32)
        for f in st["se"]:  # SE reads the block's (scaled) output through its mean
            state[f"{f}.weight"] = (state[f"{f}.weight"] * s.reshape(1, -1, 1, 1)).astype(np.float32)
    return state


FEATURE_LAYER = "bn_bn"  # build() names the BatchNorm after 'linear' like this: the 128-D feature
FEATURES = 128


def stack(members: list, size: int = 80, name: str = "facelatch_liveness", features: bool = False):
    """One model for several members: input (size, size, 3 * members) — the members'
    patches stacked on the channel axis, in order — output their logits, concatenated;
    with ``features``, one output of every member's 128-D feature (in order) followed by
    every member's 3 logits."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, 3 * len(members)), name="patches")
    patches = [layers.Lambda(lambda t, i=i: t[..., 3 * i:3 * i + 3], name=f"patch_{i}")(inp) for i in range(len(members))]
    if features:
        both = [keras.Model(m.input, [m.get_layer(FEATURE_LAYER).output, m.output], name=f"{m.name}_{i}")(p)
                for i, (m, p) in enumerate(zip(members, patches))]
        return keras.Model(inp, layers.Concatenate(name="features_logits")([f for f, _ in both] + [z for _, z in both]),
                           name=name)
    outs = [m(p) for m, p in zip(members, patches)]
    return keras.Model(inp, outs[0] if len(outs) == 1 else layers.Concatenate(name="logits")(outs), name=name)


def crop_scale(path) -> float:
    """Upstream's file naming: ``<scale>_<h>x<w>_<Name>.pth`` (``4_0_0_...`` is 4.0)."""
    try:
        return float(Path(path).name.split("_")[0])
    except ValueError:
        raise SystemExit(f"cannot read the crop scale from the file name {Path(path).name}; give --scales") from None
