"""Which cheap temporal evidence separates a live face from a print or a screen?
Measured per source on ordered sequences (NUAA: one capture session of one subject;
the webcam sources: their live and their attack recordings, by timestamp), from the
PAD scan (468 FaceMesh points and a hash of the decoded pixels per frame):

- repeated frames: consecutive frames with identical pixels;
- blink: windows of ``--window`` consecutive frames in which edge.temporal.blinked
  finds a blink (eye aspect ratio dip and recovery);
- planar motion: RMS residual (face widths) of a homography fitted between the
  FaceMesh points of consecutive frames — a flat print moves like a plane; ROC AUC
  of "live has the larger residual".

    python benchmarks/temporal_cues.py --scan build/pad/scan.npz [--window 15]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convert.pad_eval import roc_auc  # noqa: E402
from edge.temporal import blinked, eye_aspect_ratio  # noqa: E402

DOOR = ["nuaa", "dracarys", "dangthanhliem", "codersworld", "spp77"]


def planar_residual(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance (in face widths) between points b and a homography-warped a."""
    h, _ = cv2.findHomography(a.astype(np.float32), b.astype(np.float32), 0)
    if h is None:
        return float("nan")
    warped = cv2.perspectiveTransform(a[None].astype(np.float32), h)[0]
    return float(np.sqrt(((warped - b) ** 2).sum(1).mean()) / np.ptp(b[:, 0]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scan", default="build/pad/scan.npz")
    ap.add_argument("--window", type=int, default=15, help="frames per blink window (default 15)")
    ap.add_argument("--json")
    args = ap.parse_args()
    npz = np.load(args.scan, allow_pickle=False)
    z = {k: npz[k] for k in ("found", "source", "live", "sequence", "order", "landmarks", "pixels_sha1")}
    seqs = defaultdict(list)
    for i in np.flatnonzero(z["found"] & np.isin(z["source"], DOOR)):
        seqs[(str(z["source"][i]), bool(z["live"][i]), str(z["sequence"][i]))].append((int(z["order"][i]), i))
    stats = defaultdict(lambda: {"pairs": 0, "repeats": 0, "windows": 0, "blink_windows": 0, "residuals": []})
    for (src, live, _), frames in seqs.items():
        idx = [i for _, i in sorted(frames)]
        st = stats[(src, live)]
        ears = [eye_aspect_ratio(z["landmarks"][i]) for i in idx]
        for a, b in zip(idx, idx[1:]):
            st["pairs"] += 1
            st["repeats"] += int(z["pixels_sha1"][a] == z["pixels_sha1"][b])
            st["residuals"].append(planar_residual(z["landmarks"][a], z["landmarks"][b]))
        for s in range(0, max(len(ears) - args.window + 1, 0), args.window):
            st["windows"] += 1
            st["blink_windows"] += int(blinked(ears[s:s + args.window]))
    out = {}
    print(f"{'source':14s} {'label':6s} {'pairs':>6s} {'repeats':>7s} {'windows':>7s} {'blink':>7s} "
          f"{'resid.med':>9s}  planar AUC")
    for src in DOOR:
        row = {}
        for live in (True, False):
            st = stats[(src, live)]
            r = np.array(st["residuals"])
            row["live" if live else "attack"] = {
                "frame_pairs": st["pairs"], "repeated_frames": st["repeats"], "windows": st["windows"],
                "windows_with_blink": st["blink_windows"],
                "blink_rate": st["blink_windows"] / st["windows"] if st["windows"] else None,
                "planar_residual_median": float(np.nanmedian(r)) if len(r) else None}
        lr, ar = (np.array(stats[(src, x)]["residuals"]) for x in (True, False))
        row["planar_auc"] = roc_auc(lr[~np.isnan(lr)], ar[~np.isnan(ar)])
        out[src] = row
        for label in ("live", "attack"):
            x = row[label]
            print(f"{src:14s} {label:6s} {x['frame_pairs']:6d} {x['repeated_frames']:7d} {x['windows']:7d} "
                  f"{(x['blink_rate'] or 0):7.1%} {(x['planar_residual_median'] or 0):9.4f}"
                  + (f"  {row['planar_auc']:.3f}" if label == "live" else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
