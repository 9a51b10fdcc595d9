"""Time from a face entering the view to the unlock decision, through the real door
loop at 15 frames/s (paced image folder, the default window: k=5 of n=5, 3 of 5 in the
figures taken before it became the default; liveness stage running with its threshold at 0
so the bundled photographs pass it).

    python benchmarks/time_to_unlock.py [--runs 10]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from frames import crops, frame, write_sequence  # noqa: E402

from edge import actuators, camera  # noqa: E402
from edge.daemon import run  # noqa: E402
from edge.pipeline import FacePipeline, read_image  # noqa: E402
from edge.template import Template  # noqa: E402

EMPTY = 10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--fps", type=float, default=15.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    c = crops()
    seq = write_sequence(tmp / "frames", [frame()] * EMPTY + [frame(c["obama"])] * 10)
    pipe = FacePipeline(liveness=None)
    emb = [pipe.analyze(read_image(ROOT / "edge/demo/enroll" / n))[0].embedding for n in ("obama.jpg", "obama2.jpg")]
    Template(pipe.model_sha256, np.stack(emb), "cosine").save(tmp / "template.json")
    cfg = tmp / "config.toml"
    cfg.write_text(f'state_dir = "{tmp}"\n[liveness]\nthreshold = 0.0\n[security]\nallow_insecure = true\n'
                   f'[camera]\nsource = "images"\ndevice = "{seq}"\nfps = {args.fps}\npace = true\n')
    marks = {}
    real_read = camera.ImageFolder.read

    def read(self):
        f = real_read(self)
        if f is not None and f.index == EMPTY + 1:
            marks["enter"] = time.monotonic()
        return f

    camera.ImageFolder.read = read
    actuators.LogActuator.unlock = lambda self: marks.setdefault("unlock", time.monotonic()) and {"actuator": "log"}
    delays = []
    for _ in range(args.runs):
        marks.clear()
        (tmp / "lockout.json").unlink(missing_ok=True)
        run(str(cfg))
        delays.append(1000 * (marks["unlock"] - marks["enter"]))
    print(json.dumps({"fps": args.fps, "runs": args.runs, "median_ms": statistics.median(delays),
                      "max_ms": max(delays), "all_ms": [round(d, 1) for d in delays]}))


if __name__ == "__main__":
    main()
