"""``facelatch bench``: a short benchmark on the bundled images, so an installer can
check a board: per-stage latency and end-to-end frames/s on 640x480 frames."""

from __future__ import annotations

import os
import platform
import time
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .pipeline import DEFAULT_ENCODER, FacePipeline
from .runtime import native_messages, runtime_description

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


def cpu_model() -> str:
    """The board (a Pi's device-tree model) or the CPU's name, as the kernel reports it."""
    try:
        with open("/proc/device-tree/model", "rb") as f:
            return f.read().rstrip(b"\0").decode("utf-8", "replace").strip()
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def board(pipe: FacePipeline) -> dict:
    """What the figures were measured on: CPU, cores, interpreter and whether XNNPACK runs."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {"cpu": cpu_model(), "machine": platform.machine(), "cores": cores, "usable_cores": usable,
            "interpreter": runtime_description(), "xnnpack": pipe.embedder.xnnpack,
            "interpreter_said": native_messages(),
            "numpy": np.__version__, "opencv": cv2.__version__,
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset")}


def run_bench(threads: int = 1, seconds: float = 10.0, encoder: str = DEFAULT_ENCODER) -> dict:
    pipe = FacePipeline(encoder, threads=threads)
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
    return {"board": board(pipe), "encoder": pipe.encoder_card.data["name"], "frames": n, "threads": threads,
            "runtime": pipe.embedder.runtime, "frame_size": [W, H],
            "fps": 1000 / float(np.mean(total)),
            "stages_ms": {k: {"median": float(np.median(v)), "p95": float(np.percentile(v, 95))}
                          for k, v in stages.items()}}


def format_board(b: dict) -> str:
    xnn = {True: "on", False: "off", None: "unknown"}[b["xnnpack"]]
    return (f"board: {b['cpu']} ({b['machine']}), {b['cores']} cores ({b['usable_cores']} usable); "
            f"{b['interpreter']}, XNNPACK {xnn}; numpy {b['numpy']} (BLAS threads {b['blas_threads']}), "
            f"OpenCV {b['opencv']}"
            + ("".join(f"\n  interpreter: {ln}" for ln in b["interpreter_said"][:4]) if b["xnnpack"] is not True else ""))


def format_bench(r: dict) -> str:
    lines = [format_board(r["board"]), f"facelatch bench: {r['frames']} frames of {r['frame_size'][0]}x{r['frame_size'][1]}, one face each, "
             f"{r['threads']} thread(s), {r['runtime']}, encoder {r['encoder']}"]
    for k, v in r["stages_ms"].items():
        lines.append(f"  {k:<10} median {v['median']:7.2f} ms   p95 {v['p95']:7.2f} ms")
    lines.append(f"  end to end: {r['fps']:.1f} frames/s")
    return "\n".join(lines)
