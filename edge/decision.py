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


def person_reference(embeddings: np.ndarray, metric: str) -> np.ndarray:
    """What an Identifier compares a probe with for one person: for cosine, the mean
    of the unit embeddings (NOT re-normalized, so that ``1 - ref . probe/|probe|`` is
    the mean cosine distance to the enrolled embeddings); for euclidean, the mean."""
    e = np.asarray(embeddings, np.float64)
    if metric == "cosine":
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e.mean(0)


def household_fmr(fmr: float, people: int) -> float:
    """The per-comparison false-match rate for a household of ``people``.

    A stranger is compared with every enrolled person, and is falsely identified if
    ANY comparison matches; by the union bound that chance is at most ``people`` times
    the per-comparison FMR.  So each comparison uses ``fmr / people``, which keeps the
    system-level rate (per frame, per stranger) at or below ``fmr``.  Measured on
    held-out people in BENCHMARKS.md ("A household at the door")."""
    return fmr / max(int(people), 1)


@dataclass(frozen=True)
class Identity:
    """Who a probe is: ``person`` (a name) or None (unknown, or ambiguous)."""

    person: str | None
    nearest: str | None  # the nearest enrolled person, matched or not
    distance: float | None  # to the nearest person
    runner_up: float | None  # distance to the second-nearest person (None with one person)
    threshold: float
    fmr: float  # system-level target
    ambiguous: bool = False  # within the threshold of two people: refused
    second: str | None = None  # the second-nearest person (None with one person)

    @property
    def is_match(self) -> bool:
        return self.person is not None


class Identifier:
    """``identify(embedding) -> Identity`` among several enrolled people.

    Rule: the nearest person is the answer when their distance is at most the
    threshold for the per-comparison FMR ``household_fmr(fmr, N)``; when the
    second-nearest person is ALSO within that threshold the probe is close to two
    people and is refused (``ambiguous``) rather than guessed.

    Distance to a person: for the cosine metric, the MEAN cosine distance from the
    probe to each of their enrolled embeddings -- give ``references`` as the plain
    (not re-normalized) mean of the person's unit embeddings, see
    ``person_reference``.  The card's thresholds are measured on single image pairs;
    a mean of such distances has a thinner impostor tail, so the card's FMR holds for
    it, whereas the distance to a re-normalized mean template does not (measured:
    3.3e-4 per frame at the 1e-4 threshold for one person, BENCHMARKS.md).  For the
    euclidean metric it is the distance to the mean."""

    def __init__(self, names: list[str], references: np.ndarray, metric: str, threshold: float, fmr: float):
        if len(names) != len(references) or not names:
            raise ValueError("an identifier needs one reference per person, and at least one person")
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"unknown metric {metric!r}")
        self.names = list(names)
        self.refs, self.metric = np.asarray(references, np.float64), metric
        self.threshold, self.fmr = float(threshold), float(fmr)

    def distances(self, embedding: np.ndarray) -> np.ndarray:
        e = np.asarray(embedding, np.float64)
        if self.metric == "cosine":
            return 1.0 - self.refs @ e / max(float(np.linalg.norm(e)), 1e-12)
        return np.linalg.norm(self.refs - e, axis=1)

    @staticmethod
    def decide(distances: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rule on a (probes, people) distance matrix: (nearest person's index,
        identified index or -1, ambiguous flag) per probe."""
        d = np.asarray(distances, np.float64)
        nearest = np.argmin(d, axis=1)
        within = np.sum(d <= threshold, axis=1)
        return nearest, np.where(within == 1, nearest, -1), within > 1

    def identify(self, embedding: np.ndarray) -> Identity:
        return self.identify_distances(self.distances(embedding))

    def identify_distances(self, d: np.ndarray) -> Identity:
        """``identify`` for distances already measured (``distances(embedding)``)."""
        nearest, chosen, ambiguous = (int(v[0]) for v in self.decide(d[None], self.threshold))
        order = np.argsort(d, kind="stable")[:2]
        second = int(order[1]) if len(d) > 1 else None
        return Identity(self.names[chosen] if chosen >= 0 else None, self.names[nearest], float(d[nearest]),
                        None if second is None else float(d[second]), self.threshold, self.fmr, bool(ambiguous),
                        None if second is None else self.names[second])
