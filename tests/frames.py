"""Camera-like 640x480 frame sequences from the bundled real faces (BGR, for cv2.imwrite)."""

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


def write_sequence(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), f, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return folder


def crops():
    return {name: crop_of(DEMO / rel) for name, rel in
            [("obama", "probe/obama3.jpg"), ("biden", "probe/biden.jpg"), ("hanks", "probe/tom_hanks.png"),
             ("obama_enroll", "enroll/obama.jpg")]}
