"""Screen replays at the door, per attempt: how often one attempt -- up to
``attempt_timeout_s`` of a face in view -- unlocks, on cameras the liveness head never saw
(issue 19).

The window figure (``attack_windows``: n consecutive attack frames, k of them live) says
how often five frames pass; a door gives an attacker more than five frames.  Here the
real door rule (edge.policy.DoorPolicy) runs over each webcam's recorded frames in
capture order, on their own timestamps (NUAA: picture numbers at 15 frames/s), judged
by the shipped recipe's head trained without that camera at the threshold set without
it (``benchmarks/pad_stack.py`` ``held_out``).  Identity is taken as matched on every
frame -- an attack that shows the resident -- so the figure is the liveness rule's alone.
Every frame of the scan is fed; one the default door does not judge (no face found,
refused by the quality gate, too small, a crowd: ``door_judged`` of ``pad_stack.py
quality``) as a frame without a face.  Recordings are cut into clips where no frame comes
for more than ``BREAK_S`` (a pause: what the door saw there is unknown).

An attempt starts at every third judged frame that has a whole ``attempt_timeout_s`` of
its clip after it, and runs, with a fresh policy, until the door's first decision: an
unlock, or a deny (timed out, or the face gone for ``lost_after_s``) -- so no attempt is
left out for being slow.  Per source: the share of attack attempts that unlock, the share
of live attempts that do (a resident walking up) and their median time to unlock.

``policy.min_live_share`` (an unlock also needs that share of the attempt's matching
frames live) is chosen leave one source out: for source S, from ``GRID`` on the other
sources' attempts, the value with the fewest attack unlocks among those whose mean live
unlock share is within ``LIVE_LOSS`` of no rule's (ties: the higher value); S's figure is
then S's own at that value.

With ``--calibrate`` each camera is first calibrated as an installer would
(edge.calibration: the highest threshold rejecting 2 % of its live frames, never below the
shipped one) on the first half of its judged live frames in capture order; live attempts
start only in the second half, attack attempts anywhere, both at that threshold.

    python benchmarks/pad_stack.py quality && python benchmarks/pad_stack.py features   # build/pad/*.npz
    python benchmarks/door_attempts.py [--calibrate] [--json build/door_attempts.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.pad_stack import held_out  # noqa: E402
from convert.pad_stack import capture_order  # noqa: E402
from edge.calibration import calibrated_threshold  # noqa: E402
from edge.policy import DoorPolicy, FrameResult, PolicyConfig  # noqa: E402

GRID = (0.0, 0.5, 0.6, 0.67, 0.75, 0.8, 0.85, 0.9, 0.95)
LIVE_LOSS = 0.01
NUAA_FPS = 15.0
BREAK_S = 1.0  # a recording paused: no frame for longer than the policy's lost_after_s
BOX = [(100.0, 100.0, 200.0, 200.0)]


def scores_of(h: dict, source: str) -> np.ndarray:
    out = np.full(len(h["source"]), np.nan)
    out[h["source"] == source] = h["nest"]["test"][source]
    return out


def recordings(h: dict, scan: dict, source: str, live: bool, skip=None):
    """(t, judged, score) per continuous clip of ``source``'s live or attack recordings, in
    capture order: every frame of the scan (faces the door does not judge, or that the scan
    did not find, become frames without a face; ``skip``: judged ones that do too), cut
    where no frame at all comes for more than ``BREAK_S`` (a pause in the recording: what
    the door would have seen there is unknown)."""
    m = (scan["source"] == source) & (scan["live"] == live)
    mine = h["source"] == source
    door = h["door_judged"] if skip is None else h["door_judged"] & ~skip
    judged, score = np.zeros(len(m), bool), np.full(len(m), np.nan)
    judged[h["index"][mine]] = door[mine]
    score[h["index"][mine]] = h["nest"]["test"][source]
    for seq in np.unique(scan["sequence"][m]):
        i = np.flatnonzero(m & (scan["sequence"] == seq))
        o = scan["order"][i].astype(np.float64)
        i, o = i[np.argsort(o, kind="stable")], np.sort(o, kind="stable")
        t = (o - o[0]) / 1e9 if o.max() > 1e12 else (o - o[0]) / NUAA_FPS  # ns timestamps, else picture numbers
        cuts = np.flatnonzero(np.diff(t) > BREAK_S) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(t)]):
            yield t[a:b] - t[a], judged[i[a:b]], score[i[a:b]]


def calibration_half(h: dict, scan: dict, source: str) -> tuple[np.ndarray, float]:
    """The first half of ``source``'s judged live frames in capture order (a mask) and the
    threshold an installer calibrating on them gets."""
    m = (h["source"] == source) & h["live"] & h["door_judged"]
    i = np.flatnonzero(m)
    rows = h["index"][i]
    i = i[np.argsort(capture_order(scan["sequence"][rows], scan["order"][rows]), kind="stable")][: m.sum() // 2]
    half = np.zeros(len(m), bool)
    half[i] = True
    return half, calibrated_threshold(scores_of(h, source)[i], h["thr"][source])


def attempt(t, judged, live, start: int, config: PolicyConfig):
    """(unlocked, seconds) of one attempt from frame ``start``; None when the recording ends first."""
    p = DoorPolicy(config)
    for j in range(start, len(t)):
        f = FrameResult(t=float(t[j]), boxes=BOX if judged[j] else [], match=bool(judged[j]),
                        live=bool(live[j]), live_score=None, person="resident", face_px=200.0)
        for d in p.observe(f, 1e9 + float(t[j])):
            return d.kind == "unlock", float(t[j] - t[start])
    return None


def attempts(recs, threshold: float, config: PolicyConfig, step: int = 3) -> dict:
    """Attempts from every ``step``-th judged frame that has a whole ``attempt_timeout_s``
    of its clip after it (so every attempt counted could reach its decision in the clip:
    none is left out for being slow)."""
    outcomes, times = [], []
    for t, judged, score in recs:
        live = score >= threshold
        for start in np.flatnonzero(judged & (t < t[-1] - config.attempt_timeout_s))[::step]:
            r = attempt(t, judged, live, start, config)
            if r is not None:
                outcomes.append(r[0])
                if r[0]:
                    times.append(r[1])
    return {"attempts": len(outcomes), "unlock_share": float(np.mean(outcomes)) if outcomes else float("nan"),
            "median_s": float(np.median(times)) if times else None}


def choose(table: dict, sources: list, held: str | None = None) -> float:
    """The rule on every source but ``held`` (None: on all of them, the shipped default's basis)."""
    others = [s for s in sources if s != held]
    live0 = np.mean([table[s][0.0]["live"]["unlock_share"] for s in others])
    ok = [r for r in GRID if np.mean([table[s][r]["live"]["unlock_share"] for s in others]) >= live0 - LIVE_LOSS]
    return min(ok, key=lambda r: (np.mean([table[s][r]["attack"]["unlock_share"] for s in others]), -r))


def load_held_out(pad: Path) -> tuple[dict, dict]:
    """The shipped recipe's held-out heads (``pad_stack.held_out``) and the scan's
    source, label, sequence and order per frame; exits with a one-line error without
    ``pad``'s npz files."""
    paths = [pad / n for n in ("scan.npz", "features.npz", "quality.npz")]
    if missing := [str(p) for p in paths if not p.is_file()]:
        sys.exit(f"missing {', '.join(missing)}: run benchmarks/pad_stack.py quality and features first")
    z = np.load(paths[0], allow_pickle=False)
    return held_out(*paths), {k: z[k] for k in ("source", "live", "sequence", "order")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pad", type=Path, default=Path("build/pad"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--calibrate", action="store_true",
                    help="calibrate each camera on the first half of its live frames")
    args = ap.parse_args()
    h, scan = load_held_out(args.pad)
    base = PolicyConfig()
    table = {}
    thr = dict(h["thr"])
    for s in h["door"]:
        skip = None
        if args.calibrate:
            skip, thr[s] = calibration_half(h, scan, s)
        recs = {lv: list(recordings(h, scan, s, lv, skip)) for lv in (False, True)}
        table[s] = {r: {name: attempts(recs[lv], thr[s], replace(base, min_live_share=r))
                        for name, lv in (("attack", False), ("live", True))} for r in GRID}
        print(s, " ".join(f"{r:g}: {v['attack']['unlock_share']:.1%}/{v['live']['unlock_share']:.1%}"
                          for r, v in table[s].items()), flush=True)
    chosen = {s: choose(table, h["door"], s) for s in h["door"]}
    print(f"min_live_share chosen on all sources: {choose(table, h['door']):g} (the default: {base.min_live_share:g})")
    print(f"\npolicy k = {base.k} of n = {base.n}, attempt_timeout_s = {base.attempt_timeout_s:g}, "
          f"lost_after_s = {base.lost_after_s:g}; thresholds and min_live_share set without the source"
          + (", then calibrated on the first half of its live frames" if args.calibrate else "") + "\n")
    print("| source | attack attempts | live attempts | min_live_share chosen | attack attempts unlocking: 0 (off) | "
          "chosen | shipped default | live attempts unlocking: off | chosen | default | "
          "median s to unlock: off | default |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    d = base.min_live_share
    for s in h["door"]:
        t, c = table[s], chosen[s]
        print(f"| {s} | {t[0.0]['attack']['attempts']} | {t[0.0]['live']['attempts']} | {c:g} | "
              f"{t[0.0]['attack']['unlock_share']:.1%} | {t[c]['attack']['unlock_share']:.1%} | "
              f"{t[d]['attack']['unlock_share']:.1%} | {t[0.0]['live']['unlock_share']:.1%} | "
              f"{t[c]['live']['unlock_share']:.1%} | {t[d]['live']['unlock_share']:.1%} | "
              f"{t[0.0]['live']['median_s']:.2f} | {t[d]['live']['median_s']:.2f} |")
    picks = (("off", lambda s: 0.0), ("chosen without the source", chosen.get), (f"default {d:g}", lambda s: d))
    for name, pick in picks:
        a = [table[s][pick(s)]["attack"]["unlock_share"] for s in h["door"]]
        lv = [table[s][pick(s)]["live"]["unlock_share"] for s in h["door"]]
        print(f"{name}: attack attempts unlocking mean {np.mean(a):.2%} (worst {max(a):.2%}); "
              f"live attempts unlocking mean {np.mean(lv):.1%} (lowest {min(lv):.1%})")
    if args.json:
        args.json.write_text(json.dumps({
            "calibrated": args.calibrate, "thresholds": thr, "chosen": chosen,
            "chosen_on_all": choose(table, h["door"]),
            "table": {s: {str(r): v for r, v in t.items()} for s, t in table.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
