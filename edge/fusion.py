"""Score-level fusion of encoders, seen by the pipeline as ONE encoder.

A fused card (kind "fusion", edge.modelcard) names its member encoder cards (each
with the sha256 of its model) and a weight w_i per member, sum 1.  Every member cuts
its OWN chip (its card's alignment, the same Aligner class) and embeds it (its own
Embedder: flip average, unit length).  The fused embedding is the concatenation
[sqrt(w_1) e_1, sqrt(w_2) e_2, ...] of the unit member embeddings: it has unit
length, and its cosine distance to another fused embedding is exactly
sum_i w_i d_i, the weighted sum of the members' cosine distances (the score that was
measured; BENCHMARKS.md).  A mean over several enrolled fused embeddings (edge.decision)
is then the weighted sum of the members' mean distances, too.

To the rest of the device the fused "chip" is one uint8 RGB image, the members' chips
side by side (top-aligned; below a shorter chip its last row is repeated), so that
everything that looks at a chip (freshness, sharpness) keeps working unchanged.
"""

from __future__ import annotations

import numpy as np

from .align import Aligner
from .embed import Embedder
from .errors import FacelatchError


class FusedAligner:
    """``chip(rgb, landmarks) -> (max size, sum of sizes, 3) uint8``: each member's chip
    (cut by its own card's Aligner) side by side."""

    def __init__(self, aligners: list[Aligner]):
        self.aligners = list(aligners)
        self.size = max(a.size for a in self.aligners)
        self.face_region = self.aligners[0].face_region  # the first member's chip is the fused chip's left block

    def chip(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        chips = [a.chip(rgb, landmarks) for a in self.aligners]
        return np.concatenate([np.pad(c, ((0, self.size - c.shape[0]), (0, 0), (0, 0)), mode="edge") for c in chips],
                              axis=1)

    def coverage(self, landmarks: np.ndarray, frame_shape) -> float:
        """The least covered member chip's coverage (edge.align.Aligner.coverage)."""
        return min(a.coverage(landmarks, frame_shape) for a in self.aligners)


class FusedEmbedder:
    """``embed(fused chip) -> (sum of member dims,) float32``: each member's chip taken
    back out of the fused chip and embedded by that member; the unit embeddings
    scaled by sqrt(weight) and concatenated.

    ``first_look`` / ``finish`` / ``embed(chip, first=...)`` as edge.embed.Embedder's
    (edge.secondlook): the first look is every member's chip alone, without its mirror."""

    def __init__(self, card, threads: int = 1):
        self.card = card
        self.members = [(Embedder(m, threads), float(w)) for m, w in card.members]
        self.dim = sum(e.dim for e, _ in self.members)
        self.flip = any(e.flip for e, _ in self.members)
        if self.dim != card.data.get("embedding", {}).get("dim"):
            raise FacelatchError(f"fused card {card.path.name}: its members make {self.dim}-D embeddings, the card says "
                                 f"{card.data.get('embedding', {}).get('dim')}")

    @property
    def runtime(self) -> str:
        return self.members[0][0].runtime

    @property
    def xnnpack(self) -> bool | None:
        said = [e.xnnpack for e, _ in self.members]
        return None if None in said else all(said)

    def _chips(self, chip: np.ndarray) -> list[np.ndarray]:
        out, x = [], 0
        for member, _ in self.members:
            out.append(np.ascontiguousarray(chip[:member.size, x:x + member.size]))
            x += member.size
        return out

    def _split(self, raw: np.ndarray) -> list[np.ndarray]:
        return np.split(raw, np.cumsum([e.dim for e, _ in self.members])[:-1])

    def _fuse(self, parts) -> np.ndarray:
        return np.concatenate([np.sqrt(w) * e for (_, w), e in zip(self.members, parts)]).astype(np.float32)

    def first_look(self, chip: np.ndarray) -> np.ndarray:
        """The members' raw outputs for their chips alone, concatenated."""
        return np.concatenate([m.first_look(c) for (m, _), c in zip(self.members, self._chips(chip))])

    def finish(self, raw: np.ndarray) -> np.ndarray:
        return self._fuse(m.finish(r) for (m, _), r in zip(self.members, self._split(raw)))

    def embed(self, chip: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        firsts = self._split(first) if first is not None else [None] * len(self.members)
        return self._fuse(m.embed(c, first=f) for (m, _), c, f in zip(self.members, self._chips(chip), firsts))


def encoder_stages(card, threads: int = 1):
    """The (aligner, embedder) an encoder card asks for: its own Aligner and Embedder,
    or, for a fused card, the fused pair built from its members' cards."""
    if card.kind == "fusion":
        return FusedAligner([Aligner.from_card(m) for m, _ in card.members]), FusedEmbedder(card, threads)
    return Aligner.from_card(card), Embedder(card, threads)
