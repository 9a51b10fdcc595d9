"""Low-light copies of LFW images (a face set for the quality gate and FMR in the dark).

Each image is darkened as a short exposure would: linear light scaled by a random
gain (0.04 .. 0.25), Gaussian read noise (sigma 1.5 .. 4 grey levels), back to sRGB-ish
gamma, 8-bit.  Two disjoint sets by person: ``tune`` (LFW people in no pair list,
where the gate's limits are chosen) and ``eval`` (pairs.txt people, where the gate
is measured).  Written as ``OUT/<set>/images/<Name>/<file>.jpg`` (JPEG q95).

    python benchmarks/dark_faces.py ../shared/data/lfw --out build/dark --eval-count 3000
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convert.lfw import people, read_pairs  # noqa: E402


def darken(bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    linear = (bgr.astype(np.float32) / 255.0) ** 2.2
    gain = rng.uniform(0.04, 0.25)
    noisy = linear * gain * 255.0 + rng.normal(0, rng.uniform(1.5, 4.0), bgr.shape)
    out = 255.0 * (np.clip(noisy, 0, 255) / 255.0) ** (1 / 2.2)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lfw", type=Path)
    ap.add_argument("--out", type=Path, default=Path("build/dark"))
    ap.add_argument("--eval-count", type=int, default=3000)
    args = ap.parse_args()
    used = set()
    for name in ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt"):
        used |= people(read_pairs(args.lfw / name))
    eval_people = people(read_pairs(args.lfw / "pairs.txt"))
    all_images = sorted((args.lfw / "images").glob("*/*.jpg"))
    tune = [p for p in all_images if p.parent.name not in used]
    ev = [p for p in all_images if p.parent.name in eval_people]
    ev = sorted(random.Random(0).sample(ev, min(args.eval_count, len(ev))))
    for name, paths in (("tune", tune), ("eval", ev)):
        for i, p in enumerate(paths):
            rng = np.random.default_rng(i + (0 if name == "tune" else 10 ** 6))
            out = args.out / name / "images" / p.parent.name / p.name
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), darken(cv2.imread(str(p)), rng), [cv2.IMWRITE_JPEG_QUALITY, 95])
        print(f"{name}: {len(paths)} images of {len({p.parent.name for p in paths})} people")


if __name__ == "__main__":
    main()
