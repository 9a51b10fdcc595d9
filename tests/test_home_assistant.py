"""Home Assistant: the discovery payload against the schema written down from Home
Assistant's MQTT documentation (docs/home-assistant.md), and the documented
automations run, as written, against a real Mosquitto broker with Home Assistant's
event-entity behaviour simulated: each fires exactly once per decision."""

import dataclasses
import json
import re
import threading
import time
from datetime import datetime, timezone

import pytest

from conftest import ROOT, scaled
from mqtt_broker import Broker, needs_mosquitto

from edge.config import MqttConfig

paho = pytest.importorskip("paho.mqtt.client")
from edge.mqtt import EVENT_TYPES, MqttBridge, discovery_payload  # noqa: E402

DOC = ROOT / "docs" / "home-assistant.md"
# -- the schema (docs/home-assistant.md, "The discovery payload (schema)") -------------------
ROOT_KEYS = {"dev", "o", "cmps", "avty_t", "avty", "avty_mode", "qos", "state_topic", "command_topic", "encoding"}
COMMON = {"p", "name", "unique_id", "default_entity_id", "device_class", "icon", "enabled_by_default",
          "entity_category"}
PLATFORMS = {  # platform -> (required keys, further allowed keys)
    "lock": ({"command_topic"}, {"state_topic", "payload_lock", "payload_unlock", "payload_open", "state_locked",
                                 "state_unlocked", "code_format", "command_template", "retain", "optimistic"}),
    "event": ({"state_topic", "event_types"}, set()),
    "binary_sensor": ({"state_topic"}, {"payload_on", "payload_off"}),
    "sensor": ({"state_topic"}, set()),
    "switch": ({"command_topic"}, {"state_topic", "payload_on", "payload_off", "retain"}),
}


def schema_problems(d: dict) -> list[str]:
    out = [f"root: unknown key {k}" for k in set(d) - ROOT_KEYS]
    for key in ("dev", "o", "cmps"):
        if not isinstance(d.get(key), dict):
            out.append(f"root: {key} missing")
    if not out:
        if not (isinstance(d["dev"].get("ids"), list) and d["dev"]["ids"] and d["dev"].get("name")):
            out.append("dev: ids (a list) and name are required")
        if not d["o"].get("name"):
            out.append("o: name is required")
    ids = set()
    for cid, c in (d.get("cmps") or {}).items():
        p = c.get("p")
        if p not in PLATFORMS:
            out.append(f"{cid}: unknown platform {p!r}")
            continue
        required, allowed = PLATFORMS[p]
        out += [f"{cid}: {k} required" for k in sorted(required | {"unique_id"}) if k not in c]
        out += [f"{cid}: unknown key {k}" for k in sorted(set(c) - COMMON - required - allowed)]
        eid = c.get("default_entity_id", "")
        if not re.fullmatch(rf"{p}\.[a-z0-9_]+", eid):
            out.append(f"{cid}: default_entity_id {eid!r} is not {p}.<object id>")
        if eid in ids:
            out.append(f"{cid}: default_entity_id {eid} used twice")
        ids.add(eid)
        if p == "event" and "event_types" in c and not (isinstance(c["event_types"], list) and all(isinstance(e, str) for e in c["event_types"])):
            out.append(f"{cid}: event_types must be a list of strings")
    return out


TOPICS = {k: f"facelatch/n/{k}" for k in ("status", "lock/state", "lock/set", "event", "person", "camera",
                                          "pause/state", "pause/set")}


def test_discovery_payload_meets_the_documented_schema_and_ids():
    documented = set(re.findall(r"`((?:lock|event|sensor|binary_sensor|switch)\.<node_id>_[a-z_]+)`", DOC.read_text()))
    for remote, unsigned in ((False, False), (True, False), (True, True)):
        d = discovery_payload(MqttConfig(node_id="n", remote_unlock=remote, tls=remote, pause_unsigned=unsigned),
                              TOPICS, "1.0")
        assert schema_problems(d) == []
        ids = {c["default_entity_id"].replace(".n_", ".<node_id>_") for c in d["cmps"].values()}
        assert ids <= documented, ids - documented
        door = [c for c in d["cmps"].values() if c["default_entity_id"].endswith("_door")]
        assert len(door) == 1 and "command_topic" not in door[0]  # HA cannot sign (issue 20): never a button
        assert ("command_topic" in d["cmps"]["pause"]) == unsigned
    assert documented == {"binary_sensor.<node_id>_door", "event.<node_id>_face", "sensor.<node_id>_last_person",
                          "binary_sensor.<node_id>_camera", "binary_sensor.<node_id>_pause", "switch.<node_id>_pause"}


def test_schema_check_catches_what_home_assistant_would_reject():
    d = discovery_payload(MqttConfig(node_id="n", pause_unsigned=True), TOPICS, "1.0")
    bad = json.loads(json.dumps(d))
    bad["cmps"]["face"].pop("event_types")
    bad["cmps"]["pause"]["default_entity_id"] = "lock.n_pause"
    bad["cmps"]["camera"]["stat_topic"] = "x"
    del bad["o"]
    assert sorted(schema_problems(bad)) == ["camera: unknown key stat_topic", "face: event_types required",
                                            "pause: default_entity_id 'lock.n_pause' is not switch.<object id>",
                                            "root: o missing"]


# -- the documented automations, run --------------------------------------------------------

def documented_automations() -> list[dict]:
    """Each automation of docs/home-assistant.md: its trigger and condition."""
    yaml = DOC.read_text().split("```yaml", 1)[1].split("```", 1)[0]
    out = []
    for block in yaml.split("  - alias: ")[1:]:
        lists = lambda key: re.search(rf"{key}: \[([^\]]*)\]", block)  # noqa: E731
        out.append({"alias": block.splitlines()[0].strip('"'),
                    "entity_id": re.search(r"entity_id: (\S+)", block).group(1),
                    "not_from": [s.strip() for s in lists("not_from").group(1).split(",")] if lists("not_from") else [],
                    "not_to": [s.strip() for s in lists("not_to").group(1).split(",")] if lists("not_to") else [],
                    "event_type": re.search(r"attributes\.event_type == '(\w+)'", block).group(1),
                    "message": re.search(r'message: "(.*)"', block).group(1)})
    return out


class HomeAssistant:
    """What Home Assistant does with facelatch's messages, as its MQTT documentation
    describes it: discovery makes entities named by ``default_entity_id``; an event
    entity's state is the time of its last event (a JSON message on its state topic
    whose event_type is one of event_types; replayed retained messages are discarded);
    while the availability topic says offline it is ``unavailable``, before any event
    ``unknown``.  Every state change runs the automations' state triggers."""

    def __init__(self, broker, automations, node="facelatch"):
        self.automations, self.fired, self.states = automations, [], []
        self.entity, self.state, self.attrs, self.last_event = None, "unavailable", {}, None
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe([(f"homeassistant/device/{node}/config", 1),
                                                                     (f"facelatch/{node}/#", 1)])
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(1, 1)
        self.c.connect_async("127.0.0.1", broker.port, keepalive=10)
        self.c.loop_start()
        self.discovery = None

    def _set(self, state, attrs):
        old = self.state
        if (state, attrs) == (old, self.attrs):
            return
        self.state, self.attrs = state, attrs
        self.states.append(state)
        for a in self.automations:
            if a["entity_id"] != self.entity or old in a["not_from"] or state in a["not_to"] or old == state:
                continue  # with not_from/not_to a state trigger ignores attribute-only changes
            if attrs.get("event_type") == a["event_type"]:
                self.fired.append((a["alias"], a["message"].replace("{{ trigger.to_state.attributes.person }}",
                                                                   str(attrs.get("person")))))

    def _on_message(self, client, userdata, msg):
        payload = msg.payload.decode()
        with self.lock:
            if msg.topic.startswith("homeassistant/device/"):
                self.discovery = json.loads(payload)
                face = next(c for c in self.discovery["cmps"].values() if c["p"] == "event")
                self.entity, self.event_topic, self.types = face["default_entity_id"], face["state_topic"], face["event_types"]
                self.avty = self.discovery["avty_t"]
            elif self.discovery is None:
                return
            elif msg.topic == self.avty:
                self._set("unavailable" if payload == "offline" else self.last_event or "unknown",
                          {} if payload == "offline" else self.attrs if self.last_event else {})
            elif msg.topic == self.event_topic and not msg.retain:
                ev = json.loads(payload)
                if ev.get("event_type") in self.types and self.state != "unavailable":
                    self.last_event = datetime.now(timezone.utc).isoformat(timespec="microseconds")
                    self._set(self.last_event, {**ev, "event_types": self.types})

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            with self.lock:
                if pred(self):
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out; state {self.state}, fired {self.fired}, states {self.states}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def _cfg(broker) -> MqttConfig:
    return dataclasses.replace(MqttConfig(enabled=True, host="127.0.0.1", port=broker.port, reconnect_min_s=1,
                                          reconnect_max_s=1))


@needs_mosquitto
def test_documented_automations_fire_exactly_once_per_decision_across_reconnects(tmp_path):
    automations = documented_automations()
    assert [a["event_type"] for a in automations] == ["granted", "spoof"]
    broker = Broker(tmp_path).start()
    ha = HomeAssistant(broker, automations)
    bridge = MqttBridge(_cfg(broker), "1.0")
    try:
        ha.wait(lambda h: h.state == "unknown")  # discovered, available, no event yet
        assert all(a["entity_id"] == ha.entity == "event.facelatch_face" for a in automations)  # the ids match
        bridge.decision({"time": "2026-12-03T08:00:00+0000", "decision": "unlock", "person": "alice",
                         "reason": "3 of the last 5 frames matched", "best_distance": 0.21})
        ha.wait(lambda h: len(h.fired) == 1)
        bridge.decision({"decision": "deny", "person": None, "claimed_person": "alice", "spoof_frames": 4,
                         "cause": "not_live", "reason": "not live: P(live) 0.08 < 0.13 (attempt timed out)"})
        ha.wait(lambda h: len(h.fired) == 2)
        bridge.decision({"decision": "deny", "person": None, "cause": "crowd", "reason": "crowd of 2 faces"})
        ha.wait(lambda h: h.attrs.get("event_type") == "denied")
        assert ha.attrs["time"] and ha.attrs["source"] == "face" and ha.attrs["reason"] == "crowd of 2 faces"
        # facelatch restarts: offline, then online with discovery and retained states again
        bridge.close()
        ha.wait(lambda h: h.state == "unavailable")
        bridge = MqttBridge(_cfg(broker), "1.0")
        ha.wait(lambda h: h.state not in ("unavailable", "unknown"))
        # the broker restarts (its retained messages are gone; facelatch and HA reconnect)
        broker.stop()
        broker.start()
        ha.wait(lambda h: h.states.count("unavailable") >= 1 and h.state not in ("unavailable", "unknown"))
        ha.c.publish("homeassistant/status", "online", qos=1)  # Home Assistant announces itself: re-discovery
        time.sleep(scaled(1.0))
        assert len(ha.fired) == 2, ha.fired  # none of that fired anything
        bridge.decision({"time": "2026-12-03T08:05:00+0000", "decision": "unlock", "source": "mqtt",
                         "person": "Home Assistant", "command": "lock OPEN", "reason": "accepted"})
        ha.wait(lambda h: len(h.fired) == 3)
        assert ha.fired == [("Front door: who came in", "alice opened the front door"),
                            ("Front door: spoof attempt",  # the matched name is not published by default
                             "Someone held up a photo or screen at the front door"),
                            ("Front door: who came in", "Home Assistant opened the front door")]
        assert ha.attrs["source"] == "mqtt"
        # other triggers, on the same states: without not_from an old unlock fires again on each return
        # from unavailable; with not_from [unavailable, unknown] the first event of a new entity is lost
        def fires(not_from, states):
            sim = HomeAssistant.__new__(HomeAssistant)
            sim.automations = [{**automations[0], "not_from": not_from, "not_to": ["unavailable", "unknown"]}]
            sim.entity, sim.fired, sim.states, sim.state, sim.attrs = ha.entity, [], [], "unavailable", {}
            for s in states:
                sim._set(s, {} if s in ("unavailable", "unknown") else {"event_type": "granted", "person": "alice"})
            return len(sim.fired)
        seen = ["unknown", "t1", "unavailable", "t1", "unavailable", "t1", "t2"]  # 2 unlocks, 2 reconnects
        assert (fires([], seen), fires(["unavailable", "unknown"], seen), fires(["unavailable"], seen)) == (4, 1, 2)
    finally:
        bridge.close()
        ha.close()
        broker.stop()
