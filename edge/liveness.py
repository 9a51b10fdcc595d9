"""Presentation-attack detection (liveness): is this a live face or a photo of one?

The model sees a wide crop around the detected face — ``context`` times the box
side, centred on the box, resized to the model's input — so that the edges of a
held photo, the fingers holding it and the print's texture are in view.  The crop
definition lives here, in one place, and training imports it."""

from __future__ import annotations

import cv2
import numpy as np

from .detect import Face
from .modelcard import ModelCard
from .runtime import TFLiteModel


def liveness_crop(rgb: np.ndarray, box, size: int, context: float) -> np.ndarray:
    """Square crop (size x size, RGB uint8) centred on the face box, side
    ``context * max(w, h)``; outside the image is black."""
    x, y, w, h = box
    side = context * max(w, h)
    scale = size / side
    cx, cy = x + w / 2, y + h / 2
    m = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


class Liveness:
    """``score(rgb, face) -> float`` in [0, 1]: probability that the face is live.
    ``is_live(score)`` applies the card's default threshold (or the one given)."""

    def __init__(self, card: ModelCard, threads: int = 1, threshold: float | None = None):
        self.card = card
        self.model = TFLiteModel(card.model_path, threads)
        crop = card.data["crop"]
        self.size, self.context = int(crop["size"]), float(crop["context"])
        self.threshold = float(card.data["threshold"]["live_score"] if threshold is None else threshold)

    def score(self, rgb: np.ndarray, face: Face) -> float:
        crop = liveness_crop(rgb, face.box, self.size, self.context)
        logit = float(self.model.run(self.model.pixels(crop))[0].reshape(-1)[0])
        return float(1.0 / (1.0 + np.exp(-np.clip(logit, -80, 80))))

    def is_live(self, score: float) -> bool:
        return bool(score >= self.threshold)
