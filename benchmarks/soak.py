"""Soak test of the door loop: N frames from a looping 640x480 video file of real
faces (enrolled person arriving and leaving, strangers, empty scene), RSS sampled
as it runs.  Writes JSON and a Markdown table.

    python benchmarks/soak.py --frames 100000 --out build/soak
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from frames import crops, frame  # noqa: E402

from edge.daemon import run  # noqa: E402
from edge.pipeline import FacePipeline, read_image  # noqa: E402
from edge.template import Template  # noqa: E402


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--every", type=int, default=5_000, help="RSS sample interval (frames)")
    ap.add_argument("--out", default="build/soak")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    c = crops()
    scene = ([frame()] * 30 + [frame(c["obama"])] * 30 + [frame()] * 30 + [frame(c["biden"])] * 45
             + [frame(c["obama"], c["hanks"])] * 15 + [frame()] * 30)
    video = tmp / "door.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    for f in scene:
        w.write(f)
    w.release()
    pipe = FacePipeline()
    emb = [pipe.analyze(read_image(ROOT / "edge/demo/enroll" / n))[0].embedding for n in ("obama.jpg", "obama2.jpg")]
    state = tmp / "state"
    state.mkdir()
    Template(pipe.model_sha256, np.stack(emb), "cosine").save(state / "template.json")
    cfg = tmp / "config.toml"
    cfg.write_text(f'state_dir = "{state}"\n[camera]\nsource = "opencv"\ndevice = "{video}"\nloop = true\n'
                   f'[policy]\nunlock_cooldown_s = 1.0\nmax_failed_attempts = 1000\n')
    samples, t0 = [], time.time()

    def on_frame(n):
        if n == 1 or n % args.every == 0:
            samples.append({"frames": n, "seconds": round(time.time() - t0, 1), "rss_mb": round(rss_mb(), 1)})
            print(f"{n:>7} frames  {samples[-1]['seconds']:>7.0f} s  RSS {samples[-1]['rss_mb']:.1f} MB", flush=True)

    run(str(cfg), max_frames=args.frames, on_frame=on_frame)
    decisions = [json.loads(l)["decision"] for l in (state / "audit.jsonl").read_text().splitlines()]
    rotated = sorted(p.name for p in state.glob("audit.jsonl.*"))
    result = {"frames": args.frames, "seconds": round(time.time() - t0, 1), "samples": samples,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "decisions_in_current_audit_file": {k: decisions.count(k) for k in set(decisions)},
              "rotated_audit_files": rotated, "scene_frames": len(scene)}
    (out / "soak.json").write_text(json.dumps(result, indent=1))
    lines = ["| frames | seconds | RSS (MB) |", "|---|---|---|"]
    lines += [f"| {s['frames']:,} | {s['seconds']:.0f} | {s['rss_mb']:.1f} |" for s in samples]
    (out / "soak.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))


if __name__ == "__main__":
    main()
