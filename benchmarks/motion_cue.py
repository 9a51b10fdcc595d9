"""Temporal cue study: does the face move like a flat photo?  For consecutive frames
of one NUAA capture session, fit a homography (what a flat, rigid print undergoes)
to the 468 FaceMesh points and measure the residual, relative to the face size.
A live face (3-D, non-rigid) should leave a larger residual than a held photo.

    python benchmarks/motion_cue.py --nuaa ../shared/data/nuaa-train
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.pipeline import FaceFinder, read_image  # noqa: E402


def planar_residual(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance (in face widths) between points b and a homography-warped a."""
    h, _ = cv2.findHomography(a.astype(np.float32), b.astype(np.float32), 0)
    if h is None:
        return float("nan")
    warped = cv2.perspectiveTransform(a[None].astype(np.float32), h)[0]
    size = np.ptp(b[:, 0])
    return float(np.sqrt(((warped - b) ** 2).sum(1).mean()) / size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nuaa", type=Path, required=True)
    args = ap.parse_args()
    finder = FaceFinder(None)
    sessions = defaultdict(list)
    for kind in ("real", "attack"):
        for p in (args.nuaa / kind).glob("*/*.jpg"):
            sid, glasses, pos, sess, num = p.stem.split("_")
            sessions[(kind, int(sid), glasses, pos, sess)].append((int(num), p))
    per = {"real": defaultdict(list), "attack": defaultdict(list)}
    for (kind, sid, *_), frames in sorted(sessions.items()):
        prev = None
        for _, p in sorted(frames):
            rgb = read_image(p)
            faces = finder.detect(rgb)
            pts = finder.mesh.landmarks(rgb, faces[0])[0] if faces else None
            if prev is not None and pts is not None:
                per[kind][sid].append(planar_residual(prev, pts))
            prev = pts
    out = {}
    for kind, by_subject in per.items():
        allv = np.concatenate([np.array(v) for v in by_subject.values()])
        out[kind] = {"pairs": int(len(allv)), "median": float(np.nanmedian(allv)),
                     "p10": float(np.nanpercentile(allv, 10)), "p90": float(np.nanpercentile(allv, 90)),
                     "per_subject_median": {s: float(np.nanmedian(v)) for s, v in sorted(by_subject.items())}}
    real = np.concatenate([np.array(v) for v in per["real"].values()])
    attack = np.concatenate([np.array(v) for v in per["attack"].values()])
    auc = float((real[:, None] > attack[None, :]).mean())
    out["auc_single_frame_pair"] = auc
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
