"""Reading images and listing image files (one place for both)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import FacelatchError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(paths) -> list[Path]:
    """Files as given; folders recursed for image files, sorted."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and is_image(q))
        else:
            out.append(p)
    return out


def read_image(path) -> np.ndarray:
    """Read an image file as RGB uint8, or raise a one-line FacelatchError."""
    path = Path(path)
    if not path.is_file():
        raise FacelatchError(f"image not found: {path}")
    data = np.fromfile(str(path), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise FacelatchError(f"cannot read image: {path} (not an image, or corrupt)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
