"""Cut-off and harshly side-lit copies of real LFW / CelebA faces, through the device pipeline.

The quality gate's chip-coverage and lighting-asymmetry limits (benchmarks/quality_limits.py)
are measured on real faces made worse in known steps, in memory (nothing written but the
cache), as benchmarks/degraded_faces.py does for blur and distance:

- ``cutoff``: the face cropped tight and scaled up, in grey (issue 22's recipe: a person
  standing very close to the door camera).  LFW images get the issue's two literal crops
  (``issue``: rows 70-180, columns 80-170, resized to 168x192; ``loose``: rows 60-190,
  columns 70-180, scaled alike) and, like CelebA images, a sweep relative to the face's own
  FaceMesh extent S (its landmarks' box, centre c): ``fit`` crops 0.85 f S wide and f S
  tall centred on c for f = 1.3, 1.1, 0.95, 0.85, and ``shift`` crops (f = 1.0) moved
  0.25 S in a random one of 8 directions (one per LFW image, two per CelebA image); every
  crop is scaled to 192 px tall;
- ``cutwide``: the same ``fit`` crops for f = 2.2, 1.8, 1.55 (chips cut a little: the
  coverage values between the tight crops and whole frames);
- ``sidelight``: a directional light on a cylinder across the face: each column x gets
  ambient + (1 - ambient) max(0, cos(asin(u) - a)), u = (x - c_x) / (S_w / 2) clipped to
  [-1, 1] (S_w: the landmarks' width), for light angles a = 30, 50, 70, 90, 110 degrees
  from the front, from a random side; then a gain (overexposed lit side, clipped at 255)
  and a gamma.  Ambient 0.03-0.2, gain 1.0-1.6 and gamma 0.8-1.25 are drawn per image.

Groups, sources and the cache layout are those of benchmarks/degraded_faces.py
(``OUT/<deg>_<group>__faces.npz``, ``__<encoder>.npz``), plus the per-encoder chip measures
(``OUT/<deg>_<group>__chipq.npz``, edge.quality.chip_measures).

    nice -n 10 python benchmarks/frame_faces.py --groups lfwtune lfweval --per-group 500
    nice -n 10 python benchmarks/frame_faces.py --groups celebatune celebaeval --per-group 300
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.degraded_faces import arguments, build  # noqa: E402

ISSUE_CROPS = {"issue": (70, 180, 80, 170), "loose": (60, 190, 70, 180)}  # rows, columns of a 250x250 LFW image
ISSUE_SCALE = (168 / 90, 192 / 110)  # the issue's resize of its crop (x, y)
FIT = (1.3, 1.1, 0.95, 0.85)
FIT_WIDE = (2.2, 1.8, 1.55)
LIGHT_DEG = (30, 50, 70, 90, 110)
DIRECTIONS = [(np.cos(a), np.sin(a)) for a in np.arange(8) * np.pi / 4]


def grey3(rgb: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.dstack([g, g, g])


def crop(rgb: np.ndarray, centre, w: float, h: float, out_h: int = 192) -> np.ndarray:
    """The w x h box around ``centre`` (the part inside the image), scaled to ``out_h`` tall, grey."""
    ih, iw = rgb.shape[:2]
    x0, x1 = int(max(0, round(centre[0] - w / 2))), int(min(iw, round(centre[0] + w / 2)))
    y0, y1 = int(max(0, round(centre[1] - h / 2))), int(min(ih, round(centre[1] + h / 2)))
    part = rgb[y0:y1, x0:x1]
    scale = out_h / part.shape[0]
    return grey3(cv2.resize(part, (max(1, round(part.shape[1] * scale)), out_h), interpolation=cv2.INTER_LINEAR))


def side_light(rgb: np.ndarray, cx: float, width: float, angle_deg: float, ambient: float, gain: float,
               gamma: float) -> np.ndarray:
    u = np.clip((np.arange(rgb.shape[1]) - cx) / (width / 2), -1, 1)
    shade = ambient + (1 - ambient) * np.maximum(0.0, np.cos(np.arcsin(u) - np.radians(angle_deg)))
    lit = np.clip(rgb.astype(np.float32) * (gain * shade)[None, :, None], 0, 255) / 255
    return (255 * lit ** gamma).round().astype(np.uint8)


def versions(deg: str, i: int, rgb: np.ndarray, landmarks: np.ndarray, source: str, rng: np.random.Generator):
    """(kind, level, degraded image) of one source image."""
    (x0, y0), (x1, y1) = landmarks.min(0), landmarks.max(0)
    c, s, sw = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), float(y1 - y0), float(x1 - x0)
    if deg == "cutwide":
        for f in FIT_WIDE:
            yield "fit", f, crop(rgb, c, 0.85 * f * s, f * s)
    elif deg == "cutoff":
        if source == "lfw" and rgb.shape[:2] == (250, 250):
            for kind, (r0, r1, c0, c1) in ISSUE_CROPS.items():
                part = rgb[r0:r1, c0:c1]
                size = (round((c1 - c0) * ISSUE_SCALE[0]), round((r1 - r0) * ISSUE_SCALE[1]))
                yield kind, float(r1 - r0), grey3(cv2.resize(part, size, interpolation=cv2.INTER_LINEAR))
        for f in FIT:
            yield "fit", f, crop(rgb, c, 0.85 * f * s, f * s)
        for d in rng.choice(len(DIRECTIONS), 1 if source == "lfw" else 2, replace=False):
            yield "shift", float(d), crop(rgb, c + 0.25 * s * np.array(DIRECTIONS[d]), 0.85 * s, s)
    else:  # sidelight
        side = rng.choice([-1, 1])
        ambient, gain, gamma = rng.uniform(0.03, 0.2), rng.uniform(1.0, 1.6), rng.uniform(0.8, 1.25)
        for a in LIGHT_DEG:
            yield "sidelight", float(a), side_light(rgb, c[0], sw, side * a, ambient, gain, gamma)


def main():
    args = arguments(["cutoff", "cutwide", "sidelight"], 500).parse_args()
    # read each array once: an npz decompresses it again on every z[key] (0.4 s for LFW's landmarks)
    faces = {src: np.load(args.cache / f"{src}__faces.npz") for src in ("lfw", "celeba")}
    landmarks = {src: z["landmarks"] for src, z in faces.items()}
    index = {src: {k: j for j, k in enumerate(z["keys"])} for src, z in faces.items()}
    build(args, lambda deg, i, rgb, key, source, face_px, rng:
          versions(deg, i, rgb, landmarks[source][index[source][key]], source, rng),
          seed_offset=lambda deg: 10 ** 7 if deg.startswith("cut") else 0)


if __name__ == "__main__":
    main()
