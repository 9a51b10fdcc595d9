"""Face detection with MediaPipe's BlazeFace (short-range) TFLite model; our own
anchor decoding and blending NMS."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import ssd_anchors, weighted_nms
from .modelcard import ModelCard
from .runtime import TFLiteModel


@dataclass
class Face:
    """A detected face in image pixels: box (x, y, w, h), detector score and
    BlazeFace's 6 keypoints (eye, eye, nose tip, mouth, ear, ear) as (6, 2)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray

    @property
    def size(self) -> float:
        return float(max(self.box[2], self.box[3]))


class Detector:
    """``detect(rgb) -> [Face]``, largest first."""

    def __init__(self, card: ModelCard, threads: int = 1, min_score: float | None = None):
        self.model = TFLiteModel(card.model_path, threads)
        self.size = self.model.input_shape[1]
        anchors = card.data["anchors"]
        self.anchors = ssd_anchors(self.size, anchors["strides"], anchors["per_cell"])
        if len(self.anchors) != anchors["count"]:
            raise ValueError(f"{card.path.name}: {len(self.anchors)} anchors generated, card says {anchors['count']}")
        self.min_score = card.data["decode"]["min_score"] if min_score is None else min_score
        self.iou_threshold = 0.3

    def _letterbox(self, rgb: np.ndarray):
        h, w = rgb.shape[:2]
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        scale = self.size / side
        resized = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        oy, ox = round(top * scale), round(left * scale)
        canvas[oy:oy + resized.shape[0], ox:ox + resized.shape[1]] = resized
        # normalized [0,1] canvas coordinate -> image pixel: p * side - (left, top)
        return canvas, side, np.array([ox / scale, oy / scale])

    def detect(self, rgb: np.ndarray) -> list[Face]:
        canvas, side, offset = self._letterbox(rgb)
        x = canvas.astype(np.float32) / 127.5 - 1.0
        raw_boxes, raw_scores = self.model.run(x[None])
        raw_boxes = raw_boxes.reshape(-1, 8, 2) / self.size
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -80, 80)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw_boxes[keep], scores[keep], self.anchors[keep]
        centre = raw[:, 0] + anchors
        half = raw[:, 1] / 2
        corners = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 2:] + anchors[:, None, :]
        valid = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
        faces = []
        for c, p, s in weighted_nms(corners[valid], points[valid], scores[valid], self.iou_threshold):
            c = c * side - np.tile(offset, 2)
            faces.append(Face(np.array([c[0], c[1], c[2] - c[0], c[3] - c[1]]), s, p * side - offset))
        faces.sort(key=lambda f: -f.box[2] * f.box[3])
        return faces
