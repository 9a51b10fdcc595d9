"""CPU a door spends on frames it cannot count: the enrolled person in view for N frames
(15 fps, liveness off as for photos), so after each unlock the rest of the 5 s cooldown
passes with them in view.  Prints the door loop's CPU time (process time, so another
job on the machine does not move it), median of --runs.

    python benchmarks/door_cooldown.py [--frames 150] [--runs 5]
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
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    state = tmp / "state"
    state.mkdir()
    write_demo_template(state / "template.json")
    seq = write_sequence(tmp / "frames", [frame(crops()["obama"])] * args.frames)
    cfg = tmp / "config.toml"
    cfg.write_text(f'state_dir = "{state}"\n[liveness]\nenabled = false\n[security]\nallow_insecure = true\n'
                   f'[camera]\nsource = "images"\ndevice = "{seq}"\npace = false\n')
    cpu = []
    for _ in range(args.runs):
        (state / "audit.jsonl").unlink(missing_ok=True)
        t = time.process_time()
        run(str(cfg))
        cpu.append(time.process_time() - t)
    decisions = [json.loads(line)["decision"] for line in (state / "audit.jsonl").read_text().splitlines()]
    med = statistics.median(cpu)
    print(f"{args.frames} frames, decisions {decisions}: door CPU median {med:.3f} s "
          f"({med / args.frames * 1000:.1f} ms a frame; runs {[round(c, 3) for c in cpu]})")


if __name__ == "__main__":
    main()
