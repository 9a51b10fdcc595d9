"""Is this V4L2 device a real camera, or a virtual one that any program can feed?

A virtual camera (v4l2loopback, akvcam, OBS's virtual camera, ...) delivers whatever
frames a process writes into it: a still photo with a little noise, a 1-px shift or a
JPEG re-encode is fresh and "live" to every frame cue, and unlocks (BENCHMARKS.md,
"Still photos fed as frames").  The door refuses such a device unless
``[security] allow_insecure`` says otherwise.

What the kernel tells about a device, from sysfs (no ioctl, no opening it):

- ``/sys/class/video4linux/videoN`` links into ``/sys/devices/virtual/...`` for a
  device that no bus (USB, PCI, the Pi's CSI platform bus) provides; and
- ``/sys/class/video4linux/videoN/name`` holds the card name, which for the common
  loopback drivers is one of :data:`VIRTUAL_NAMES` unless the user relabelled it.

Either is enough to refuse.  A loopback relabelled and re-parented cannot be told
from sysfs; the threat model says so (a person with root on the device can feed it
any frames anyway)."""

from __future__ import annotations

import os
import re
from pathlib import Path

SYSFS = Path("/sys")
VIRTUAL_NAMES = re.compile(r"v4l2.?loopback|dummy video device|virtual|akvcam|\bobs\b|droidcam|loopback", re.IGNORECASE)


def is_index(device: str) -> bool:
    """A V4L2 index ("0", "01"): ASCII digits only ("²".isdigit() is true, int("²") fails)."""
    return device.isascii() and device.isdigit()


def video_node(device: str) -> str | None:
    """``videoN`` for a V4L2 device given as an index ("0") or a path that resolves to
    /dev/videoN (/dev/video0, a udev link such as /dev/v4l/by-id/..., or any other
    symbolic link or relative path to it: OpenCV opens each of them); None for URLs
    and files."""
    if is_index(device):
        return f"video{int(device)}"
    if not device or "://" in device:
        return None
    real = os.path.realpath(device)
    if not real.startswith("/dev/"):
        return None
    name = Path(real).name
    return name if re.fullmatch(r"video\d+", name) else None


def virtual_camera_reason(device: str, sysfs: Path | None = None) -> str | None:
    """Why ``device`` looks like a virtual camera, in words, or None (a real one, or
    not a V4L2 node at all, or no sysfs entry to tell)."""
    node = video_node(device)
    if node is None:
        return None
    entry = (sysfs or SYSFS) / "class" / "video4linux" / node
    if not entry.exists():
        return None
    try:
        name = (entry / "name").read_text(errors="replace").strip()
    except OSError:
        name = ""
    if "/devices/virtual/" in os.path.realpath(entry):
        return f"{device} ({name or node}) is a virtual video device (no bus provides it: {os.path.realpath(entry)})"
    if VIRTUAL_NAMES.search(name):
        return f"{device} is named {name!r}, a virtual camera's name"
    return None
