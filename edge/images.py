"""Reading images and listing image files (one place for both).

A small file can declare a huge image (a 876 KB PNG of 30000x30000 decodes to
2.7 GB), so the size is read from the header first and an image larger than
``max_mp`` megapixels is refused before anything is decoded."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

from .errors import FacelatchError
from .fileio import read_input

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEFAULT_MAX_MP = 40.0  # megapixels; a 12 MP phone photo is far below, a decompression bomb far above
# OpenCV >= 4.10 decodes straight to RGB (the same pixels as BGR then cvtColor; tests/test_pipeline.py)
_DECODE_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(paths) -> list[Path]:
    """Files as given; folders recursed for image files, sorted."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and is_image(q))  # is_file: no FIFOs
        else:
            out.append(p)
    return out


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", b[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        if length < 2:
            return None
        i += 2 + length
    return None


def _tiff_size(b: bytes) -> tuple[int, int] | None:
    e = "<" if b[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", b[4:8])
    if ifd + 2 > len(b):
        return None
    (n,) = struct.unpack(e + "H", b[ifd:ifd + 2])
    size, last = {}, -1
    for k in range(n):
        o = ifd + 2 + 12 * k
        if o + 12 > len(b):
            return None
        tag, typ = struct.unpack(e + "HH", b[o:o + 4])
        if tag <= last:  # the TIFF rule: tags once each, ascending.  A repeated size tag lets the header
            return None  # say 100x100 to us while the decoder reads the other one (144 MP)
        last = tag
        if tag in (256, 257):
            if typ not in (3, 4):
                return None
            size[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), b[o + 8:o + (10 if typ == 3 else 12)])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def _webp_size(b: bytes) -> tuple[int, int] | None:
    chunk = b[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(b[24:27], "little"), 1 + int.from_bytes(b[27:30], "little")
    if chunk == b"VP8L":
        v = int.from_bytes(b[21:25], "little")
        return 1 + (v & 0x3FFF), 1 + ((v >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def image_size(b: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a JPEG, PNG, BMP, WebP or TIFF file; None
    for anything else or a header too short to say."""
    try:
        if b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR":
            return struct.unpack(">II", b[16:24])
        if b[:2] == b"\xff\xd8":
            return _jpeg_size(b)
        if b[:2] == b"BM":
            if int.from_bytes(b[14:18], "little") == 12:  # OS/2 core header
                return struct.unpack("<HH", b[18:22])
            w, h = struct.unpack("<ii", b[18:26])
            return abs(w), abs(h)
        if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
            return _webp_size(b)
        if b[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(b)
    except struct.error:
        return None
    return None


def _read_bytes(path: Path) -> np.ndarray:
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        regular = True  # read_input says what is wrong
    if not regular:  # a FIFO or a device would block the reader (and the door loop) forever
        raise FacelatchError(f"image {path} is not a regular file")
    return np.frombuffer(read_input(path, "image"), np.uint8)


def check_image(path, max_mp: float = DEFAULT_MAX_MP, data: np.ndarray | None = None) -> tuple[int, int]:
    """The image's (width, height) from its header, or a one-line FacelatchError
    (missing, unreadable, not a supported image, larger than ``max_mp`` megapixels)."""
    path = Path(path)
    if data is None:
        data = _read_bytes(path)
    size = image_size(data.tobytes())
    if size is None or min(size) < 1:
        raise FacelatchError(f"cannot read image: {path} (not a JPEG, PNG, BMP, WebP or TIFF image, or corrupt)")
    w, h = size
    if w * h > max_mp * 1e6:
        raise FacelatchError(f"image {path} is {w}x{h} ({w * h / 1e6:.0f} MP), over the {max_mp:g} MP limit; "
                             "refused before decoding")
    return w, h


def read_image(path, max_mp: float = DEFAULT_MAX_MP) -> np.ndarray:
    """Read an image file as RGB uint8, or raise a one-line FacelatchError."""
    path = Path(path)
    data = _read_bytes(path)
    w, h = check_image(path, max_mp, data)
    img = cv2.imdecode(data, _DECODE_FLAG) if data.size else None
    if img is None:
        raise FacelatchError(f"cannot read image: {path} (not an image, or corrupt)")
    if img.shape[:2] != (h, w):  # the decoder read another size than the header said: refuse it
        raise FacelatchError(f"image {path} decodes to {img.shape[1]}x{img.shape[0]}, not the {w}x{h} of its "
                             "header; refused")
    return img if _DECODE_FLAG != cv2.IMREAD_COLOR else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
