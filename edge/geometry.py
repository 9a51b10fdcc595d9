"""Pure numpy geometry: no I/O, no models. Boxes are (x, y, w, h) in pixels."""

from __future__ import annotations

import cv2
import numpy as np


def ssd_anchors(input_size: int, strides: list[int], per_cell: list[int]) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1] for MediaPipe's SSD-style face detectors.

    Consecutive layers with the same stride share one grid; ``per_cell`` gives the
    number of anchors each layer adds per grid cell (BlazeFace: 2 each).
    """
    centres = []
    i = 0
    while i < len(strides):
        stride, repeats = strides[i], 0
        while i < len(strides) and strides[i] == stride:
            repeats += per_cell[i]
            i += 1
        cells = input_size // stride
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x1, y1, x2, y2) box with many."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(corners: np.ndarray, points: np.ndarray, scores: np.ndarray, iou_threshold: float):
    """MediaPipe-style blending NMS: each kept detection is the score-weighted mean of
    the candidates that overlap the best remaining one by more than ``iou_threshold``.

    corners (N, 4) x1 y1 x2 y2, points (N, K, 2), scores (N,). Returns a list of
    (corners, points, score), best first.
    """
    order = np.argsort(-scores)
    corners, points, scores = corners[order], points[order], scores[order]
    remaining = np.ones(len(scores), bool)
    kept = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        overlap = remaining & (iou(corners[i], corners) > iou_threshold)
        overlap[i] = True
        w = scores[overlap][:, None]
        blended_box = (corners[overlap] * w).sum(0) / w.sum()
        blended_pts = (points[overlap] * w[:, :, None]).sum(0) / w.sum()
        kept.append((blended_box, blended_pts, float(scores[i])))
        remaining &= ~overlap
    return kept


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection)
    mapping points ``src`` (N, 2) onto ``dst`` (N, 2) — Umeyama (1991), in its 2-D
    closed form: with both point sets centred, the best c R (c >= 0, R a rotation) is
    [[a, -b], [b, a]] with a = sum(s . d) / sum |s|^2 and b = sum(s x d) / sum |s|^2
    (the same optimum as the SVD solution, without the SVD; it runs twice per frame).
    Returns the 2x3 matrix M with dst ≈ M @ [x, y, 1]."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    norm = float((s * s).sum())
    a = float((s * d).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    m = np.array([[a, -b, 0.0], [b, a, 0.0]])
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    (p, q), (r, t) = m[:, :2]
    det = p * t - q * r
    a = np.array([[t, -q], [-r, p]]) / det
    return np.hstack([a, (-a @ m[:, 2])[:, None]])


def polygon_area(poly: np.ndarray) -> float:
    """Area of a simple polygon (N, 2), either winding."""
    p = np.asarray(poly, np.float32).reshape(-1, 2)
    return float(abs(cv2.contourArea(p))) if len(p) >= 3 else 0.0


def clip_to_rect(poly: np.ndarray, width: float, height: float) -> np.ndarray:
    """The part of a convex polygon (N, 2) inside the rectangle [0, width] x [0, height];
    (0, 2) when nothing is inside (OpenCV's convex-convex intersection)."""
    rect = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    area, inside = cv2.intersectConvexConvex(np.asarray(poly, np.float32).reshape(-1, 2), rect)
    # no overlap: OpenCV gives area 0 (and None, or a placeholder point at FLT_MAX)
    return np.zeros((0, 2)) if inside is None or area <= 0 else inside.reshape(-1, 2).astype(np.float64)
