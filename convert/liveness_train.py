"""Train, threshold and measure the project's own liveness model (ISO/IEC 30107-3
terms: APCER = attacks accepted as live, BPCER = live faces rejected)."""

from __future__ import annotations

import numpy as np

from .liveness_data import LiveSet


def liveness_net(size: int = 80, width: int = 16):
    """A small int8-friendly CNN (Conv-BN-ReLU, no PReLU): RGB 0..255 crop -> logit of
    P(live).  The logit, not the probability, is the output, so that int8 output
    quantization keeps resolution where the threshold sits (near P = 1)."""
    import keras
    from keras import layers

    from .layers import conv_stack

    inp = keras.Input((size, size, 3), name="crop")
    x = conv_stack(layers.Rescaling(1 / 127.5, offset=-1.0)(inp), [width, width * 2, width * 4, width * 8])
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(1, name="live_logit")(x)
    return keras.Model(inp, out, name="facelatch_liveness")


def liveness_augment(rng: np.random.Generator):
    """Flip, rotation ±8°, zoom ±10 %, shift ±4 px (black border), blur, ±25 %
    brightness/contrast, ±10 % colour cast, noise."""
    import cv2

    from .data import Augment

    return Augment(rotate_deg=8, zoom=0.1, shift_px=4, blur_p=0.3, blur_sigma=(0.3, 1.2), contrast=0.25,
                   colour=0.1, noise=4.0, border=cv2.BORDER_CONSTANT, rng=rng)


def train_liveness(train: LiveSet, epochs: int = 12, batch: int = 64, lr: float = 1e-3, seed: int = 0, log=print,
                   label_smoothing: float = 0.0):
    import keras

    keras.utils.set_random_seed(seed)
    model = liveness_net(train.crops.shape[1])
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=label_smoothing))
    rng = np.random.default_rng(seed)
    augment = liveness_augment(rng)
    y = train.live.astype(np.float32)
    # balance live and attack per epoch
    w = np.where(train.live == 1, 0.5 / max(train.live.sum(), 1), 0.5 / max((1 - train.live).sum(), 1))
    steps = len(y) // batch
    for epoch in range(1, epochs + 1):
        losses = []
        for _ in range(steps):
            idx = rng.choice(len(y), batch, p=w / w.sum())
            losses.append(model.train_on_batch(augment(train.crops[idx]).astype(np.float32), y[idx]))
        log(f"liveness epoch {epoch}/{epochs}: loss {np.mean(losses):.4f}")
    return model


def scores(model, crops: np.ndarray) -> np.ndarray:
    """P(live) from the Keras model."""
    logits = np.concatenate([model(crops[i:i + 256].astype(np.float32), training=False).numpy().reshape(-1)
                             for i in range(0, len(crops), 256)])
    return 1 / (1 + np.exp(-logits))


def threshold_for_bpcer(live_scores: np.ndarray, bpcer: float = 0.05) -> float:
    """The highest threshold that rejects at most ``bpcer`` of these live faces."""
    s = np.sort(live_scores)
    k = int(np.floor(bpcer * len(s)))  # this many may fall below the threshold
    return float(s[k]) if k < len(s) else float(s[-1])


def apcer_bpcer(live_scores: np.ndarray, attack_scores: np.ndarray, threshold: float) -> tuple[float, float]:
    return float(np.mean(attack_scores >= threshold)), float(np.mean(live_scores < threshold))
