"""Alignment: a least-squares similarity warp from landmarks to the encoder's chip.

The geometry (which FaceMesh points, where they go in the chip, chip size) is part
of the encoder's model card, so training, calibration and the device all cut the
same chip.  This module is the ONE place that cuts chips.
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import apply_affine, clip_to_rect, invert_affine, polygon_area, similarity_transform


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
        self.face_region = face_region(self.template, self.size)

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

    def coverage(self, landmarks: np.ndarray, frame_shape) -> float:
        """The share of the chip's area that the frame covers (1.0: the whole chip lies
        inside the frame; the rest of a chip is border pixels repeated, not face)."""
        return chip_coverage(self.transform(landmarks), self.size, frame_shape)


def chip_coverage(m: np.ndarray, size: int, frame_shape) -> float:
    """Share of a ``size`` x ``size`` chip cut with the 2x3 image-to-chip warp ``m`` whose
    source lies inside a frame of ``frame_shape`` (h, w, ...): the chip's square taken back
    into the image by the inverse warp, clipped to the frame, area over area.  Pixel
    areas, not centres: pixel (0, 0) spans [-0.5, 0.5]."""
    h, w = frame_shape[:2]
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float64) - 0.5
    quad = apply_affine(invert_affine(m), corners) + 0.5  # frame pixels now span [0, w] x [0, h]
    whole = polygon_area(quad)
    return float(min(1.0, polygon_area(clip_to_rect(quad, w, h)) / whole)) if whole > 0 else 0.0


def face_region(template: np.ndarray, size: int) -> tuple[int, int, int, int, int]:
    """(top, bottom, left, middle, right) chip pixels of the face's skin: the template's
    landmarks' box widened by a tenth of its width each side and a quarter of its height
    above and below, split at the template's mean x (its points are left/right pairs
    and the nose: the face's midline)."""
    (x0, y0), (x1, y1) = template.min(0), template.max(0)
    dx, dy = 0.1 * (x1 - x0), 0.25 * (y1 - y0)
    clamp = lambda v: int(np.clip(round(v), 0, size))  # noqa: E731
    return clamp(y0 - dy), clamp(y1 + dy), clamp(x0 - dx), clamp(template[:, 0].mean()), clamp(x1 + dx)
