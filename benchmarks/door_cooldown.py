"""CPU a door spends on frames it cannot count, N frames at 15 fps (liveness off, as for
photos).  --scene cooldown: the enrolled person in view, so after each unlock the rest
of the 5 s cooldown passes with them in view; far: their face is below the config's
min_face_px (a passer-by across the street); crowd: two faces, which the door denies.
Prints the door loop's CPU time (process time, so another job on the machine does not
move it), median of --runs.

    python benchmarks/door_cooldown.py [--scene cooldown|far|crowd] [--frames 150] [--runs 5]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's edge/, not an installed one

from frames import crops, frame, write_demo_template, write_sequence  # noqa: E402
from edge.daemon import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scene", choices=("cooldown", "far", "crowd"), default="cooldown")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    state = tmp / "state"
    state.mkdir()
    write_demo_template(state / "template.json")
    faces = crops()
    scene = frame(faces["obama"], faces["biden"]) if args.scene == "crowd" else frame(faces["obama"])
    seq = write_sequence(tmp / "frames", [scene] * args.frames)
    policy = "[policy]\nmin_face_px = 400.0\n" if args.scene == "far" else ""
    cfg = tmp / "config.toml"
    cfg.write_text(f'state_dir = "{state}"\n[liveness]\nenabled = false\n[security]\nallow_insecure = true\n'
                   f'[camera]\nsource = "images"\ndevice = "{seq}"\npace = false\n{policy}')
    cpu = []
    for _ in range(args.runs):
        (state / "audit.jsonl").unlink(missing_ok=True)
        t = time.process_time()
        run(str(cfg))
        cpu.append(time.process_time() - t)
    audit = state / "audit.jsonl"  # a far face makes no attempt, so no audit line
    decisions = [json.loads(line)["decision"] for line in audit.read_text().splitlines()] if audit.exists() else []
    med = statistics.median(cpu)
    print(f"{args.scene}: {args.frames} frames, decisions {decisions}: door CPU median {med:.3f} s "
          f"({med / args.frames * 1000:.1f} ms a frame; runs {[round(c, 3) for c in cpu]})")


if __name__ == "__main__":
    main()
