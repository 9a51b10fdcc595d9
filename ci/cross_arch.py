"""The cross-architecture check: ``facelatch demo --json`` from two machines (e.g. x86-64
and arm64) must give the same decisions, distances within TOLERANCE, and every bundled
decision must sit further than TOLERANCE from its threshold on both (otherwise an
int8 kernel difference between ISAs could flip it, and "equal decisions" would be luck).

    python ci/cross_arch.py A.jsonl B.jsonl      exit 0: pass; 1: a check failed; 2: bad input

Stdlib only; tests/test_cross_arch.py applies ``margin_problems`` to this machine's demo.
"""

from __future__ import annotations

import json
import sys

TOLERANCE = 5e-3  # observed: up to 2e-3 between x86-64 and arm64 (int8 kernels differ by ISA)

# (score, threshold) pairs of one decision: the distance against the card's threshold
# and, when liveness ran, P(live) against the liveness threshold
SCORES = (("distance", "threshold"), ("live_score", "live_threshold"))


def margin_problems(decisions: list[dict], label: str = "") -> list[str]:
    problems = []
    for d in decisions:
        for score, threshold in SCORES:
            if score in d and abs(d[score] - d[threshold]) <= TOLERANCE:
                problems.append(f"{label}{d['probe']}: {score} {d[score]:.5f} is within {TOLERANCE:g} "
                                f"of its threshold {d[threshold]:.5f}")
    return problems


def compare(a: list[dict], b: list[dict]) -> tuple[list[str], float]:
    """Problems between two runs, and the largest score difference seen."""
    if [d["probe"] for d in a] != [d["probe"] for d in b]:
        return [f"different probes: {[d['probe'] for d in a]} vs {[d['probe'] for d in b]}"], 0.0
    problems, worst = [], 0.0
    for da, db in zip(a, b):
        for key in ("faces", "decision", "live"):
            if da.get(key) != db.get(key):
                problems.append(f"{da['probe']}: {key} {da.get(key)!r} vs {db.get(key)!r}")
        for score, _ in SCORES:
            if (score in da) != (score in db):
                problems.append(f"{da['probe']}: {score} present on one side only")
            elif score in da:
                diff = abs(da[score] - db[score])
                worst = max(worst, diff)
                if diff > TOLERANCE:
                    problems.append(f"{da['probe']}: {score} differs by {diff:.5f} > {TOLERANCE:g}")
    return problems, worst


def read(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: cross_arch.py A.jsonl B.jsonl", file=sys.stderr)
        return 2
    try:
        a, b = read(argv[0]), read(argv[1])
    except (OSError, ValueError) as e:
        print(f"cross_arch: error: {e}", file=sys.stderr)
        return 2
    if not a:
        print(f"cross_arch: error: no decisions in {argv[0]}", file=sys.stderr)
        return 2
    problems, worst = compare(a, b)
    problems += margin_problems(a, "A ") + margin_problems(b, "B ")
    smallest = min((abs(d[s] - d[t]) for d in a + b for s, t in SCORES if s in d), default=float("nan"))
    for d_a, d_b in zip(a, b):
        print(f"  {d_a['probe']:<18} {d_a['decision']:<8} distance {d_a.get('distance', float('nan')):.5f} vs "
              f"{d_b.get('distance', float('nan')):.5f} (threshold {d_a['threshold']:.5f})"
              + (f"   P(live) {d_a['live_score']:.5f} vs {d_b['live_score']:.5f}" if "live_score" in d_a else ""))
    print(f"cross-architecture: {len(a)} decisions, largest difference {worst:.5f}, smallest margin to a "
          f"threshold {smallest:.5f}, tolerance {TOLERANCE:g}: {'FAIL' if problems else 'equal'}")
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
