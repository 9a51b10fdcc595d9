"""Where the frame loop's time goes: cProfile of the device pipeline on 640x480
frames (decode included), top functions by own time.

    python benchmarks/profile_loop.py [--frames 600]
"""

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.bench import demo_frames  # noqa: E402
from edge.pipeline import FacePipeline  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=600)
    args = ap.parse_args()
    pipe = FacePipeline()
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1] for f in demo_frames(pipe)]

    def loop():
        for i in range(args.frames):
            bgr = cv2.imdecode(jpegs[i % len(jpegs)], cv2.IMREAD_COLOR)
            pipe.analyze(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    prof = cProfile.Profile()
    prof.runcall(loop)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    total = sum(v[2] for v in stats.stats.values())
    rows = sorted(((v[2], f"{k[2]} ({Path(k[0]).name}:{k[1]})") for k, v in stats.stats.items()), reverse=True)[:12]
    print(f"{args.frames} frames, {1000 * total / args.frames:.2f} ms/frame of own time")
    print("| function | share of loop time |\n|---|---|")
    for t, name in rows:
        print(f"| {name} | {100 * t / total:.1f} % |")


if __name__ == "__main__":
    main()
