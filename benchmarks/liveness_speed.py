"""The liveness stack alone, per frame, one thread: patch cut + model + head, for each
given card, alternated so both see the same machine state.

    python benchmarks/liveness_speed.py models/facelatch_liveness.json build/liveness_int8.json [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    from edge.bench import demo_frames
    from edge.liveness import Liveness
    from edge.modelcard import load_card
    from edge.pipeline import FacePipeline

    ap = argparse.ArgumentParser()
    ap.add_argument("cards", nargs="+")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pipe = FacePipeline(liveness=None)
    frames = demo_frames(pipe)
    faces = [pipe.finder.detect(f)[0] for f in frames]
    models = [Liveness(load_card(c, kind="liveness")) for c in args.cards]
    times = {c: {"score": [], "model": []} for c in args.cards}
    for _ in range(args.rounds):
        for card, live in zip(args.cards, models):
            t_end, n = time.perf_counter() + args.seconds / args.rounds, 0
            while time.perf_counter() < t_end:
                rgb, face = frames[n % len(frames)], faces[n % len(frames)]
                t0 = time.perf_counter()
                patch = live.patch(rgb, face)
                t1 = time.perf_counter()
                live.model.run(live.model.pixels(patch))
                t2 = time.perf_counter()
                live.score_patch(patch)
                times[card]["score"].append(1000 * (t1 - t0 + time.perf_counter() - t2))
                times[card]["model"].append(1000 * (t2 - t1))
                n += 1
    out = {c: {k: {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95)), "n": len(v)}
               for k, v in t.items()} for c, t in times.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
