"""The encoder: a face chip in, an embedding out."""

from __future__ import annotations

import numpy as np

from .errors import FacelatchError
from .modelcard import ModelCard
from .runtime import TFLiteModel


def l2_normalize(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


class Embedder:
    """``embed(chip) -> (dim,) float32``.

    Follows the card: pixels go in as the model expects (RGB 0..255, quantized by
    the input tensor's own parameters); with ``flip`` the chip and its mirror image
    are both embedded and averaged (test-time augmentation); the result is
    L2-normalized when the card's metric says so."""

    def __init__(self, card: ModelCard, threads: int = 1):
        self.card = card
        self.model = TFLiteModel(card.model_path, threads)
        emb = card.data["embedding"]
        self.dim = int(emb["dim"])
        self.normalize = bool(emb.get("normalize", False))
        self.flip = bool(emb.get("flip_average", False))
        size = int(card.data["input"]["size"])
        if self.model.input_shape[1:3] != (size, size):
            raise FacelatchError(f"{card.model_path.name}: input {self.model.input_shape} does not match card size {size}")

    def _once(self, chip: np.ndarray) -> np.ndarray:
        out = self.model.run(self.model.pixels(chip))[0].reshape(-1)
        if out.size != self.dim:
            raise FacelatchError(f"{self.card.model_path.name}: embedding has {out.size} values, card says {self.dim}")
        return out

    def embed(self, chip: np.ndarray) -> np.ndarray:
        e = self._once(chip)
        if self.flip:
            e = (e + self._once(np.ascontiguousarray(chip[:, ::-1]))) / 2
        return (l2_normalize(e) if self.normalize else e).astype(np.float32)
