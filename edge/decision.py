"""The verification decision, in one place a reader can audit.

A probe embedding matches the enrolled template when its distance to the
template's reference vector is at most the threshold the model card gives for the
chosen false-match rate (FMR).  The threshold was measured on the int8 model over
impostor pairs of real faces; nobody types a magic number here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_FMR = 1e-4


def distance(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    """Euclidean distance, or cosine distance (1 - cos) for the cosine metric."""
    if metric == "euclidean":
        return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
    if metric == "cosine":
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    raise ValueError(f"unknown metric {metric!r}")


@dataclass(frozen=True)
class Match:
    distance: float
    threshold: float
    fmr: float

    @property
    def is_match(self) -> bool:
        return self.distance <= self.threshold


class Matcher:
    """``compare(embedding) -> Match`` against one reference vector."""

    def __init__(self, reference: np.ndarray, metric: str, threshold: float, fmr: float):
        self.reference = np.asarray(reference, np.float32)
        self.metric, self.threshold, self.fmr = metric, float(threshold), float(fmr)

    def compare(self, embedding: np.ndarray) -> Match:
        return Match(distance(embedding, self.reference, self.metric), self.threshold, self.fmr)
