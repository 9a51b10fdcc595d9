"""Build camera-like 640x480 frame sequences from the bundled real faces."""

from pathlib import Path

import cv2
import numpy as np

from conftest import DEMO

W, H = 640, 480


def face_crop(path: Path, side: int = 240) -> np.ndarray:
    """A square crop around the (largest) face, the face about side/2 wide (BGR)."""
    from edge.detect import Detector
    from edge.modelcard import load_card, models_dir

    bgr = cv2.imread(str(path))
    det = Detector(load_card(models_dir() / "face_detection_short_range.json"))
    x, y, w, h = det.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))[0].box
    cx, cy, half = x + w / 2, y + h / 2, max(w, h)
    m = np.array([[side / (2 * half), 0, side / 2 - cx * side / (2 * half)],
                  [0, side / (2 * half), side / 2 - cy * side / (2 * half)]])
    return cv2.warpAffine(bgr, m, (side, side), borderMode=cv2.BORDER_REPLICATE)


def frame(*crops: np.ndarray, background: int = 90) -> np.ndarray:
    """A 640x480 frame with the given crops side by side (none: an empty scene)."""
    f = np.full((H, W, 3), background, np.uint8)
    f[:, :, 1] += 10  # a slightly green wall
    for i, c in enumerate(crops):
        x0 = (W - len(crops) * c.shape[1]) // 2 + i * c.shape[1]
        y0 = (H - c.shape[0]) // 2
        f[y0:y0 + c.shape[0], x0:x0 + c.shape[1]] = c
    return f


def write_sequence(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), f, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return folder


def crops():
    return {name: face_crop(DEMO / rel) for name, rel in
            [("obama", "probe/obama3.jpg"), ("biden", "probe/biden.jpg"), ("hanks", "probe/tom_hanks.png"),
             ("obama_enroll", "enroll/obama.jpg")]}
