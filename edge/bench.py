"""``facelatch bench``: a short benchmark on the bundled images, so an installer can
check a board: per-stage latency and end-to-end frames/s on 640x480 frames."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .pipeline import FacePipeline

W, H = 640, 480


def face_crop(rgb: np.ndarray, box, side: int = 240) -> np.ndarray:
    """A square crop around a face box, the face about side/2 wide."""
    x, y, w, h = box
    cx, cy, half = x + w / 2, y + h / 2, max(w, h)
    s = side / (2 * half)
    m = np.array([[s, 0, side / 2 - cx * s], [0, s, side / 2 - cy * s]])
    return cv2.warpAffine(rgb, m, (side, side), borderMode=cv2.BORDER_REPLICATE)


def compose(*crops: np.ndarray, background: int = 90) -> np.ndarray:
    """A 640x480 RGB frame with the crops side by side (none: an empty scene)."""
    f = np.full((H, W, 3), background, np.uint8)
    f[:, :, 1] += 10
    for i, c in enumerate(crops):
        x0 = (W - len(crops) * c.shape[1]) // 2 + i * c.shape[1]
        y0 = (H - c.shape[0]) // 2
        f[y0:y0 + c.shape[0], x0:x0 + c.shape[1]] = c
    return f


def demo_frames(pipe: FacePipeline) -> list[np.ndarray]:
    """640x480 frames, one real face each, from the bundled probe images."""
    from .pipeline import read_image

    demo = Path(str(resources.files("edge") / "demo"))
    frames = []
    for p in sorted(demo.glob("*/*")):
        if p.suffix.lower() not in (".jpg", ".png"):
            continue
        rgb = read_image(p)
        faces = pipe.finder.detect(rgb)
        if len(faces) == 1:
            frames.append(compose(face_crop(rgb, faces[0].box)))
    return frames


def run_bench(threads: int = 1, seconds: float = 10.0) -> dict:
    pipe = FacePipeline(threads=threads)
    frames = demo_frames(pipe)
    stages = {k: [] for k in ("detect", "landmarks", "align", "liveness", "embed", "total")}
    t_end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < t_end or n < len(frames):
        rgb = frames[n % len(frames)]
        before = {k: getattr(pipe.times, k) for k in stages if k != "total"}
        t0 = time.perf_counter()
        pipe.analyze(rgb)
        stages["total"].append(1000 * (time.perf_counter() - t0))
        for k, v in before.items():
            stages[k].append(1000 * (getattr(pipe.times, k) - v))
        n += 1
    total = np.array(stages["total"])
    return {"frames": n, "threads": threads, "runtime": pipe.embedder.model.runtime, "frame_size": [W, H],
            "fps": 1000 / float(np.mean(total)),
            "stages_ms": {k: {"median": float(np.median(v)), "p95": float(np.percentile(v, 95))}
                          for k, v in stages.items()}}


def format_bench(r: dict) -> str:
    lines = [f"facelatch bench: {r['frames']} frames of {r['frame_size'][0]}x{r['frame_size'][1]}, one face each, "
             f"{r['threads']} thread(s), {r['runtime']}"]
    for k, v in r["stages_ms"].items():
        lines.append(f"  {k:<10} median {v['median']:7.2f} ms   p95 {v['p95']:7.2f} ms")
    lines.append(f"  end to end: {r['fps']:.1f} frames/s")
    return "\n".join(lines)
