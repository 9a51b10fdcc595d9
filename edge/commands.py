"""Remote commands: what may reach the door from MQTT, and the checks it passes first.

A message becomes a :class:`Command` in the network thread (:class:`CommandGate`):

1. A retained message is never a command (a retained ``OPEN`` would be obeyed at
   every start and every reconnect).
2. The payload is checked before it is parsed: at most ``MAX_PAYLOAD`` bytes, strict
   UTF-8, one flat JSON object of text fields (no nesting, no lone surrogates).
3. Commands that change the door (``OPEN``/``UNLOCK``, pause ``ON``/``OFF``) must be
   *signed*: ``{"action": A, "nonce": N, "mac": HMAC-SHA256(secret, topic "\\n" A "\\n" N)}``
   where ``N`` is a one-time challenge the device publishes (retained) on
   ``facelatch/<node_id>/nonce`` and ``secret`` is the unlock code file.  The secret
   never crosses the network; a nonce is good for one command and for at most
   ``ttl_s`` seconds, so a recorded command cannot be replayed, and one queued while
   the daemon was down is refused (nonces do not survive a restart).
4. Wrong signatures back off (1 s, doubling, capped), persisted (``edge.state.CodeBackoff``).

The daemon refuses a command it could not carry out within ``ttl_s`` of its arrival
(``expired``).  Refused commands are rate-limited per topic (``RateLimit``) before
they are audited; accepted ones go on a lane of their own, so junk never pushes the
owner's command out.  See docs/mqtt-security.md for the threat model."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import dataclass

MAX_PAYLOAD = 512  # bytes; a signed command is ~150
ACTIONS = {"lock": ("OPEN", "UNLOCK", "LOCK"), "pause": ("ON", "OFF")}
FIELDS = {"action", "nonce", "mac", "code"}


@dataclass(frozen=True)
class Command:
    """A remote command as received: ``action`` is OPEN/UNLOCK/LOCK (the lock) or
    ON/OFF (the pause switch); ``refused`` says why it is not carried out ("" = do it);
    ``received`` is the monotonic time it arrived; ``suppressed`` counts the refused
    commands before it that the rate limit kept out of the audit."""

    target: str  # "lock" | "pause"
    action: str
    refused: str = ""
    received: float = 0.0
    suppressed: int = 0


def shown(text: str, n: int = 20) -> str:
    """``text`` as short printable ASCII (for the audit, the journal and sd_notify)."""
    out = text.encode("ascii", "backslashreplace").decode("ascii")
    out = "".join(ch if ch.isprintable() else "?" for ch in out)
    return out[:n] + ("..." if len(out) > n else "")


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON)
        return False


def parse_payload(raw: bytes) -> tuple[dict | None, str]:
    """The payload's fields, or (None, why not).  Plain text (``OPEN``, as Home
    Assistant's switch sends) is ``{"action": text}``."""
    if len(raw) > MAX_PAYLOAD:
        return None, f"payload of {len(raw)} bytes (at most {MAX_PAYLOAD})"
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, "payload is not UTF-8"
    if not text.startswith("{"):
        if not _encodable(text) or not text.isprintable():
            return None, "payload is not printable text"
        return {"action": text}, ""
    if text.count("{") + text.count("[") > 1:  # over-counts brackets inside strings: only ever stricter
        return None, "nested JSON payload"
    try:
        d = json.loads(text)
    except (ValueError, RecursionError):
        return None, "payload is not JSON"
    if not isinstance(d, dict) or not all(isinstance(v, str) for v in d.values()):
        return None, "payload must be one JSON object of text fields"
    if not all(_encodable(k) and _encodable(v) for k, v in d.items()):
        return None, "payload holds a lone surrogate"
    if set(d) - FIELDS:
        return None, f"unknown fields (known: {', '.join(sorted(FIELDS))})"
    return d, ""


def sign(secret: bytes, topic: str, action: str, nonce: str) -> str:
    """The ``mac`` of a command: HMAC-SHA256 over topic, action and nonce, hex."""
    return hmac.new(secret, f"{topic}\n{action}\n{nonce}".encode(), hashlib.sha256).hexdigest()


class Nonces:
    """One-time challenges, each good for ``ttl_s`` seconds; a new one is offered
    every ``ttl_s / 2`` (so a client always has at least half the lifetime) and as
    soon as one is used."""

    def __init__(self, ttl_s: float, clock=time.monotonic):
        self.ttl_s, self.clock = ttl_s, clock
        self._issued: dict[str, float] = {}
        self._lock = threading.Lock()
        self._newest = ""

    def current(self) -> str:
        now = self.clock()
        with self._lock:
            self._issued = {n: t for n, t in self._issued.items() if now - t < self.ttl_s}
            if self._newest not in self._issued or now - self._issued[self._newest] >= self.ttl_s / 2:
                self._newest = os.urandom(16).hex()
                self._issued[self._newest] = now
            return self._newest

    def use(self, nonce: str) -> bool:
        """True (and the nonce is spent) when ``nonce`` is live."""
        now = self.clock()
        with self._lock:
            t = self._issued.get(nonce)
            if t is None or now - t >= self.ttl_s:
                return False
            del self._issued[nonce]
            return True

    def live(self, nonce: str) -> bool:
        now = self.clock()
        with self._lock:
            t = self._issued.get(nonce)
            return t is not None and now - t < self.ttl_s


class RateLimit:
    """A token bucket per source: ``rate`` a second, bursts of ``burst``."""

    def __init__(self, rate: float = 2.0, burst: int = 10, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens: dict[str, tuple[float, float]] = {}

    def allow(self, source: str) -> bool:
        now = self.clock()
        tokens, at = self._tokens.get(source, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        self._tokens[source] = (tokens - 1.0 if ok else tokens, now)
        return ok


class CommandGate:
    """One MQTT message -> one Command (accepted or refused, with the reason).

    ``secret``: the unlock code (None: no signed commands possible); ``backoff``: a
    ``CodeBackoff`` (wrong signatures); ``remote_unlock``: OPEN/UNLOCK allowed at all;
    ``pause_unsigned``: the pause switch obeys unsigned ON/OFF (opt-in)."""

    def __init__(self, secret: bytes | None, ttl_s: float, backoff, remote_unlock: bool = False,
                 pause_unsigned: bool = False, clock=time.monotonic):
        self.secret, self.backoff, self.clock = secret, backoff, clock
        self.remote_unlock, self.pause_unsigned = remote_unlock, pause_unsigned
        self.nonces = Nonces(ttl_s, clock) if secret else None

    def judge(self, target: str, topic: str, raw: bytes, retained: bool) -> Command:
        now = self.clock()

        def refuse(action: str, why: str) -> Command:
            return Command(target, action, why, now)

        if retained:
            return refuse("?", "retained message ignored (a command is never retained)")
        d, why = parse_payload(raw)
        if d is None:
            return refuse("?", why)
        action = d.get("action", "").upper()
        if action not in ACTIONS[target]:
            return refuse(shown(action), f"unknown {target} command")
        if action == "LOCK":
            return refuse(action, "the door locks itself after every pulse")
        if target == "lock" and not self.remote_unlock:
            return refuse(action, "remote unlock is disabled (mqtt.remote_unlock = false)")
        if target == "pause" and self.pause_unsigned and "mac" not in d:
            return Command(target, action, "", now)
        if self.nonces is None:
            return refuse(action, "remote pause needs an unlock code to sign it (mqtt.unlock_code_file), "
                                  "or mqtt.pause_unsigned = true")
        if "code" in d:
            return refuse(action, "a code sent as-is is never accepted: sign the command (docs/mqtt-security.md)")
        nonce, mac = d.get("nonce", ""), d.get("mac", "")
        if not nonce or not mac:
            return refuse(action, "unsigned command (needs nonce and mac)")
        if not self.nonces.live(nonce):
            return refuse(action, "unknown, used or expired nonce")
        left = self.backoff.blocked_for()
        if left > 0:
            return refuse(action, f"too many wrong signatures: refused for {left:.0f} s")
        if not hmac.compare_digest(mac.encode(), sign(self.secret, topic, action, nonce).encode()):
            self.backoff.fail()
            return refuse(action, "wrong signature")
        if not self.nonces.use(nonce):  # spent by a concurrent copy of this command
            return refuse(action, "unknown, used or expired nonce")
        self.backoff.succeed()
        return Command(target, action, "", now)
