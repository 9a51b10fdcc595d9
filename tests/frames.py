"""Camera-like 640x480 frame sequences from the bundled real faces (BGR, for cv2.imwrite)."""

import functools
from pathlib import Path

import cv2
import numpy as np

from conftest import DEMO
from edge.bench import compose, face_crop


def crop_of(path: Path, side: int = 240) -> np.ndarray:
    from edge.detect import Detector
    from edge.modelcard import load_card, models_dir

    bgr = cv2.imread(str(path))
    det = Detector(load_card(models_dir() / "face_detection_short_range.json"))
    return face_crop(bgr, det.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))[0].box, side)


def frame(*crops: np.ndarray) -> np.ndarray:
    return compose(*crops)


def write_sequence(folder: Path, frames: list[np.ndarray], noise: float = 2.0) -> Path:
    """Frames as JPEG files; like a real camera, each frame gets its own sensor noise
    (Gaussian, ``noise`` grey levels; 0: exact copies, as a frozen or injected still)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(frames))
    for i, f in enumerate(frames):
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape).round(), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), f, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return folder


def write_demo_template(path: Path) -> Path:
    """The template a door enrolls from the two bundled enrolment photos."""
    from edge.pipeline import FacePipeline, read_image
    from edge.template import Template

    pipe = FacePipeline()
    emb = [pipe.analyze(read_image(DEMO / "enroll" / n))[0].embedding for n in ("obama.jpg", "obama2.jpg")]
    Template(pipe.model_sha256, np.stack(emb), "cosine").save(path)
    return path


@functools.cache
def _crops() -> dict:
    return {name: crop_of(DEMO / rel) for name, rel in
            [("obama", "probe/obama3.jpg"), ("biden", "probe/biden.jpg"), ("hanks", "probe/tom_hanks.png"),
             ("astronaut", "probe/astronaut.jpg"),
             ("obama_enroll", "enroll/obama.jpg")]}


def crops() -> dict:
    """Face crops of the bundled photos, detected once per test process (copies: a test
    may draw on them)."""
    return {name: c.copy() for name, c in _crops().items()}


def side_lit(crop: np.ndarray, low: float = 0.05, gain: float = 1.3, start: float = 0.375,
             ramp: float = 0.25) -> np.ndarray:
    """A face crop (``crops()``) lit harshly from its right: ``low`` light on the face's
    left, a ramp from ``start`` over ``ramp`` of the width to full light, overexposed by
    ``gain`` (clipped).  The defaults: window light (the door judges it, enrolment does
    not); ``start=0.5, ramp=0.1, low=0.02``: half the face in the dark (neither judges it)."""
    w = crop.shape[1]
    shade = np.clip((np.arange(w) - start * w) / (ramp * w), low, 1.0) * gain
    return np.clip(crop * shade[None, :, None], 0, 255).astype(np.uint8)


def close_up(crop: np.ndarray, keep: float) -> np.ndarray:
    """A 640x480 frame filled by the middle ``keep`` of a face crop: a person standing so
    close to the camera that the frame cuts their face off."""
    h, w = crop.shape[:2]
    cw, ch = keep * w, keep * w * 0.75
    x0, y0 = round((w - cw) / 2), round((h - ch) / 2)
    return cv2.resize(crop[y0:y0 + round(ch), x0:x0 + round(cw)], (640, 480), interpolation=cv2.INTER_LINEAR)
