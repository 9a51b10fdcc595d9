"""Fuzzing the three topics the door listens on (``lock/set``, ``pause/set``,
``homeassistant/status``) through a real mosquitto with TLS: random bytes, text with
lone surrogates, deep nesting, command-shaped JSON with anything in its fields,
retained or not.  Nothing may crash or kill paho's network thread, nothing but the
owner's signed command may be accepted, and the owner's command must still be
accepted after every batch.

CI runs a short batch.  The long run (BENCHMARKS.md, "Hardening"):

    FACELATCH_FUZZ_SECONDS=600 FACELATCH_FUZZ_REPORT=/tmp/fuzz.json \\
        python -m pytest -q tests/test_fuzz_mqtt.py"""

import json
import logging
import os
import time

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import TIME_SCALE  # noqa: E402
from mqtt_broker import needs_mosquitto  # noqa: E402
from test_mqtt import CODE, T  # noqa: E402
from test_remote_commands import LOCK, PAUSE, accepted, owner, tls_broker, unlock_bridge, wait_commands  # noqa: E402,F401

TOPICS = [LOCK, PAUSE, "homeassistant/status"]
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
field = st.one_of(st.text(max_size=40), surrogates, st.sampled_from(["OPEN", "UNLOCK", "LOCK", "ON", "OFF", ""]),
                  st.integers(), st.none(), st.lists(st.integers(), max_size=3))
command_json = st.dictionaries(st.sampled_from(["action", "nonce", "mac", "code", "x"]), field, max_size=5).map(
    lambda d: json.dumps(d).encode())
nested = st.tuples(st.integers(1, 50_000), st.sampled_from(["[]", "{}"])).map(
    lambda t: (t[1][0] * t[0] + t[1][1] * t[0]).encode())
payload = st.one_of(st.binary(max_size=1500), st.text(max_size=200).map(lambda s: s.encode()), command_json, nested,
                    st.sampled_from([b"OPEN", b"ON", b"OFF", b"online", b"offline", b"\xff" * 600_000]))
messages = st.lists(st.tuples(st.sampled_from(TOPICS), payload, st.booleans()), min_size=1, max_size=4)


def _batch(w, bridge, n: int, rng_seed: int, stats: dict) -> None:
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(messages)
    def one(msgs):
        for topic, raw, retain in msgs:
            w.c.publish(topic, raw, qos=1, retain=retain)
        stats["examples"] += 1
        stats["messages"] += len(msgs)
        for c in bridge.commands():
            assert c.refused, c  # junk is never accepted
            assert c.action.isascii() and c.action.isprintable() and len(c.refused) < 200

    seed(rng_seed)(one)()


@needs_mosquitto
def test_fuzzed_command_topics_never_crash_the_bridge_nor_lose_the_owners_command(tmp_path, tls_broker, caplog):
    seconds = float(os.environ.get("FACELATCH_FUZZ_SECONDS", "0"))
    per_batch = 40 if TIME_SCALE == 1 else 10
    w = owner(tls_broker)
    b = unlock_bridge(tmp_path, tls_broker)
    stats = {"examples": 0, "messages": 0, "owner_commands": 0, "batches": 0}
    t0 = time.monotonic()
    caplog.set_level(logging.ERROR, logger="facelatch")
    try:
        w.wait_for(lambda t, p, r: t == f"{T}/status" and p == "online")
        while True:
            _batch(w, b, per_batch if not seconds else 400, stats["batches"], stats)
            stats["batches"] += 1
            w.signed(T, "lock", "OPEN", CODE)
            got = wait_commands(b, accepted, timeout=20)
            assert [c for c in got if not c.refused and c.action == "OPEN"], got
            stats["owner_commands"] += 1
            assert b.client._thread is not None and b.client._thread.is_alive() and b.restarts == 0
            if time.monotonic() - t0 >= seconds:
                break
    finally:
        b.close()
        w.close()
    stats["seconds"] = round(time.monotonic() - t0, 1)
    assert not [r for r in caplog.records if "not handled" in r.getMessage()]  # no callback ever raised
    if os.environ.get("FACELATCH_FUZZ_REPORT"):
        with open(os.environ["FACELATCH_FUZZ_REPORT"], "w") as f:
            json.dump(stats, f)
    print("fuzz:", stats)
