"""The mirror image, only where it can change the decision.

The encoder cards' thresholds were measured on flip-averaged embeddings: the chip
and its mirror image, each run through the encoder, averaged.  That doubles the
encoder's cost per frame, yet it moves a distance by little: at most the card's
``embedding.second_look_band`` (the largest |first look - averaged| distance
difference seen on its tuning pairs, BENCHMARKS.md "The second look").  So the door
judges the chip alone first, and embeds the mirror only when some enrolled
person's distance lies within that band of the threshold -- where the mirror could
change the answer.  Everywhere else the first look's decision IS the averaged
embedding's decision; measured on held-out people, no decision changed.
"""

from __future__ import annotations

import numpy as np

from .decision import Identifier, Identity


def second_look_band(card) -> float | None:
    """The card's band, or None when the card has none (then every face gets both looks)."""
    emb = card.data.get("embedding", {})
    band = emb.get("second_look_band")
    return float(band) if band is not None and emb.get("flip_average", False) else None


class SecondLook:
    """``identify(face, identifier) -> Identity`` for a face the pipeline analysed
    with ``look="first"``: decides on the first look when that is clear, otherwise
    completes the embedding (``pipeline.complete``) and decides on the full one."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.band = second_look_band(pipeline.encoder_card)

    def clear(self, distances: np.ndarray, threshold: float) -> bool:
        """True when every distance is farther than the band from the threshold."""
        return self.band is not None and bool(np.all(np.abs(np.asarray(distances) - threshold) > self.band))

    def identify(self, face, identifier: Identifier) -> Identity:
        d = identifier.distances(face.embedding)
        if face.first_look is not None and not self.clear(d, identifier.threshold):
            self.pipeline.complete(face)
            d = identifier.distances(face.embedding)
        return identifier.identify_distances(d)
