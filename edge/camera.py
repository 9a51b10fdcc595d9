"""Frame sources behind one interface: ``open()``, ``read() -> Frame | None``
(None: the source has ended), ``close()``.  :class:`ResilientCamera` reopens a
failing source with backoff and reports a frozen one."""

from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import FacelatchError
from .images import DEFAULT_MAX_MP, is_image, read_image
from .v4l2 import is_index, virtual_camera_reason

log = logging.getLogger("facelatch")


@dataclass
class Frame:
    rgb: np.ndarray
    t: float  # monotonic seconds (or the source's own clock for paced files)
    wall: float  # time.time()
    index: int


class CameraError(Exception):
    """A read or open failure that a reopen may cure."""


class OpenCVCamera:
    """A V4L2 device index, a /dev/video* path, an RTSP/HTTP URL or a video file."""

    def __init__(self, device: str, width: int = 640, height: int = 480, fps: float = 15.0, loop: bool = False,
                 allow_virtual: bool = False):
        self.device, self.width, self.height, self.fps, self.loop = device, width, height, fps, loop
        self.allow_virtual = allow_virtual
        self.cap = None
        self.index = 0
        self.is_file = Path(device).is_file()
        self.ended = ""  # why the source ended, when that is an error

    def open(self) -> None:
        virtual = virtual_camera_reason(self.device)
        if virtual and not self.allow_virtual:
            raise FacelatchError(f"refusing camera: {virtual}; any program can feed it a photo. Use a real camera, "
                                 "or set [security] allow_insecure = true")
        if virtual:
            log.warning("INSECURE (allowed by [security] allow_insecure): %s", virtual)
        target = int(self.device) if is_index(self.device) else self.device
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            raise CameraError(f"cannot open camera {self.device!r}")
        if not self.is_file:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self.cap = cap

    def read(self) -> Frame | None:
        ok, bgr = self.cap.read()
        if not ok:
            if self.is_file and self.loop:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self.cap.read()
            if not ok:
                if self.is_file:
                    self.ended = f"video file {self.device!r} ended (a door camera must not end)"
                    return None
                raise CameraError(f"camera {self.device!r} returned no frame")
        self.index += 1
        t = self.index / self.fps if self.is_file else time.monotonic()
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t, time.time(), self.index)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class ImageFolder:
    """Images of a folder in name order; timestamps advance 1/fps per frame; with
    ``pace`` the reads really wait that long."""

    def __init__(self, folder: str, fps: float = 15.0, pace: bool = False, loop: bool = False,
                 max_mp: float = DEFAULT_MAX_MP):
        self.folder, self.fps, self.pace, self.loop = Path(folder), fps, pace, loop
        self.max_mp = max_mp
        self.files: list[Path] = []
        self.pos = 0
        self.index = 0
        self._next = 0.0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"image folder not found: {self.folder}")
        self.files = sorted(p for p in self.folder.iterdir() if is_image(p) and p.is_file())  # no FIFOs
        if not self.files:
            raise CameraError(f"no images in {self.folder}")

    def read(self) -> Frame | None:
        if self.pos >= len(self.files):
            if not self.loop:
                return None
            self.pos = 0
        path = self.files[self.pos]
        self.pos += 1
        try:
            rgb = read_image(path, self.max_mp)  # a decompression bomb is refused before decoding
        except FacelatchError as e:  # the name may not be UTF-8: shown escaped in the journal and status
            raise CameraError(str(e).encode("utf-8", "backslashreplace").decode("utf-8")) from None
        if self.pace:
            now = time.monotonic()
            if self._next > now:
                time.sleep(self._next - now)
            self._next = max(now, self._next) + 1 / self.fps
        self.index += 1
        return Frame(rgb, self.index / self.fps, time.time(), self.index)

    def close(self) -> None:
        pass


class Picamera2Camera:
    """Raspberry Pi camera through picamera2 (from apt: python3-picamera2)."""

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0):
        self.width, self.height, self.fps = width, height, fps
        self.cam = None
        self.index = 0

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise FacelatchError("camera source 'picamera2' needs python3-picamera2 (apt) in a venv made with "
                                 "--system-site-packages") from None
        try:
            cam = Picamera2()
            cam.configure(cam.create_video_configuration(main={"size": (self.width, self.height), "format": "RGB888"},
                                                          controls={"FrameRate": self.fps}))
            cam.start()
        except Exception as e:  # libcamera raises RuntimeError, IndexError (no camera), ...
            raise CameraError(f"cannot open the Pi camera: {e}") from None
        self.cam = cam

    def read(self) -> Frame:
        try:
            arr = self.cam.capture_array("main")
        except Exception as e:
            raise CameraError(f"Pi camera read failed: {e}") from None
        self.index += 1
        # picamera2's "RGB888" is BGR in memory order
        return Frame(np.ascontiguousarray(arr[:, :, 2::-1]), time.monotonic(), time.time(), self.index)

    def close(self) -> None:
        if self.cam is not None:
            try:
                self.cam.stop()
                self.cam.close()
            finally:
                self.cam = None


class ResilientCamera:
    """Wraps a source: reopens it with exponential backoff when it fails (logged, never
    a crash loop) and reports a camera whose frames stay identical for
    ``frozen_after_s``.  ``stop`` (a threading.Event) interrupts the waits."""

    def __init__(self, source, backoff_s: float = 1.0, backoff_max_s: float = 30.0, frozen_after_s: float = 10.0,
                 stop: threading.Event | None = None, heartbeat=None):
        self.source = source
        # called at least once a second while waiting for the camera, so that systemd's
        # watchdog sees a healthy process that is retrying, not a hung one
        self.heartbeat = heartbeat or (lambda status: None)
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.frozen_after_s = frozen_after_s
        self.stop = stop or threading.Event()
        self.is_open = False
        self.reopens = 0
        self.frozen = False
        self._last_sig = None
        self._same_since = None

    def _wait(self, seconds: float, status: str) -> None:
        end = time.monotonic() + seconds
        while not self.stop.is_set() and (left := end - time.monotonic()) > 0:
            self.heartbeat(status)
            self.stop.wait(min(left, 1.0))

    def _open(self) -> None:
        delay = self.backoff_s
        while not self.stop.is_set():
            try:
                self.source.open()
                self.is_open = True
                return
            except CameraError as e:
                log.error("%s; retrying in %.1f s", e, delay)
                self._wait(delay, f"camera unavailable ({e}); retrying")
                delay = min(delay * 2, self.backoff_max_s)

    def read(self) -> Frame | None:
        while not self.stop.is_set():
            if not self.is_open:
                self._open()
                if not self.is_open:
                    return None
            try:
                frame = self.source.read()
            except CameraError as e:
                log.error("%s; reopening", e)
                self.source.close()
                self.is_open = False
                self.reopens += 1
                self._wait(self.backoff_s, f"camera failed ({e}); reopening")
                continue
            if frame is not None:
                self._check_frozen(frame)
            return frame
        return None

    def _check_frozen(self, frame: Frame) -> None:
        sig = zlib.crc32(frame.rgb[::8, ::8].tobytes())
        if sig != self._last_sig:
            self._last_sig, self._same_since = sig, frame.t
            if self.frozen:
                log.warning("camera is delivering new frames again")
            self.frozen = False
        elif not self.frozen and frame.t - self._same_since >= self.frozen_after_s:
            self.frozen = True
            log.error("camera frozen: identical frames for %.0f s", frame.t - self._same_since)

    @property
    def ended_in_error(self) -> str:
        """Why the source ended, when a door must treat that as a failure ("" if not)."""
        return getattr(self.source, "ended", "")

    def close(self) -> None:
        self.source.close()
        self.is_open = False


def make_source(cfg, stop: threading.Event | None = None, heartbeat=None, allow_virtual: bool = False) -> ResilientCamera:
    """The configured source, wrapped; a virtual V4L2 camera is refused unless ``allow_virtual``."""
    if cfg.source == "picamera2":
        src = Picamera2Camera(cfg.width, cfg.height, cfg.fps)
    elif cfg.source == "images":
        src = ImageFolder(cfg.device, cfg.fps, cfg.pace, cfg.loop, cfg.max_image_mp)
    else:  # "opencv": index, /dev/video*, URL or video file
        src = OpenCVCamera(cfg.device, cfg.width, cfg.height, cfg.fps, cfg.loop, allow_virtual)
    return ResilientCamera(src, cfg.reopen_backoff_s, cfg.reopen_backoff_max_s, cfg.frozen_after_s, stop, heartbeat)
