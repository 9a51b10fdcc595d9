"""Still photographs shown straight to the camera input (a folder of frames, or an
injected stream): random crops of the bundled photos with brightness / contrast /
gamma / blur adjusted, as a folder of identical frames and as lightly jittered
frames (each frame shifted by a pixel or two and given fresh noise).  Reports the
P(live) distribution and whether the real door loop (`facelatch run`, default
config, template enrolled from the two bundled enrollment photos) unlocks.

    python benchmarks/still_photos.py [--variants 80] [--frames 12] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.daemon import run  # noqa: E402
from edge.pipeline import FacePipeline, read_image  # noqa: E402
from edge.template import Template  # noqa: E402

DEMO = ROOT / "edge" / "demo"
PHOTOS = [DEMO / "probe/obama3.jpg", DEMO / "enroll/obama.jpg", DEMO / "enroll/obama2.jpg"]


def variant(rgb: np.ndarray, box, rng: np.random.Generator) -> np.ndarray:
    """A random crop around the face (face 15-45 % of the frame width), resized to
    640x480, with brightness / contrast / gamma / blur adjusted."""
    x, y, w, h = box
    side = max(w, h) / rng.uniform(0.15, 0.45) * np.array([1.0, 0.75])
    cx, cy = x + w / 2 + rng.uniform(-0.5, 0.5) * w, y + h / 2 + rng.uniform(-0.3, 0.3) * h
    sx, sy = 640 / side[0], 480 / side[1]
    m = np.array([[sx, 0, 320 - cx * sx], [0, sy, 240 - cy * sy]])
    f = cv2.warpAffine(rgb, m, (640, 480), borderMode=cv2.BORDER_REFLECT).astype(np.float32) / 255
    f = np.clip(f, 1e-4, 1) ** rng.uniform(0.6, 1.6)
    f = (f - f.mean()) * rng.uniform(0.7, 1.4) + f.mean() * rng.uniform(0.7, 1.3)
    f = np.clip(f * 255, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.5, 1.5))
    return f


def jitter(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dx, dy = rng.integers(-2, 3, 2)
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    g = cv2.warpAffine(f, m, (f.shape[1], f.shape[0]), borderMode=cv2.BORDER_REFLECT).astype(np.int16)
    return np.clip(g + rng.normal(0, 2.0, g.shape).round(), 0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", type=int, default=80)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-daemon", action="store_true", help="only the P(live) distribution")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp())
    pipe = FacePipeline()
    emb = [pipe.analyze(read_image(DEMO / "enroll" / n))[0].embedding for n in ("obama.jpg", "obama2.jpg")]
    photos = [(p, read_image(p)) for p in PHOTOS]
    boxes = [pipe.finder.detect(rgb)[0].box for _, rgb in photos]
    scores, unlocks = [], {"identical": 0, "jittered": 0}
    for i in range(args.variants):
        k = i % len(photos)
        f = variant(photos[k][1], boxes[k], rng)
        found = pipe.analyze(f)
        if not found:
            continue
        scores.append(found[0].live_score)
        if args.no_daemon:
            continue
        for mode in unlocks:
            state = tmp / f"state_{i}_{mode}"
            frames = tmp / f"frames_{i}_{mode}"
            frames.mkdir(parents=True)
            state.mkdir()
            Template(pipe.model_sha256, np.stack(emb), "cosine").save(state / "template.json")
            for j in range(args.frames):
                g = f if mode == "identical" else jitter(f, rng)
                cv2.imwrite(str(frames / f"{j:04d}.png"), cv2.cvtColor(g, cv2.COLOR_RGB2BGR))
            cfg = tmp / f"cfg_{i}_{mode}.toml"
            cfg.write_text(f'state_dir = "{state}"\n[camera]\nsource = "images"\ndevice = "{frames}"\npace = false\n')
            run(str(cfg))
            audit = state / "audit.jsonl"
            lines = [json.loads(x) for x in audit.read_text().splitlines()] if audit.exists() else []
            unlocks[mode] += any(x["decision"] == "unlock" for x in lines)
    s = np.array(scores)
    thr = pipe.liveness.threshold
    print(json.dumps({"variants_with_a_face": len(s), "threshold": thr, "called_live": int((s >= thr).sum()),
                      "p_live_median": float(np.median(s)), "p_live_max": float(s.max()),
                      "p_live_p95": float(np.percentile(s, 95)), "frames_per_variant": args.frames,
                      "unlocks": None if args.no_daemon else unlocks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
