"""Dense landmarks with MediaPipe's FaceMesh (468 points) on a detected face."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .detect import Face
from .geometry import apply_affine, invert_affine
from .modelcard import ModelCard
from .runtime import TFLiteModel

ROI_SCALE = 1.5  # FaceMesh expects the detector box enlarged 1.5x, square, eyes level


class FaceMesh:
    """``landmarks(rgb, face) -> ((468, 2) image pixels, face-presence score)``."""

    def __init__(self, card: ModelCard, threads: int = 1):
        self.model = TFLiteModel(card.model_path, threads)
        self.size = self.model.input_shape[1]

    def roi_transform(self, face: Face) -> np.ndarray:
        """2x3 affine from image pixels to the model's input crop."""
        x, y, w, h = face.box
        centre = np.array([x + w / 2, y + h / 2])
        (x0, y0), (x1, y1) = face.keypoints[0], face.keypoints[1]
        theta = math.atan2(y1 - y0, x1 - x0)
        scale = self.size / (max(w, h) * ROI_SCALE)
        c, s = math.cos(theta) * scale, math.sin(theta) * scale
        m = np.array([[c, s, 0.0], [-s, c, 0.0]])
        m[:, 2] = self.size / 2 - m[:, :2] @ centre
        return m

    def landmarks(self, rgb: np.ndarray, face: Face):
        m = self.roi_transform(face)
        crop = cv2.warpAffine(rgb, m, (self.size, self.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        raw, flag = self.model.run((crop.astype(np.float32) / 255.0)[None])
        pts = raw.reshape(-1, 3)[:, :2]
        score = 1.0 / (1.0 + math.exp(-float(np.clip(flag.reshape(-1)[0], -80, 80))))
        return apply_affine(invert_affine(m), pts), score
