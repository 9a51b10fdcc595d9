"""Alignment: a least-squares similarity warp from landmarks to the encoder's chip.

The geometry (which FaceMesh points, where they go in the chip, chip size) is part
of the encoder's model card, so training, calibration and the device all cut the
same chip.  This module is the ONE place that cuts chips.
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import similarity_transform


class Aligner:
    """``chip(rgb, landmarks) -> (size, size, 3) uint8 RGB``.

    ``landmarks`` are the full FaceMesh points (468, 2) in image pixels;
    ``indices`` picks the ones matched to ``template`` (chip pixels)."""

    def __init__(self, indices: list[int], template: list[list[float]], size: int):
        self.indices = list(indices)
        self.template = np.asarray(template, np.float64)
        self.size = int(size)
        if self.template.shape != (len(self.indices), 2):
            raise ValueError("alignment template and landmark indices differ in length")

    @classmethod
    def from_card(cls, card) -> "Aligner":
        a = card.data["alignment"]
        return cls(a["landmarks"], a["template"], a["chip_size"])

    def transform(self, landmarks: np.ndarray) -> np.ndarray:
        """2x3 similarity matrix from image pixels to chip pixels."""
        return similarity_transform(np.asarray(landmarks)[self.indices], self.template)

    def chip(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        m = self.transform(landmarks)
        return cv2.warpAffine(rgb, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
