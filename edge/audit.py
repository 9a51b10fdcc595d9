"""Audit trail: one JSON line per decision in the state directory (size-rotated),
also to the journal through the logger; images only when explicitly enabled."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("facelatch")


class AuditLog:
    def __init__(self, directory, max_bytes: int = 1_000_000, backups: int = 5, save_snapshots: bool = False,
                 snapshot_max_count: int = 100, snapshot_max_age_days: float = 7.0):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "audit.jsonl"
        self.max_bytes, self.backups = max_bytes, backups
        self.save_snapshots = save_snapshots
        self.snap_dir = self.dir / "snapshots"
        self.snap_max, self.snap_age = snapshot_max_count, snapshot_max_age_days * 86400

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def write(self, record: dict, frame_rgb: np.ndarray | None = None) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}
        if self.save_snapshots and frame_rgb is not None:
            record["snapshot"] = self._snapshot(frame_rgb)
        line = json.dumps(record, separators=(",", ":"))
        try:
            if self.path.exists() and self.path.stat().st_size + len(line) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line + "\n")
        except OSError as e:
            log.error("audit log %s not writable: %s", self.path, e)
        log.info("audit %s", line)

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
