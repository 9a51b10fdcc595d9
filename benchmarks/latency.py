"""Per-stage and whole-frame latency of the device pipeline, one or more encoders
INTERLEAVED frame by frame in one process (so that load on a shared machine hits
every encoder alike), median / 10th pct / p95 in ms.

    python benchmarks/latency.py [IMAGE_DIR] [--encoders facelatch_sface_int8 facelatch_fusion_int8]
                                 [--threads N] [--repeat R] [--look first]

A frame: detect, landmarks, quality, liveness, align, embed (what ``FacePipeline.analyze``
does) and the match against one enrolled person; ``--look first`` embeds and matches as
the door does (edge.secondlook: the chip alone, the mirror only near the threshold).  Default frames: 640x480 frames with
one bundled demo face each (as ``facelatch bench``); with IMAGE_DIR, its images as they
are (decode excluded).  The load average before and after is printed: on a shared
machine the figures are upper bounds, the ratios between encoders are what to read.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.bench import demo_frames  # noqa: E402
from edge.decision import Identifier, person_reference  # noqa: E402
from edge.pipeline import DEFAULT_ENCODER, FacePipeline, read_image  # noqa: E402
from edge.secondlook import SecondLook  # noqa: E402

STAGES = ("detect", "landmarks", "align", "liveness", "embed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="?", default=None)
    ap.add_argument("--encoders", nargs="+", default=[DEFAULT_ENCODER])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--look", choices=["full", "first"], default="full",
                    help="first: as the door (chip alone, mirror only within the card's band of the threshold)")
    args = ap.parse_args()
    pipes = [FacePipeline(e, threads=args.threads) for e in args.encoders]
    if args.images:
        paths = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in {".jpg", ".png"})
        frames = [read_image(p) for p in paths[: args.limit]]
    else:
        frames = demo_frames(pipes[0])
    matchers = []
    for pipe in pipes:  # one enrolled person: the first frame's face
        e = pipe.analyze(frames[0])[0].embedding
        matchers.append(Identifier(["user"], person_reference(e[None], "cosine")[None], "cosine",
                                   pipe.encoder_card.threshold(1e-4), 1e-4))
    for pipe, m in zip(pipes, matchers):  # warm-up
        for rgb in frames[:3]:
            m.identify(pipe.analyze(rgb)[0].embedding)
    load0 = os.getloadavg()
    looks = [SecondLook(pipe) for pipe in pipes]
    rec = [{k: [] for k in STAGES + ("match", "frame")} for _ in pipes]
    for _ in range(args.repeat):
        for rgb in frames:
            for pipe, m, r, second in zip(pipes, matchers, rec, looks):
                before = {k: getattr(pipe.times, k) for k in STAGES}
                t0 = time.perf_counter()
                found = pipe.analyze(rgb, look=args.look)
                t1, completing = time.perf_counter(), pipe.times.embed
                if found and found[0].embedding is not None:
                    second.identify(found[0], m)  # completes the embedding (timed as embed) where needed
                t2 = time.perf_counter()
                for k in STAGES:
                    r[k].append(1000 * (getattr(pipe.times, k) - before[k]))
                r["match"].append(1000 * (t2 - t1 - (pipe.times.embed - completing)))
                r["frame"].append(1000 * (t2 - t0))
    load1 = os.getloadavg()
    print(f"{len(frames)} frames x {args.repeat}, encoders interleaved frame by frame, look {args.look}, threads={args.threads}, "
          f"runtime {pipes[0].embedder.runtime}; load average before {load0[0]:.2f}, after {load1[0]:.2f} "
          f"({os.cpu_count()} cores)")
    print("| encoder | " + " | ".join(f"{k} median" for k in STAGES + ("match",))
          + " | whole frame median | 10th pct | p95 | frames/s (1 / mean) |")
    print("|---" * (len(STAGES) + 6) + "|")
    for pipe, r in zip(pipes, rec):
        f = np.array(r["frame"])
        print(f"| {pipe.encoder_card.data['name']} | "
              + " | ".join(f"{np.median(r[k]):.2f}" for k in STAGES + ("match",))
              + f" | {np.median(f):.2f} | {np.percentile(f, 10):.2f} | {np.percentile(f, 95):.2f} "
                f"| {1000 / f.mean():.1f} |")
    base = np.array(rec[0]["frame"])
    for pipe, r in list(zip(pipes, rec))[1:]:
        ratio = np.array(r["frame"]) / base
        print(f"{pipe.encoder_card.data['name']} / {pipes[0].encoder_card.data['name']}, same frame: "
              f"median ratio {np.median(ratio):.2f}, median extra {np.median(np.array(r['frame']) - base):.2f} ms")


if __name__ == "__main__":
    main()
