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

    inp = keras.Input((size, size, 3), name="crop")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    for f in (width, width * 2, width * 4, width * 8):
        x = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(1, name="live_logit")(x)
    return keras.Model(inp, out, name="facelatch_liveness")


def augment(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip, ±25 % brightness/contrast, colour cast, slight zoom/shift, blur, noise."""
    import cv2

    out = np.empty_like(crops)
    n = crops.shape[1]
    for i, c in enumerate(crops):
        if rng.random() < 0.5:
            c = c[:, ::-1]
        m = cv2.getRotationMatrix2D((n / 2, n / 2), rng.uniform(-8, 8), rng.uniform(0.9, 1.1))
        m[:, 2] += rng.uniform(-4, 4, 2)
        c = cv2.warpAffine(np.ascontiguousarray(c), m, (n, n), borderMode=cv2.BORDER_CONSTANT)
        if rng.random() < 0.3:
            c = cv2.GaussianBlur(c, (0, 0), rng.uniform(0.3, 1.2))
        f = c.astype(np.float32)
        f = (f - f.mean()) * rng.uniform(0.75, 1.25) + f.mean() * rng.uniform(0.75, 1.25)
        f *= rng.uniform(0.9, 1.1, 3)
        f += rng.normal(0, rng.uniform(0, 4), f.shape)
        out[i] = np.clip(f, 0, 255).astype(np.uint8)
    return out


def train_liveness(train: LiveSet, epochs: int = 12, batch: int = 64, lr: float = 1e-3, seed: int = 0, log=print):
    import keras

    keras.utils.set_random_seed(seed)
    model = liveness_net(train.crops.shape[1])
    model.compile(keras.optimizers.Adam(lr), keras.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.default_rng(seed)
    y = train.live.astype(np.float32)
    # balance live and attack per epoch
    w = np.where(train.live == 1, 0.5 / max(train.live.sum(), 1), 0.5 / max((1 - train.live).sum(), 1))
    steps = len(y) // batch
    for epoch in range(1, epochs + 1):
        losses = []
        for _ in range(steps):
            idx = rng.choice(len(y), batch, p=w / w.sum())
            losses.append(model.train_on_batch(augment(train.crops[idx], rng).astype(np.float32), y[idx]))
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
