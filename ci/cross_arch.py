"""The cross-architecture check: ``facelatch demo --json`` from two machines (e.g. x86-64
and arm64) must give the same decisions, each score (distance, P(live)) within its
model's cross-architecture tolerance, and every bundled decision must sit further than
that tolerance from its threshold on both (otherwise a kernel difference between ISAs
could flip it, and "equal decisions" would be luck).

The tolerance is per model, recorded in its card (``cross_arch.tolerance``, with the
measurement it rests on; the demo's JSON carries it as ``distance_tolerance`` and
``live_tolerance``): an int8 encoder's outputs differ by ISA because XNNPACK's int8
microkernels requantize differently on x86-64 and arm64 (BENCHMARKS.md, "on arm64").

    python ci/cross_arch.py A.jsonl B.jsonl      exit 0: pass; 1: a check failed; 2: bad input

Stdlib only; tests/test_crossarch.py applies ``margin_problems`` to this machine's demo.
"""

from __future__ import annotations

import json
import sys

# (score, its threshold, its tolerance) in one decision: the distance against the card's
# threshold and, when liveness ran, P(live) against the liveness threshold
SCORES = (("distance", "threshold", "distance_tolerance"), ("live_score", "live_threshold", "live_tolerance"))


def tolerance_problems(decisions: list[dict], label: str = "") -> list[str]:
    """Every score must come with its model's recorded tolerance (a positive number)."""
    problems = []
    for d in decisions:
        for score, _, tol in SCORES:
            if score in d and not (isinstance(d.get(tol), (int, float)) and d[tol] > 0):
                problems.append(f"{label}{d['probe']}: no cross-architecture tolerance for {score} "
                                f"(the model card lacks cross_arch.tolerance)")
    return problems


def margin_problems(decisions: list[dict], label: str = "") -> list[str]:
    problems = tolerance_problems(decisions, label)
    for d in decisions:
        for score, threshold, tol in SCORES:
            if score in d and isinstance(d.get(tol), (int, float)) and abs(d[score] - d[threshold]) <= d[tol]:
                problems.append(f"{label}{d['probe']}: {score} {d[score]:.5f} is within {d[tol]:g} "
                                f"of its threshold {d[threshold]:.5f}")
    return problems


def compare(a: list[dict], b: list[dict]) -> tuple[list[str], float]:
    """Problems between two runs, and the largest difference seen per score."""
    if [d["probe"] for d in a] != [d["probe"] for d in b]:
        return [f"different probes: {[d['probe'] for d in a]} vs {[d['probe'] for d in b]}"], 0.0
    problems, worst = [], {}
    for da, db in zip(a, b):
        for key in ("faces", "decision", "live", "encoder", "distance_tolerance", "live_tolerance"):
            if da.get(key) != db.get(key):
                problems.append(f"{da['probe']}: {key} {da.get(key)!r} vs {db.get(key)!r}")
        for score, _, tol in SCORES:
            if (score in da) != (score in db):
                problems.append(f"{da['probe']}: {score} present on one side only")
            elif score in da:
                diff = abs(da[score] - db[score])
                worst[score] = max(worst.get(score, 0.0), diff)
                if isinstance(da.get(tol), (int, float)) and diff > da[tol]:
                    problems.append(f"{da['probe']}: {score} differs by {diff:.5f} > its tolerance {da[tol]:g}")
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
    for d_a, d_b in zip(a, b):
        print(f"  {d_a['probe']:<18} {d_a['decision']:<8} distance {d_a.get('distance', float('nan')):.5f} vs "
              f"{d_b.get('distance', float('nan')):.5f} (threshold {d_a['threshold']:.5f})"
              + (f"   P(live) {d_a['live_score']:.5f} vs {d_b['live_score']:.5f}" if "live_score" in d_a else ""))
    for score, threshold, tol in SCORES:
        margins = [abs(d[score] - d[threshold]) for d in a + b if score in d]
        if margins:
            print(f"cross-architecture {score}: largest difference {worst.get(score, 0.0):.5f}, smallest margin "
                  f"to its threshold {min(margins):.5f}, tolerance {a[0].get(tol)} ({a[0].get('encoder', '?') if score == 'distance' else 'liveness model'})")
    print(f"cross-architecture: {len(a)} decisions: {'FAIL' if problems else 'equal'}")
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
