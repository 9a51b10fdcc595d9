"""MQTT and Home Assistant: the door as an MQTT device (``[mqtt]``, off by default).

The daemon talks to this module through five calls that never block the frame loop
(they put a message on a bounded queue, dropping the oldest when full):
``decision(record)``, ``door(hold_s)``, ``camera(ok)``, ``paused(on)``, and
``commands()`` (the remote commands received since the last call).  A background
thread (paho's network loop) connects, reconnects with backoff and publishes; when
the broker is down nothing waits for it, and decisions are still audited locally.

Home Assistant sees one device (MQTT discovery, one retained config on
``<prefix>/device/<node_id>/config``, re-sent when ``<prefix>/status`` says
``online``): the door as a read-only lock sensor (UNLOCKED for the relay pulse, then
LOCKED on its own; Home Assistant's lock cannot sign a command), an ``event``
(granted / denied / spoof / unknown / locked_out), a ``sensor`` (the last person), a
``binary_sensor`` (camera healthy) and the pause (read only; a ``switch`` with
``pause_unsigned``).  Availability:
``facelatch/<node_id>/status`` online/offline, offline set as the last will.

Remote unlock is refused unless ``remote_unlock = true``, which the config accepts
only with TLS, broker credentials from a file or systemd credential, and an unlock
code.  Commands are checked in :mod:`edge.commands` (retained ones ignored, payloads
bounded, OPEN/UNLOCK and pause signed with HMAC over a one-time nonce the device
publishes on ``facelatch/<node_id>/nonce``; the code itself never crosses the
network); accepted commands and (rate-limited) refused ones go to the daemon to be
audited.  Wrong signatures back off (1 s, doubling, capped), persisted in the state
directory.  paho's network thread is supervised: a callback never raises into it,
and a dead thread is restarted.  Scores are published only with
``publish_scores = true`` (rounded); a spoof event names the matched person only with
``publish_spoof_person = true``.  docs/mqtt-security.md: the threat model."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from pathlib import Path

from .commands import Command, CommandGate, RateLimit, shown
from .errors import FacelatchError
from .secrets import find_credential, read_private
from .state import CodeBackoff

log = logging.getLogger("facelatch")

EVENT_TYPES = ["granted", "denied", "spoof", "unknown", "locked_out"]
CREDENTIALS = "mqtt-credentials"  # systemd credential: "username\npassword"
UNLOCK_CODE = "mqtt-unlock-code"  # systemd credential: the secret remote commands are signed with
MIN_CODE = 16  # characters: a nonce and its signature are public, so a short code falls to an offline search
SCORE_DIGITS = 2  # published scores (publish_scores = true) are rounded to this
REFUSED_BURST = 20  # refused commands (and Home Assistant "online"s) handled one by one before the rate limit
__all__ = ["Command", "MqttBridge", "NullBridge", "make_bridge", "event_type"]


def event_type(record: dict) -> str:
    """The Home Assistant event type of an audit record."""
    kind = record.get("decision")
    if kind == "unlock":
        return "granted"
    if kind == "locked_out":
        return "locked_out"
    if kind == "deny" and not record.get("person") and (record.get("claimed_person") or record.get("spoof_frames")):
        return "spoof"
    if kind == "deny" and not record.get("person") and record.get("cause") != "crowd":
        return "unknown"
    return "denied"


REMOTE_PERSON = "Home Assistant"  # who opened the door on a remote unlock (the event's person)


def event_payload(record: dict, scores: bool = False, spoof_person: bool = False) -> dict:
    """The Home Assistant event (``event.<node_id>_face``) of one audit record: its type,
    who (for a remote unlock: Home Assistant; for a spoof, whom the not-live face
    matched, only with ``spoof_person``), why, from where ("face" or "mqtt") and when;
    distance and P(live) only with ``scores``, rounded (they help tune a photo attack)."""
    source = record.get("source") or "face"
    kind = event_type(record)
    person = record.get("person") or (REMOTE_PERSON if source == "mqtt" else None)
    if kind == "spoof" and spoof_person:
        person = person or record.get("claimed_person")
    ev = {"event_type": kind, "person": person, "source": source, "reason": shown(str(record.get("reason") or ""), 120),
          "cause": record.get("cause"), "time": record.get("time") or time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if scores:
        for key, value in (("distance", record.get("best_distance")), ("live_score", record.get("live_score"))):
            ev[key] = None if value is None else round(float(value), SCORE_DIGITS)
    return ev


def read_credentials(configured: str) -> tuple[str, str] | None:
    path = find_credential(configured, CREDENTIALS)
    if path is None:
        return None
    lines = read_private(path, "MQTT credentials file").decode(errors="replace").splitlines()
    if len(lines) < 2 or not lines[0].strip():
        raise FacelatchError(f"MQTT credentials file {path} must hold the username on line 1 and the password on line 2")
    return lines[0].strip(), lines[1].rstrip("\r\n")


def read_code(configured: str) -> str | None:
    path = find_credential(configured, UNLOCK_CODE)
    if path is None:
        return None
    code = read_private(path, "MQTT unlock code file").decode(errors="replace").strip()
    if len(code) < MIN_CODE:
        raise FacelatchError(f"MQTT unlock code in {path} is shorter than {MIN_CODE} characters (commands are signed "
                             "with it; make one with: head -c 24 /dev/urandom | base64)")
    return code


_WAKE = (None, None)  # a queue item that only wakes the publishing thread


class NullBridge:
    """MQTT off: every call does nothing."""

    def decision(self, record: dict) -> None:
        pass

    def door(self, hold_s: float) -> None:
        pass

    def camera(self, ok: bool) -> None:
        pass

    def paused(self, on: bool) -> None:
        pass

    def commands(self) -> list[Command]:
        return []

    def announce(self) -> None:
        pass

    def close(self) -> None:
        pass


class MqttBridge:
    """The door on an MQTT broker (see the module text)."""

    def __init__(self, cfg, version: str = "0", state_dir=None, allow_insecure: bool = False, paused: bool = False):
        try:
            import paho.mqtt.client as paho
        except ImportError:
            raise FacelatchError("mqtt.enabled needs paho-mqtt: pip install 'facelatch[mqtt]'") from None
        self.cfg, self.version = cfg, version
        node = cfg.node_id
        self.base = f"facelatch/{node}"
        self.t = {k: f"{self.base}/{k}" for k in ("status", "lock/state", "lock/set", "event", "person",
                                                   "camera", "pause/state", "pause/set", "nonce")}
        self.ha_status = f"{cfg.discovery_prefix}/status"
        self.discovery_topic = f"{cfg.discovery_prefix}/device/{node}/config"
        creds = read_credentials(cfg.credentials_file)
        if creds and not cfg.tls and not allow_insecure:
            raise FacelatchError("MQTT broker credentials with mqtt.tls = false would cross the network in clear; "
                                 "set mqtt.tls = true (or [security] allow_insecure = true)")
        code = read_code(cfg.unlock_code_file)
        if cfg.remote_unlock and (not cfg.tls or creds is None or code is None):
            raise FacelatchError("mqtt.remote_unlock needs mqtt.tls = true, broker credentials (mqtt.credentials_file "
                                 f"or the systemd credential '{CREDENTIALS}') and an unlock code "
                                 f"(mqtt.unlock_code_file or the systemd credential '{UNLOCK_CODE}')")
        backoff = CodeBackoff(Path(state_dir) / "remote_backoff.json" if state_dir else None, cfg.code_backoff_max_s)
        self.gate = CommandGate(code.encode() if code else None, cfg.command_ttl_s, backoff, cfg.remote_unlock,
                                cfg.pause_unsigned)
        self._out: queue.Queue = queue.Queue(maxsize=cfg.queue_max)
        self._in: queue.Queue = queue.Queue(maxsize=cfg.queue_max)  # accepted commands: their own lane
        self._refused: queue.Queue = queue.Queue(maxsize=cfg.queue_max)  # refused ones, rate-limited per topic
        self._rate = RateLimit(cfg.refused_per_minute / 60.0, REFUSED_BURST)
        self._suppressed: dict[str, int] = {}  # refused commands per target not yet audited one by one
        self._refusing = threading.Lock()  # the network thread and the pump both report refusals
        self.restarts = 0  # times paho's network thread was found dead and restarted
        self._retained: dict[str, str] = {}  # topic -> last state, re-sent on every connect
        self._lock = threading.Lock()
        self._relock_at: float | None = None
        self.dropped = 0
        self._holding = False  # the pump holds a message it has not handed to paho yet
        self._queue_full = paho.MQTT_ERR_QUEUE_SIZE
        self._stop = threading.Event()
        c = self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"facelatch-{node}")
        c.suppress_exceptions = True  # a callback that raises must never end the network thread
        c.max_queued_messages_set(cfg.queue_max)  # paho's own queue while (re)connecting: bounded too
        c.will_set(self.t["status"], "offline", qos=1, retain=True)
        if creds:
            c.username_pw_set(*creds)
        if cfg.tls:
            import ssl

            c.tls_set(ca_certs=cfg.ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
        c.reconnect_delay_set(max(1, int(cfg.reconnect_min_s)), max(1, int(cfg.reconnect_max_s)))
        c.on_connect, c.on_message, c.on_disconnect = self._on_connect, self._on_message, self._on_disconnect
        self._retain("lock/state", "LOCKED")
        # the pause as it is, from the first message: a bridge made on a reload that first said OFF and then ON
        # left OFF as the last word on the broker in 3 of 4 runs (two clients with one id while they swap)
        self._retain("pause/state", "ON" if paused else "OFF")
        self._offer_nonce()
        c.connect_async(cfg.host, cfg.port, keepalive=int(cfg.keepalive_s))
        c.loop_start()  # paho's network thread: connects, reconnects with backoff
        self._pump_thread = threading.Thread(target=self._pump, name="facelatch-mqtt", daemon=True)
        self._pump_thread.start()

    # -- what the daemon calls (never blocks) -----------------------------------------

    def decision(self, record: dict) -> None:
        self._put(self.t["event"], json.dumps(event_payload(record, self.cfg.publish_scores, self.cfg.publish_spoof_person)), retain=False)
        if record.get("person") and record.get("source", "face") == "face":  # the last person RECOGNISED
            self._retain("person", record["person"])

    def door(self, hold_s: float) -> None:
        """The relay was pulsed: UNLOCKED now, LOCKED after ``hold_s``."""
        with self._lock:
            self._relock_at = time.monotonic() + hold_s
        if not self._retain("lock/state", "UNLOCKED"):
            self._put(*_WAKE, retain=False)  # already UNLOCKED: wake the pump for the new relock time

    def camera(self, ok: bool) -> None:
        self._retain("camera", "ON" if ok else "OFF")

    def paused(self, on: bool) -> None:
        self._retain("pause/state", "ON" if on else "OFF")

    def commands(self) -> list[Command]:
        """The commands received since the last call, accepted and (rate-limited)
        refused ones, in the order they came."""
        out = []
        for q in (self._in, self._refused):
            while True:
                try:
                    out.append(q.get_nowait())
                except queue.Empty:
                    break
        return sorted(out, key=lambda c: c.received)

    def announce(self) -> None:
        """Send discovery, availability and every state again (after a reload replaced
        another bridge on the same topics, whose close said offline)."""
        self._announce()

    def close(self, drain_s: float = 1.0) -> None:
        """Send what is queued (for at most ``drain_s`` while connected), go offline, stop."""
        with self._lock:
            relock, self._relock_at = self._relock_at is not None, None
        if relock:
            self._retain("lock/state", "LOCKED")
        deadline = time.monotonic() + drain_s
        while self.client.is_connected() and (self._holding or not self._out.empty()) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        self._put(*_WAKE, retain=False)
        self._pump_thread.join(timeout=2)
        try:
            if self.client.is_connected():
                self.client.publish(self.t["status"], "offline", qos=1, retain=True).wait_for_publish(1.0)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()

    # -- queueing ---------------------------------------------------------------------

    def _put(self, topic: str | None, payload: str | None, retain: bool) -> None:
        item = (topic, payload, retain) if topic is not None else _WAKE
        while True:
            try:
                self._out.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._out.get_nowait()  # the oldest message goes; retained states are re-sent on connect
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _retain(self, key: str, payload: str) -> bool:
        topic = self.t[key]
        with self._lock:
            if self._retained.get(topic) == payload:
                return False
            self._retained[topic] = payload
        self._put(topic, payload, retain=True)
        return True

    def _pump(self) -> None:
        """Background: publish queued messages while connected; re-lock after a pulse.
        It sleeps until there is something to do (no polling while idle)."""
        item = None
        while not self._stop.is_set():
            with self._lock:
                relock_at = self._relock_at
                if relock_at is not None and time.monotonic() >= relock_at:
                    self._relock_at = relock_at = None
                    relock = True
                else:
                    relock = False
            if relock:
                self._retain("lock/state", "LOCKED")
            self._offer_nonce()
            self._supervise()
            self._report_suppressed()
            wait = 1.0 if relock_at is None else min(1.0, max(0.0, relock_at - time.monotonic()))
            self._holding = item is not None
            if item is None:
                try:
                    item = self._out.get(timeout=wait)
                    self._holding = True
                except queue.Empty:
                    continue
                if item is _WAKE:
                    item = None
                    continue
            if not self.client.is_connected():
                self._stop.wait(wait)
                continue
            topic, payload, retain = item
            if self.client.publish(topic, payload, qos=1, retain=retain).rc != self._queue_full:
                item = None  # sent, or held by paho for the next connection
            else:
                self._stop.wait(0.05)

    def _offer_nonce(self) -> None:
        if self.gate.nonces is not None:
            self._retain("nonce", self.gate.nonces.current())

    def _supervise(self) -> None:
        """Restart paho's network thread if it has died (it must never; this is the net
        under the callbacks' own guards)."""
        thread = getattr(self.client, "_thread", None)  # paho sets it to None when its loop ends
        if self._stop.is_set() or (thread is not None and thread.is_alive()):
            return
        log.error("MQTT network thread died; restarting it")
        self.restarts += 1
        try:
            self.client.loop_stop()
            self.client.loop_start()
        except Exception:
            log.exception("could not restart the MQTT network thread")

    # -- paho callbacks (network thread) ------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s", self.cfg.host, self.cfg.port, reason_code)
            return
        log.info("MQTT connected to %s:%d", self.cfg.host, self.cfg.port)
        client.subscribe([(self.ha_status, 1), (self.t["lock/set"], 1), (self.t["pause/set"], 1)])
        self._announce()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if not self._stop.is_set():
            log.warning("MQTT connection lost (%s); reconnecting in the background", reason_code)

    def _announce(self) -> None:
        """Discovery, availability and every retained state (on connect, and when HA restarts)."""
        self._put(self.discovery_topic, json.dumps(self.discovery()), retain=True)
        self._put(self.t["status"], "online", retain=True)
        with self._lock:
            states = list(self._retained.items())
        for topic, payload in states:
            self._put(topic, payload, retain=True)

    def _on_message(self, client, userdata, msg) -> None:
        try:
            self._message(msg)
        except Exception:  # never into paho's thread
            log.exception("MQTT message on %s not handled", shown(str(getattr(msg, "topic", "?")), 80))

    def _message(self, msg) -> None:
        if msg.topic == self.ha_status:
            with self._refusing:
                announce = msg.payload == b"online" and self._rate.allow("announce")
            if announce:  # a flood of "online" must not churn
                self._announce()  # the outgoing queue (events would be dropped from it)
            return
        target = {self.t["lock/set"]: "lock", self.t["pause/set"]: "pause"}.get(msg.topic)
        if target is None:
            return
        cmd = self.gate.judge(target, msg.topic, bytes(msg.payload), bool(msg.retain))
        if not cmd.refused:
            self._offer_nonce()  # the used nonce is gone: offer the next one now
            try:
                self._in.put_nowait(cmd)
            except queue.Full:
                log.error("MQTT command queue full: dropped %s %s", cmd.target, cmd.action)
            return
        self._refuse(cmd)

    def _refuse(self, cmd: Command | None, target: str = "") -> None:
        """A refused command to be audited if the rate limit of its topic allows, else
        counted; ``cmd`` None: only the count so far, as a summary (from the pump, so
        that the end of a flood is on record too)."""
        target = cmd.target if cmd else target
        with self._refusing:
            if not self._rate.allow(self.t[f"{target}/set"]):
                self._suppressed[target] = self._suppressed.get(target, 0) + (1 if cmd else 0)
                return
            n = self._suppressed.pop(target, 0)
            summary = cmd is None  # a real refusal may carry action "?" too (retained, oversize, not UTF-8)
            if summary and not n:
                return
            cmd = cmd or Command(target, "?", "refused commands not audited one by one (rate limit)", time.monotonic())
            cmd = Command(cmd.target, cmd.action, cmd.refused, cmd.received, n)
            try:
                self._refused.put_nowait(cmd)
            except queue.Full:
                self._suppressed[target] = self._suppressed.get(target, 0) + (0 if summary else 1) + n

    def _report_suppressed(self) -> None:
        for target in [t for t, n in list(self._suppressed.items()) if n]:
            self._refuse(None, target)

    # -- Home Assistant discovery ---------------------------------------------------------

    def discovery(self) -> dict:
        return discovery_payload(self.cfg, self.t, self.version)


def door_component(cfg, t: dict) -> tuple[str, dict]:
    """The door in Home Assistant: a read-only lock sensor.  Home Assistant's lock
    cannot sign a command (docs/mqtt-security.md): its Open and Unlock would send the
    code as-is, which the door refuses, so it shows no button that would only be
    refused; remote unlock goes through ``facelatch remote open``."""
    node = cfg.node_id
    return "door_state", {"p": "binary_sensor", "name": "Door", "unique_id": f"{node}_door_state",
                          "default_entity_id": f"binary_sensor.{node}_door", "device_class": "lock",
                          "state_topic": t["lock/state"], "payload_on": "UNLOCKED", "payload_off": "LOCKED"}


def pause_component(cfg, t: dict) -> dict:
    """The pause: a switch only with ``pause_unsigned`` (Home Assistant's switch sends
    plain ON/OFF); otherwise read only (``facelatch remote pause|resume`` signs)."""
    node = cfg.node_id
    if cfg.pause_unsigned:
        return {"p": "switch", "name": "Pause face unlock", "unique_id": f"{node}_pause",
                "default_entity_id": f"switch.{node}_pause", "state_topic": t["pause/state"],
                "command_topic": t["pause/set"], "retain": False}
    return {"p": "binary_sensor", "name": "Face unlock paused", "unique_id": f"{node}_pause_state",
            "default_entity_id": f"binary_sensor.{node}_pause", "state_topic": t["pause/state"]}


def discovery_payload(cfg, t: dict, version: str) -> dict:
    """The device-discovery payload (docs/home-assistant.md has its schema, from Home
    Assistant's MQTT documentation): every component with a ``default_entity_id``, so
    that the entity ids are the documented ``<domain>.<node_id>_<name>``."""
    node = cfg.node_id
    door_id, door = door_component(cfg, t)
    return {
        "dev": {"ids": [f"facelatch_{node}"], "name": f"facelatch {node}", "mf": "facelatch",
                "mdl": "face-unlock door", "sw": version},
        "o": {"name": "facelatch", "sw": version},
        "avty_t": t["status"], "qos": 1,
        "cmps": {
            door_id: door,
            "face": {"p": "event", "name": "Face", "unique_id": f"{node}_face",
                     "default_entity_id": f"event.{node}_face", "state_topic": t["event"], "event_types": EVENT_TYPES},
            "last_person": {"p": "sensor", "name": "Last person", "unique_id": f"{node}_last_person",
                            "default_entity_id": f"sensor.{node}_last_person", "state_topic": t["person"]},
            "camera": {"p": "binary_sensor", "name": "Camera", "unique_id": f"{node}_camera",
                       "default_entity_id": f"binary_sensor.{node}_camera", "device_class": "connectivity",
                       "state_topic": t["camera"]},
            "pause": pause_component(cfg, t),
        },
    }


def make_bridge(cfg, version: str = "0", state_dir=None, allow_insecure: bool = False,
                paused: bool = False) -> NullBridge | MqttBridge:
    return MqttBridge(cfg, version, state_dir, allow_insecure, paused) if cfg.enabled else NullBridge()
