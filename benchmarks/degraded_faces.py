"""Blurred, small and dark copies of real LFW / CelebA faces, through the device pipeline.

The quality gate's sharpness and size limits (benchmarks/quality_limits.py) are measured
on real faces made worse in known steps, in memory (nothing written but the cache):

- ``sharp``: every image at 5 levels of one of three blurs (image i gets blur i mod 3):
  Gaussian (sigma 1, 2, 3, 4.5, 6 % of the face box), motion (a line of sqrt(12) times
  that sigma, random angle: the same spread) and down-then-up scaling (the face shrunk to
  56, 40, 28, 20, 14 px and scaled back: a low-resolution camera or digital zoom);
- ``small``: the whole image scaled down so the face box is 56, 40, 30, 24, 19, 15 or 12 px
  (levels at most 0.85 of the face's own size; a face far from the camera);
- ``dark``: the short-exposure model of benchmarks/dark_faces.py (CelebA; LFW has its own
  dark sets).

Groups (people never mixed): ``lfwtune`` LFW people not in pairs.txt (every image of the
few with several images, then single images), ``lfweval`` pairs.txt people with several
images, ``celebatune`` even CelebA identities with several images, ``celebaeval`` odd ones.
Each set is cached like benchmarks/embed_cache.py (``OUT/<deg>_<group>__faces.npz`` with
``source`` (the undegraded image's key in the lfw / celeba cache), ``kind`` and ``level``,
``OUT/<deg>_<group>__<encoder>.npz`` and the chip measures ``OUT/<deg>_<group>__chipq.npz``).

    nice -n 10 python benchmarks/degraded_faces.py --groups lfwtune lfweval --per-group 800 --degradations sharp small
    nice -n 10 python benchmarks/degraded_faces.py --groups celebatune --per-group 400   # and celebaeval
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.dark_faces import darken  # noqa: E402
from benchmarks.embed_cache import (QUALITY, chip_quality, embed_chip_and_mirror, find_face,  # noqa: E402
                                    save_chip_quality, save_faces, save_raw)
from convert.lfw import people, read_pairs  # noqa: E402
from edge.align import Aligner  # noqa: E402
from edge.embed import Embedder  # noqa: E402
from edge.modelcard import load_card, models_dir  # noqa: E402
from edge.pipeline import FaceFinder, read_image  # noqa: E402

BLUR_SIGMA = (0.01, 0.02, 0.03, 0.045, 0.06)  # of the face box
DOWNUP_PX = (56, 40, 28, 20, 14)
SMALL_PX = (56, 40, 30, 24, 19, 15, 12)
ENCODERS = ("facelatch_sface_int8", "facelatch_dlib_resnet_int8")


def gaussian(rgb, sigma):
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def motion(rgb, sigma, angle):
    length = max(2, int(round(np.sqrt(12) * sigma)))
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return cv2.filter2D(rgb, -1, k / k.sum())


def scaled(rgb, factor):
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)


def down_up(rgb, factor):
    h, w = rgb.shape[:2]
    return cv2.resize(scaled(rgb, factor), (w, h), interpolation=cv2.INTER_LINEAR)


def versions(deg: str, i: int, rgb: np.ndarray, face_px: float, rng: np.random.Generator):
    """(kind, level, degraded image) of one source image."""
    if deg == "sharp":
        kind = ("gaussian", "motion", "downup")[i % 3]
        for k in range(5):
            if kind == "downup":
                yield kind, DOWNUP_PX[k], down_up(rgb, min(1.0, DOWNUP_PX[k] / face_px))
            elif kind == "motion":
                yield kind, BLUR_SIGMA[k], motion(rgb, BLUR_SIGMA[k] * face_px, rng.uniform(0, 180))
            else:
                yield kind, BLUR_SIGMA[k], gaussian(rgb, BLUR_SIGMA[k] * face_px)
    elif deg == "small":
        for px in SMALL_PX:
            if px <= 0.85 * face_px:
                yield "small", px, scaled(rgb, px / face_px)
    else:  # dark: darken() works on any channel order
        yield "dark", 0.0, darken(rgb, rng)


def groups(lfw: Path, cache: Path, per_group: int) -> dict:
    """{group: (image root, [(key, label, face_px)])}, sampled with a fixed seed."""
    rng = np.random.default_rng(0)
    eval_people = people(read_pairs(lfw / "pairs.txt"))
    out = {}
    for source, root in (("lfw", lfw / "images"), ("celeba", None)):
        z = np.load(cache / f"{source}__faces.npz")
        keys, labels, found = z["keys"], z["labels"], z["found"]
        face_px = z["quality"][:, list(z["quality_names"]).index("face_px")]
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        multi = (counts[inverse] > 1) & found
        if source == "lfw":
            is_eval = np.isin(labels, list(eval_people))
            split = {"tune": ~is_eval, "eval": is_eval}
        else:
            odd = np.array([int(lab[6:]) % 2 == 1 for lab in labels])
            split = {"tune": ~odd, "eval": odd}
        for name, mask in split.items():
            first = np.flatnonzero(mask & multi)
            pick = rng.permutation(first)[:per_group]
            if len(pick) < per_group:  # LFW tune: few people with several images; fill with single images
                rest = np.flatnonzero(mask & found & ~multi)
                pick = np.concatenate([pick, rng.permutation(rest)[:per_group - len(pick)]])
            out[f"{source}{name}"] = (source, sorted((keys[i], labels[i], float(face_px[i])) for i in pick))
    return out


def build(args, versions, skip=lambda deg, source: False, seed_offset=lambda deg: 0) -> None:
    """Every (group, degradation) set of ``args`` through the device pipeline into the cache.
    ``versions(deg, i, rgb, key, source, face_px, rng)`` yields (kind, level, degraded image)."""
    roots = {"lfw": args.lfw / "images", "celeba": args.celeba}
    cards = [load_card(models_dir() / f"{e}.json", kind="encoder") for e in args.encoders]
    finder = FaceFinder(Aligner.from_card(cards[0]))
    stages = [(card, Aligner.from_card(card), Embedder(card)) for card in cards]
    chosen = groups(args.lfw, args.cache, args.per_group)
    t0 = time.time()
    for group in args.groups:
        source, items = chosen[group]
        for deg in args.degradations:
            if skip(deg, source):
                continue
            rows, land, qual, found = [], [], [], []
            raws = {card.data["name"]: [] for card in cards}
            chipq = {card.data["name"]: [] for card in cards}
            for i, (key, label, face_px) in enumerate(items):
                rgb = read_image(roots[source] / key)
                rng = np.random.default_rng(i + (10 ** 6 if "eval" in group else 0) + seed_offset(deg))
                for kind, level, img in versions(deg, i, rgb, key, source, face_px, rng):
                    face = find_face(finder, img)
                    rows.append((f"{key}#{kind}{level:g}", label, key, kind, level))
                    found.append(face is not None)
                    land.append(face[0] if face else np.zeros((468, 2), np.float32))
                    qual.append(face[1] if face else [0.0] * len(QUALITY))
                    for card, aligner, embedder in stages:
                        name = card.data["name"]
                        raws[name].append(embed_chip_and_mirror(aligner, embedder, img, face[0]) if face
                                          else np.zeros((2, embedder.dim), np.float32))
                        chipq[name].append(chip_quality(aligner, img, face[0]) if face else (0.0, 0.0))
            name = f"{deg}_{group}"
            keys, labels, sources, kinds, levels = zip(*rows)
            save_faces(args.cache / f"{name}__faces.npz", keys, labels, np.array(found), np.array(qual, np.float32),
                       np.array(land, np.float32), source=np.array(sources), kind=np.array(kinds),
                       level=np.array(levels, np.float32))
            for card in cards:
                save_raw(args.cache, name, card, np.array(raws[card.data["name"]], np.float32))
            save_chip_quality(args.cache, name, chipq)
            print(f"{name}: {len(rows)} images from {len(items)} sources, {sum(found)} faces found, "
                  f"{time.time() - t0:.0f} s", flush=True)


def arguments(degradations: list[str], per_group: int) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/lfw"))
    ap.add_argument("--celeba", type=Path, default=Path("../shared/data/celeba-aligned-10k"))
    ap.add_argument("--cache", type=Path, default=Path("build/emb"), help="holds lfw__faces.npz, celeba__faces.npz")
    ap.add_argument("--groups", nargs="+", default=["lfwtune", "lfweval", "celebatune", "celebaeval"])
    ap.add_argument("--degradations", nargs="+", default=degradations)
    ap.add_argument("--per-group", type=int, default=per_group)
    ap.add_argument("--encoders", nargs="+", default=list(ENCODERS),
                    help="the first one's alignment finds the face (SFace's by default)")
    return ap


def main():
    args = arguments(["sharp", "small", "dark"], 500).parse_args()
    build(args, lambda deg, i, rgb, key, source, face_px, rng: versions(deg, i, rgb, face_px, rng),
          skip=lambda deg, source: deg == "dark" and source == "lfw")


if __name__ == "__main__":
    main()
