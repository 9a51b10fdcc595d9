"""The effect of one BLAS/OpenMP thread (the device process's default) against one per
core: wall time of `facelatch demo` (a fresh process: model loading, enroll, five probes),
`facelatch bench` frames/s and the CPU time the bench process spends per frame (threads
that busy-wait show up there), alternating the two settings round by round.

    python benchmarks/blas_threads.py [--rounds R] [--seconds S] [--python PY]

"default" leaves OPENBLAS_NUM_THREADS/OMP_NUM_THREADS unset (the CLI sets them to 1);
"per core" sets both to os.cpu_count() explicitly, as numpy would on its own.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def env_for(setting: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if setting == "per core":
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(os.cpu_count())
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    settings = ("default", "per core")
    demo_s = {s: [] for s in settings}
    fps = {s: [] for s in settings}
    cpu_ms = {s: [] for s in settings}
    for r in range(args.rounds):
        for s in settings if r % 2 == 0 else settings[::-1]:
            t0 = time.perf_counter()
            subprocess.run([args.python, "-m", "edge.cli", "demo", "--json"], env=env_for(s), check=True,
                           capture_output=True)
            demo_s[s].append(time.perf_counter() - t0)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run([args.python, "-m", "edge.cli", "bench", "--seconds", str(args.seconds), "--json"],
                                 env=env_for(s), check=True, capture_output=True, text=True).stdout
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = json.loads(out)
            fps[s].append(r["fps"])
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            cpu_ms[s].append(1000 * cpu / r["frames"])
    board = json.loads(out)["board"]
    print(f"board: {board['cpu']} ({board['machine']}), {board['cores']} cores; {board['interpreter']}; "
          f"numpy {board['numpy']}; {args.rounds} rounds")
    for s in settings:
        print(f"  {s:<9} demo wall {np.median(demo_s[s]):5.2f} s (min {min(demo_s[s]):.2f}); bench "
              f"{np.median(fps[s]):5.1f} frames/s (min {min(fps[s]):.1f}, max {max(fps[s]):.1f}), "
              f"CPU {np.median(cpu_ms[s]):5.1f} ms per frame (min {min(cpu_ms[s]):.1f})")


if __name__ == "__main__":
    main()
