"""Audit trail: one JSON line per decision in the state directory (size-rotated),
also to the journal through the logger; images only when explicitly enabled.

Durability: the journal gets the line first; then the line goes to ``audit.jsonl`` in
ONE ``write`` of the whole line to an ``O_APPEND`` file, followed by ``fsync``
(decisions are a few a minute, so every line is made durable before the door acts).
A short write (full disk, file-size limit) is cut back, so the file never holds a
torn line.  An OS error is logged and the door goes on judging."""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("facelatch")

MAX_TEXT = 200  # characters of any one text field; longer is cut (a 1 MB command must not rotate real lines away)


def bounded(value):
    """``value`` with every text field cut to ``MAX_TEXT`` characters."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"...({len(value)} chars)"
    if isinstance(value, dict):
        return {bounded(str(k)): bounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [bounded(v) for v in value]
    return value


def stamp() -> str:
    """The time of an audit record (local time with its UTC offset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class AuditLog:
    def __init__(self, directory, max_bytes: int = 1_000_000, backups: int = 5, save_snapshots: bool = False,
                 snapshot_max_count: int = 100, snapshot_max_age_days: float = 7.0):
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            log.error("audit directory %s not usable: %s", self.dir, e.strerror or e)
        self.path = self.dir / "audit.jsonl"
        self.max_bytes, self.backups = max_bytes, backups
        self.save_snapshots = save_snapshots
        self.snap_dir = self.dir / "snapshots"
        self.snap_max, self.snap_age = snapshot_max_count, snapshot_max_age_days * 86400
        self._failing = False

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def write(self, record: dict, frame_rgb: np.ndarray | None = None) -> None:
        record.setdefault("time", stamp())  # the caller's record too: its MQTT event carries the same time
        record = bounded({"time": record["time"], **record})
        if self.save_snapshots and frame_rgb is not None:
            try:
                record["snapshot"] = self._snapshot(frame_rgb)
            except OSError as e:
                record["snapshot_error"] = e.strerror or str(e)
        line = json.dumps(record, separators=(",", ":"))
        log.info("audit %s", line)
        try:
            self._append((line + "\n").encode())
            if self._failing:
                log.warning("audit log %s writable again", self.path)
            self._failing = False
        except OSError as e:
            if not self._failing:
                log.error("audit log %s not writable (%s); decisions go to the journal only until it is",
                          self.path, e.strerror or e)
            self._failing = True

    def _append(self, data: bytes) -> None:
        if self.path.exists() and self.path.stat().st_size + len(data) > self.max_bytes:
            self._rotate()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            start = os.fstat(fd).st_size
            written = os.write(fd, data)  # an error here has written nothing
            if written != len(data):  # never leave a torn line behind
                os.ftruncate(fd, start)
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes); line not kept")
            os.fsync(fd)
        finally:
            os.close(fd)

    def _snapshot(self, rgb: np.ndarray) -> str:
        self.snap_dir.mkdir(mode=0o700, exist_ok=True)
        name = time.strftime("%Y%m%dT%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}.jpg"
        cv2.imwrite(str(self.snap_dir / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        os.chmod(self.snap_dir / name, 0o600)
        snaps = sorted(self.snap_dir.glob("*.jpg"))
        now = time.time()
        for i, p in enumerate(snaps):
            if i < len(snaps) - self.snap_max or now - p.stat().st_mtime > self.snap_age:
                p.unlink(missing_ok=True)
        return name
