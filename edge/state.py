"""Persisted lockout state: a small JSON file in the state directory, written atomically."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from .fileio import write_atomic
from .policy import LockoutState

log = logging.getLogger("facelatch")


class StateStore:
    def __init__(self, path, corrupt_backoff_s: float = 30.0):
        self.path = Path(path)
        self.corrupt_backoff_s = corrupt_backoff_s

    def load(self) -> LockoutState:
        try:
            d = json.loads(self.path.read_text())
            return LockoutState(int(d["failed_attempts"]), int(d["lockouts"]), float(d["backoff_until"]))
        except FileNotFoundError:
            return LockoutState()
        except (OSError, ValueError, KeyError, TypeError) as e:
            # Fail secure: an unreadable counter must not become a fresh start for an attacker.
            aside = self.path.with_suffix(".corrupt")
            os.replace(self.path, aside)
            log.error("lockout state %s unreadable (%s); moved to %s, starting with a %.0f s backoff",
                      self.path, e.__class__.__name__, aside, self.corrupt_backoff_s)
            return LockoutState(0, 1, time.time() + self.corrupt_backoff_s)

    def save(self, s: LockoutState) -> None:
        write_atomic(self.path, json.dumps({"failed_attempts": s.failed_attempts, "lockouts": s.lockouts,
                                            "backoff_until": s.backoff_until}).encode(), mode=0o600)
