"""Face quality: is this face good enough to be judged at all?

A face too dark, too flat, too blurred, too small, turned too far, cut off by the
frame's edge or lit harshly from one side is neither a match nor a failed attempt:
the frame gets "no decision".  The measures are cheap (a 64x64 grey crop of the
detector's box, ratios of FaceMesh points, the alignment warp against the frame's
bounds and the two halves of the aligned chip) and the limits come from the encoder's model card (``quality`` block), where they are
recorded with the data they were measured on (benchmarks/quality_limits.py).  Enrolment
applies the same gate: a face too poor to judge is not enrolled either.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# FaceMesh indices: outer eye corners, nose tip, mouth corners
_EYE_OUTER = (33, 263)
_NOSE = 1
_MOUTH = (61, 291)
_PATCH = 64


def measure(rgb: np.ndarray, box, landmarks: np.ndarray) -> dict:
    """The quality measures of one face.

    - ``face_px``: the larger side of the detector's box, in image pixels;
    - ``brightness``: mean grey level (0..255) of the box resized to 64x64;
    - ``contrast``: its standard deviation;
    - ``sharpness``: variance of its Laplacian (blur and heavy upscaling lower it);
    - ``yaw``: the nose tip's horizontal offset from the eyes' midpoint, over the eye
      distance (0 frontal, about ±0.5 in profile);
    - ``pitch``: the nose tip's vertical position between the eye line (0) and the
      mouth line (1); about 0.5 for a level face."""
    x, y, w, h = (float(v) for v in box)
    ih, iw = rgb.shape[:2]
    x0, y0 = int(max(0, round(x))), int(max(0, round(y)))
    x1, y1 = int(min(iw, round(x + w))), int(min(ih, round(y + h)))
    out = {"face_px": round(max(w, h), 1)}
    if x1 - x0 < 2 or y1 - y0 < 2:
        return {**out, "brightness": 0.0, "contrast": 0.0, "sharpness": 0.0, "yaw": 0.0, "pitch": 0.5}
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    patch = cv2.resize(grey, (_PATCH, _PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)
    pts = np.asarray(landmarks, np.float64)
    left, right = pts[_EYE_OUTER[0]], pts[_EYE_OUTER[1]]
    eyes_mid, mouth_mid = (left + right) / 2, (pts[_MOUTH[0]] + pts[_MOUTH[1]]) / 2
    eye_axis = right - left
    eye_dist = max(float(np.linalg.norm(eye_axis)), 1e-6)
    u = eye_axis / eye_dist  # along the eyes
    v = np.array([-u[1], u[0]])  # down the face
    nose = pts[_NOSE] - eyes_mid
    mouth_drop = max(float((mouth_mid - eyes_mid) @ v), 1e-6)
    out.update(brightness=round(float(patch.mean()), 2), contrast=round(float(patch.std()), 2),
               sharpness=round(float(cv2.Laplacian(patch, cv2.CV_32F).var()), 2),
               yaw=round(float(nose @ u) / eye_dist, 4), pitch=round(float(nose @ v) / mouth_drop, 4))
    return out


def light_asymmetry(chip: np.ndarray, region) -> float:
    """|mean(left) - mean(right)| / (mean(left) + mean(right)) of the grey levels of the
    chip's face ``region`` (top, bottom, left, middle, right; edge.align.face_region):
    0 for even light, towards 1 when one half is dark.  A ratio, so overall brightness
    and exposure cancel out."""
    top, bottom, left, middle, right = region
    grey = cv2.cvtColor(np.ascontiguousarray(chip[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    a, b = float(grey[:, :middle - left].mean()), float(grey[:, middle - left:].mean())
    return abs(a - b) / (a + b) if a + b > 0 else 0.0


def chip_measures(chip: np.ndarray, aligner, landmarks: np.ndarray, frame_shape) -> dict:
    """The measures of the aligned chip (``aligner``: edge.align.Aligner or a fused one):

    - ``chip_coverage``: the share of the chip's area inside the frame (1: the whole
      chip is image; a face cut off by the frame's edge, e.g. standing very close,
      has less: the rest of its chip is repeated border pixels);
    - ``light_asymmetry``: left/right brightness asymmetry of its face region."""
    return {"chip_coverage": round(aligner.coverage(landmarks, frame_shape), 4),
            "light_asymmetry": round(light_asymmetry(chip, aligner.face_region), 4)}


@dataclass
class Quality:
    ok: bool
    reason: str  # "" when ok, else the first failed measure, e.g. "brightness 21.3 < 40"
    measures: dict


class QualityGate:
    """``check(rgb, box, landmarks, chip, aligner) -> Quality``: every measure within the
    card's limits; ``judge(measures)`` applies them to measures already taken.

    ``limits``: {measure: [low, high]} (either end may be None).  The chip measures
    (``chip_measures``) need the chip and the aligner that cut it.

    Two gates per card: the door's (``quality.limits``) and enrolment's, which is the
    door's with the card's ``quality.enrol_limits`` in place of (or added to) its limits on
    those measures — stricter where a poor *template* costs more than a poor probe (side
    light, a face cut off by the frame: two such faces of different people look alike to the
    encoder, while such a probe against a whole, evenly lit template does not;
    docs/quality-gate.md)."""

    def __init__(self, limits: dict):
        self.limits = {k: (v[0], v[1]) for k, v in limits.items()}

    @classmethod
    def from_card(cls, card, enrolment: bool = False) -> "QualityGate | None":
        q = card.data.get("quality")
        if not q:
            return None
        return cls({**q["limits"], **(q.get("enrol_limits") or {})} if enrolment else q["limits"])

    def check(self, rgb: np.ndarray, box, landmarks: np.ndarray, chip: np.ndarray | None = None,
              aligner=None) -> Quality:
        m = measure(rgb, box, landmarks)
        if chip is not None and aligner is not None:
            m.update(chip_measures(chip, aligner, landmarks, rgb.shape))
        return self.judge(m)

    def judge(self, m: dict) -> Quality:
        for name, (low, high) in self.limits.items():
            if name not in m:
                raise ValueError(f"the quality limit on {name} needs the face's chip and aligner")
            value = m[name]
            if low is not None and value < low:
                return Quality(False, f"{name} {value:g} < {low:g}", m)
            if high is not None and value > high:
                return Quality(False, f"{name} {value:g} > {high:g}", m)
        return Quality(True, "", m)
