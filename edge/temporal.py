"""Temporal liveness evidence: the door sees a sequence of frames, not a photo.

Two cues, both cheap (no model), both computed per frame from what the pipeline
already has:

- **Fresh frame** (`FrameNovelty`): a real camera never delivers the same picture
  twice — sensor noise alone changes the pixels.  A face patch bit-identical to
  the previous frame's is a frozen or replayed still (a folder of copies, a stalled
  or injected stream).  This cue cannot lock out a live person; it stops exact
  repeats only: a replayed video or a jittered still is "fresh".
- **Blink** (`eye_aspect_ratio`, `blinked`): FaceMesh's eye contour gives the eye
  aspect ratio (EAR: eyelid gap over eye width); a blink is a dip of EAR well below
  the attempt's own open-eye level followed by a recovery.  A printed photo or a
  still on a screen never blinks; a *video* replay does.  Used only when the
  installer opts in (``liveness.require_blink``): people blink every few seconds,
  so waiting for one costs time at the door.

The door rule that uses them lives in ``edge/policy.py``."""

from __future__ import annotations

import numpy as np

# FaceMesh indices: (outer corner, upper lid x2, inner corner, lower lid x2) per eye
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
LEFT_EYE = (362, 385, 387, 263, 373, 380)


def eye_aspect_ratio(landmarks: np.ndarray) -> float:
    """Mean EAR of both eyes from (468, 2) FaceMesh points:
    (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)."""
    ears = []
    for idx in (RIGHT_EYE, LEFT_EYE):
        p = landmarks[list(idx)]
        width = np.linalg.norm(p[0] - p[3])
        gap = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        ears.append(gap / (2 * width) if width > 0 else 0.0)
    return float(np.mean(ears))


def blinked(ears, closed_ratio: float = 0.7, min_open: float = 0.15) -> bool:
    """True when the series of EARs holds a blink: some frame at most
    ``closed_ratio`` x the open-eye level (the series' 80th percentile, itself at
    least ``min_open``), with an open frame after it."""
    e = np.asarray([v for v in ears if v is not None], float)
    if len(e) < 3:
        return False
    open_level = float(np.percentile(e, 80))
    if open_level < min_open:
        return False
    closed = np.flatnonzero(e <= closed_ratio * open_level)
    return bool(len(closed) and np.any(e[closed[0] + 1:] >= 0.9 * open_level))


class FrameNovelty:
    """``fresh(patch) -> bool``: False when ``patch`` (the face's liveness crop)
    is bit-identical to the previous frame's."""

    def __init__(self):
        self._last: bytes | None = None

    def fresh(self, patch: np.ndarray) -> bool:
        data = np.ascontiguousarray(patch).tobytes()
        is_new = data != self._last
        self._last = data
        return is_new
