"""Training data: identity lists, aligned-chip cache, P x K batches, augmentation.

Every image goes through the device's own detector + aligner (``edge.FaceFinder``),
once; the chips are cached on disk as one ``.npz`` per (dataset, alignment)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.align import Aligner
from edge.images import is_image
from edge.pipeline import FaceFinder, read_image



@dataclass
class LabelledImages:
    paths: list[Path]
    labels: np.ndarray  # int identity per image


def identity_folders(root) -> LabelledImages:
    """``root/<person>/*.jpg``."""
    root = Path(root)
    people = sorted(d for d in root.iterdir() if d.is_dir())
    paths, labels = [], []
    for i, d in enumerate(people):
        for p in sorted(d.iterdir()):
            if is_image(p):
                paths.append(p)
                labels.append(i)
    return LabelledImages(paths, np.array(labels, np.int64))


def celeba(root) -> LabelledImages:
    """CelebA: ``root/images/NNNNNN.jpg`` and ``root/identity.txt`` (``image identity``)."""
    root = Path(root)
    paths, labels = [], []
    for line in (root / "identity.txt").read_text().split("\n"):
        f = line.split()
        if len(f) == 2 and (root / "images" / f[0]).exists():
            paths.append(root / "images" / f[0])
            labels.append(int(f[1]))
    return LabelledImages(paths, np.array(labels, np.int64))


@dataclass
class Chips:
    chips: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N,)
    paths: list[str]


def alignment_key(aligner: Aligner) -> str:
    blob = json.dumps([aligner.indices, np.round(aligner.template, 3).tolist(), aligner.size]).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def cached_chips(images: LabelledImages, aligner: Aligner, cache_dir, name: str, log=print,
                 largest: bool = False) -> Chips:
    """Chips of the images where exactly one face was found (training data), or with
    ``largest`` of the largest face in every image with a face (evaluation, as the
    device does).  Cached."""
    cache = Path(cache_dir) / f"{name}{'-largest' if largest else ''}-{alignment_key(aligner)}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return Chips(z["chips"], z["labels"], [str(p) for p in z["paths"]])
    finder = FaceFinder(aligner)
    chips, labels, paths = [], [], []
    for i, (p, y) in enumerate(zip(images.paths, images.labels)):
        found = finder.find(read_image(p))
        if len(found) == 1 or (largest and found):
            chips.append(found[0].chip)
            labels.append(y)
            paths.append(str(p))
        if (i + 1) % 1000 == 0:
            log(f"  chips: {i + 1}/{len(images.paths)} images, {len(chips)} kept")
    out = Chips(np.stack(chips), np.array(labels, np.int64), paths)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, chips=out.chips, labels=out.labels, paths=np.array(paths))
    tmp.replace(cache)
    log(f"  cached {len(chips)} chips of {len(images.paths)} images in {cache}")
    return out


class PKSampler:
    """Batches of P identities x K images each (identities with >= 2 images only;
    an identity with fewer than K images is sampled with replacement)."""

    def __init__(self, labels: np.ndarray, p: int, k: int, seed: int = 0):
        self.p, self.k = p, k
        self.rng = np.random.default_rng(seed)
        ids, inverse = np.unique(labels, return_inverse=True)
        groups = [np.flatnonzero(inverse == i) for i in range(len(ids))]
        self.groups = [g for g in groups if len(g) >= 2]
        if len(self.groups) < p:
            raise ValueError(f"only {len(self.groups)} identities with 2+ images; P={p} needs more")

    def batch(self) -> np.ndarray:
        chosen = self.rng.choice(len(self.groups), self.p, replace=False)
        out = []
        for c in chosen:
            g = self.groups[c]
            out.append(self.rng.choice(g, self.k, replace=len(g) < self.k))
        return np.concatenate(out)


class Augment:
    """Light augmentation of uint8 crops, in this order: mirror; a small similarity
    warp (rotation, zoom, shift); occasional blur; contrast and brightness; optional
    per-channel colour cast and noise.  The defaults suit face chips: small enough
    that the eyes stay where the alignment template puts them."""

    def __init__(self, seed: int = 0, rotate_deg: float = 2.0, zoom: float = 0.03, shift_px: float = 3.0,
                 blur_p: float = 0.2, blur_sigma=(0.3, 1.0), contrast: float = 0.2, colour: float = 0.0,
                 noise: float = 0.0, border: int = cv2.BORDER_REPLICATE, rng: np.random.Generator | None = None):
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.rotate_deg, self.zoom, self.shift_px = rotate_deg, zoom, shift_px
        self.blur_p, self.blur_sigma = blur_p, blur_sigma
        self.contrast, self.colour, self.noise, self.border = contrast, colour, noise, border

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = np.empty_like(crops)
        r = self.rng
        for i, c in enumerate(crops):
            size = c.shape[0]
            if r.random() < 0.5:
                c = c[:, ::-1]
            m = cv2.getRotationMatrix2D((size / 2, size / 2), r.uniform(-self.rotate_deg, self.rotate_deg),
                                        r.uniform(1 - self.zoom, 1 + self.zoom))
            m[:, 2] += r.uniform(-self.shift_px, self.shift_px, 2)
            c = cv2.warpAffine(np.ascontiguousarray(c), m, (size, size), borderMode=self.border)
            if r.random() < self.blur_p:
                c = cv2.GaussianBlur(c, (0, 0), r.uniform(*self.blur_sigma))
            f = c.astype(np.float32)
            f = (f - f.mean()) * r.uniform(1 - self.contrast, 1 + self.contrast) + \
                f.mean() * r.uniform(1 - self.contrast, 1 + self.contrast)
            if self.colour:
                f *= r.uniform(1 - self.colour, 1 + self.colour, 3)
            if self.noise:
                f += r.normal(0, r.uniform(0, self.noise), f.shape)
            out[i] = np.clip(f, 0, 255).astype(np.uint8)
        return out
