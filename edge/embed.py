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
    L2-normalized when the card's metric says so.

    ``first_look(chip)`` runs the chip alone, without the mirror (half the cost; what
    edge.secondlook judges first); ``embed(chip, first=...)`` completes it."""

    def __init__(self, card: ModelCard, threads: int = 1):
        self.card = card
        self.model = TFLiteModel(card.model_path, threads)
        emb = card.data["embedding"]
        self.dim = int(emb["dim"])
        self.normalize = bool(emb.get("normalize", False))
        self.flip = bool(emb.get("flip_average", False))
        self.size = size = int(card.data["input"]["size"])
        if self.model.input_shape[1:3] != (size, size):
            raise FacelatchError(f"{card.model_path.name}: input {self.model.input_shape} does not match card size {size}")

    @property
    def runtime(self) -> str:
        return self.model.runtime

    @property
    def xnnpack(self) -> bool | None:
        return self.model.xnnpack

    def _once(self, chip: np.ndarray) -> np.ndarray:
        out = self.model.run(self.model.pixels(chip))[0].reshape(-1)
        if out.size != self.dim:
            raise FacelatchError(f"{self.card.model_path.name}: embedding has {out.size} values, card says {self.dim}")
        return out

    def finish(self, raw: np.ndarray) -> np.ndarray:
        """A raw model output (or mean of outputs) as the card's embedding."""
        return (l2_normalize(raw) if self.normalize else raw).astype(np.float32)

    def first_look(self, chip: np.ndarray) -> np.ndarray:
        """The raw output for the chip alone, without the mirror (``finish`` it to judge)."""
        return self._once(chip)

    def embed(self, chip: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        """``first``: this chip's ``first_look``, reused instead of run again."""
        e = self._once(chip) if first is None else first
        if self.flip:
            e = (e + self._once(np.ascontiguousarray(chip[:, ::-1]))) / 2
        return self.finish(e)
