"""Per-stage latency of the device pipeline (decode excluded), median and p95 in ms.

    python benchmarks/latency.py [IMAGE_DIR] [--threads N] [--repeat R]

Default images: the bundled demo images (single-face ones).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.pipeline import FacePipeline, read_image  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="?", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--limit", type=int, default=50)
    args = ap.parse_args()
    root = Path(args.images) if args.images else Path(__file__).resolve().parent.parent / "edge" / "demo"
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".png"})[: args.limit]
    pipe = FacePipeline(threads=args.threads)
    f = pipe.finder
    stages = {"detect": [], "landmarks": [], "align": [], "embed": []}
    images = [read_image(p) for p in paths]
    for _ in range(args.repeat):
        for rgb in images:
            t0 = time.perf_counter()
            faces = f.detect(rgb)
            t1 = time.perf_counter()
            if not faces:
                continue
            lm, _ = f.mesh.landmarks(rgb, faces[0])
            t2 = time.perf_counter()
            chip = f.aligner.chip(rgb, lm)
            t3 = time.perf_counter()
            pipe.embedder.embed(chip)
            t4 = time.perf_counter()
            for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                stages[k].append(1000 * v)
    print(f"{len(images)} images x {args.repeat}, threads={args.threads}, runtime {pipe.embedder.model.runtime}, "
          f"flip average {'on' if pipe.embedder.flip else 'off'}")
    total = np.zeros(len(stages["detect"]))
    for k, v in stages.items():
        v = np.array(v)
        total += v
        print(f"  {k:<10} median {np.median(v):6.2f} ms   p95 {np.percentile(v, 95):6.2f} ms")
    print(f"  {'total':<10} median {np.median(total):6.2f} ms   p95 {np.percentile(total, 95):6.2f} ms")


if __name__ == "__main__":
    main()
