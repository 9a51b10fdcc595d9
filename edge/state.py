"""Persisted lockout state: a small JSON file in the state directory, written atomically.

Trust nothing in it (a Pi without a clock battery boots with a wrong date; the file
can be edited): the counts must be non-negative integers, ``backoff_until`` a finite
number, and a deadline further away than ``now + backoff_max_s`` is clamped to it
(``wary_until``, the end of a suspected spoof's wary hour: to ``now`` + an hour).
Anything else is *corrupt*: the file is kept aside (``lockout.corrupt``) and the door
starts locked with a fresh backoff (fail closed).

A failed save (``ENOSPC``, ``EROFS``, ``EACCES``...) never stops the door: the state
stays in memory (the policy holds it) and :meth:`StateStore.flush` retries it."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path

from .fileio import write_atomic
from .policy import WARY_S, LockoutState

log = logging.getLogger("facelatch")

MAX_COUNT = 1_000_000  # more failed attempts or lockouts than this is not a real history


class CorruptState(ValueError):
    pass


def _reject_constant(name: str):
    raise CorruptState(f"non-finite number {name}")


def parse_state(text: str | bytes, now: float, backoff_max_s: float) -> LockoutState:
    """A validated LockoutState, or CorruptState saying why not."""
    try:
        d = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CorruptState(f"not JSON ({e.__class__.__name__})") from None
    keys, later = {"failed_attempts", "lockouts", "backoff_until"}, {"relocked", "wary_until"}
    if not isinstance(d, dict) or not keys <= set(d) <= keys | later:  # files older than the later keys still load
        raise CorruptState("not a lockout state object")
    relocked = d.get("relocked", False)
    if type(relocked) is not bool:
        raise CorruptState("relocked must be true or false")
    wary = d.get("wary_until", 0.0)
    wary = float(wary) if type(wary) in (int, float) and abs(wary) < 1e300 else math.nan
    if not math.isfinite(wary) or wary < 0:
        raise CorruptState("wary_until must be a finite, non-negative number")
    counts = d["failed_attempts"], d["lockouts"]
    if not all(type(v) is int and 0 <= v <= MAX_COUNT for v in counts):
        raise CorruptState(f"counts must be integers in [0, {MAX_COUNT}]")
    try:
        until = float(d["backoff_until"]) if type(d["backoff_until"]) in (int, float) else math.nan
    except OverflowError:  # an integer beyond any float
        until = math.nan
    if not math.isfinite(until) or until < 0:
        raise CorruptState("backoff_until must be a finite, non-negative number")
    latest = now + backoff_max_s
    if until > latest:
        log.warning("lockout state: backoff deadline %.0f s ahead is beyond backoff_max_s; clamped to %.0f s "
                    "(is the clock right?)", until - now, backoff_max_s)
        until = latest
    return LockoutState(counts[0], counts[1], float(until), relocked, min(wary, now + WARY_S))


class StateStore:
    def __init__(self, path, corrupt_backoff_s: float = 30.0, backoff_max_s: float = 600.0):
        self.path = Path(path)
        self.corrupt_backoff_s = corrupt_backoff_s
        self.backoff_max_s = backoff_max_s
        self.pending: LockoutState | None = None  # changed but not yet on disk
        self._failing = False
        self._next_try = 0.0

    def load(self) -> LockoutState:
        now = time.time()
        try:
            state = parse_state(self.path.read_bytes(), now, self.backoff_max_s)
            if now + self.backoff_max_s == state.backoff_until or now + WARY_S == state.wary_until:
                # clamped: a restart must not find it again
                self.save(state)
            return state
        except FileNotFoundError:
            return LockoutState()
        except (OSError, CorruptState) as e:
            # Fail secure: an unreadable counter must not become a fresh start for an attacker.
            aside = self.path.with_suffix(".corrupt")
            try:
                os.replace(self.path, aside)
                where = f"moved to {aside}"
            except OSError as e2:
                where = f"could not be moved aside ({e2.strerror})"
            log.error("lockout state %s unusable (%s); %s; starting with a %.0f s backoff",
                      self.path, e, where, self.corrupt_backoff_s)
            state = LockoutState(0, 1, now + self.corrupt_backoff_s)
            self.save(state)
            return state

    def remember(self, s: LockoutState) -> None:
        """Note ``s`` to be written by the next :meth:`flush` (the daemon flushes after
        the audit line, so a failure is on record before the counter is written)."""
        self.pending = LockoutState(s.failed_attempts, s.lockouts, s.backoff_until, s.relocked, s.wary_until)
        self._next_try = 0.0

    def save(self, s: LockoutState) -> None:
        """Remember ``s`` and try to write it now (never raises)."""
        self.remember(s)
        self.flush()

    def flush(self) -> bool:
        """Write a pending state; on an OS error keep it and try again after a second.
        True when nothing is left unwritten."""
        if self.pending is None:
            return True
        now = time.monotonic()
        if now < self._next_try:
            return False
        s = self.pending
        try:
            write_atomic(self.path, json.dumps({"failed_attempts": s.failed_attempts, "lockouts": s.lockouts,
                                                "backoff_until": s.backoff_until, "relocked": s.relocked,
                                                "wary_until": s.wary_until}).encode(), mode=0o600)
        except OSError as e:
            if not self._failing:
                log.error("cannot save the lockout state to %s (%s); kept in memory, retrying", self.path,
                          e.strerror or e)
            self._failing, self._next_try = True, now + 1.0
            return False
        if self._failing:
            log.warning("lockout state saved again to %s", self.path)
        self.pending, self._failing = None, False
        return True


def _read_json_object(path: Path, keys: set[str]) -> dict:
    """The JSON object in ``path`` with exactly ``keys``, or CorruptState."""
    try:
        d = json.loads(path.read_bytes(), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise CorruptState(f"not JSON ({e.__class__.__name__})") from None
    if not isinstance(d, dict) or set(d) != keys:
        raise CorruptState(f"not an object with {', '.join(sorted(keys))}")
    return d


def _keep_aside(path: Path, e: Exception, what: str) -> None:
    aside = path.with_suffix(".corrupt")
    try:
        os.replace(path, aside)
        where = f"moved to {aside}"
    except OSError as e2:
        where = f"could not be moved aside ({e2.strerror})"
    log.error("%s %s unusable (%s); %s", what, path, e, where)


def _save_json(path: Path | None, d: dict, what: str) -> bool:
    if path is None:
        return True
    try:
        write_atomic(path, json.dumps(d).encode(), mode=0o600)
        return True
    except OSError as e:
        log.error("cannot save the %s to %s (%s); kept in memory", what, path, e.strerror or e)
        return False


class CodeBackoff:
    """The wrong-signature backoff of remote commands (1 s, doubling, at most
    ``max_s``), persisted in ``path`` so that a crash or a restart does not reset it.

    Within a run the deadline is monotonic: a clock stepped back or forward changes
    nothing.  At load the wall-clock deadline on disk is trusted only up to ``max_s``
    ahead, and a clamped deadline is written back.  A corrupt file is kept aside and
    the backoff starts at ``max_s`` (fail closed).  Thread-safe (the MQTT thread)."""

    KEYS = {"failures", "until"}

    def __init__(self, path=None, max_s: float = 900.0, clock=time.monotonic, wall=time.time):
        self.path = Path(path) if path else None
        self.max_s, self.clock, self.wall = max_s, clock, wall
        self.failures, self._deadline = 0, 0.0
        self._lock = threading.Lock()
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        try:
            d = _read_json_object(self.path, self.KEYS)
            failures, until = d["failures"], d["until"]
            if type(failures) is not int or not 0 <= failures <= MAX_COUNT or type(until) not in (int, float) \
                    or not math.isfinite(until):
                raise CorruptState("failures must be an integer, until a finite number")
        except FileNotFoundError:
            return
        except (OSError, CorruptState) as e:
            _keep_aside(self.path, e, "remote-command backoff")
            failures, until = MAX_COUNT, self.wall() + self.max_s
        left = until - self.wall()
        clamped = left > self.max_s
        if clamped:
            log.warning("remote-command backoff %.0f s ahead is beyond %.0f s; clamped (is the clock right?)",
                        left, self.max_s)
            left = self.max_s
        self.failures, self._deadline = failures, self.clock() + max(0.0, left)
        if clamped:
            self._save()

    def _save(self) -> None:
        left = max(0.0, self._deadline - self.clock())
        _save_json(self.path, {"failures": self.failures, "until": self.wall() + left}, "remote-command backoff")

    def blocked_for(self) -> float:
        """Seconds left (0: not blocked); never more than ``max_s``."""
        with self._lock:
            left = self._deadline - self.clock()
            if left > self.max_s:  # cannot happen with a monotonic clock; bound it all the same
                self._deadline, left = self.clock() + self.max_s, self.max_s
                self._save()
            return max(0.0, left)

    def fail(self) -> None:
        with self._lock:
            self.failures = min(self.failures + 1, MAX_COUNT)
            self._deadline = self.clock() + min(2.0 ** min(self.failures - 1, 32), self.max_s)
            self._save()

    def succeed(self) -> None:
        with self._lock:
            if self.failures or self._deadline:
                self.failures, self._deadline = 0, 0.0
                self._save()


class PauseStore:
    """Whether face unlock is paused (the remote pause switch), persisted in ``path``
    so that a restart keeps it.  A corrupt file is kept aside and the door starts
    paused (the owner asked for a pause; an unreadable answer must not undo it)."""

    def __init__(self, path):
        self.path = Path(path)

    def load(self) -> bool:
        try:
            d = _read_json_object(self.path, {"paused"})
            if type(d["paused"]) is not bool:
                raise CorruptState("paused must be true or false")
            return d["paused"]
        except FileNotFoundError:
            return False
        except (OSError, CorruptState) as e:
            _keep_aside(self.path, e, "pause state")
            return True

    def save(self, paused: bool) -> bool:
        return _save_json(self.path, {"paused": paused}, "pause state")
