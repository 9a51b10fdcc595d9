"""``facelatch remote open|unlock|pause|resume``: a signed command to the door over
MQTT, from any machine that holds the unlock code (for instance Home Assistant's host,
as a ``shell_command``).  It reads the ``[mqtt]`` section of a config (host, TLS,
credentials, code: the door's own config will do), takes the nonce the door offers,
signs the command (edge.commands.sign) and waits until the door has acted on it: the
lock reports UNLOCKED, or (pause) the used nonce is replaced.  The code never leaves
this machine."""

from __future__ import annotations

import json
import os
import threading
import time

from .commands import sign
from .errors import FacelatchError
from .mqtt import read_code, read_credentials

COMMANDS = {"open": ("lock", "OPEN"), "unlock": ("lock", "UNLOCK"), "pause": ("pause", "ON"),
            "resume": ("pause", "OFF")}


def send(cfg, command: str, timeout_s: float = 10.0) -> str:
    """Send ``command`` (a key of COMMANDS) to the door; what happened, or a FacelatchError."""
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise FacelatchError("facelatch remote needs paho-mqtt: pip install 'facelatch[mqtt]'") from None
    target, action = COMMANDS[command]
    code = read_code(cfg.unlock_code_file)
    if code is None:
        raise FacelatchError("facelatch remote needs the unlock code (mqtt.unlock_code_file or the systemd "
                             "credential 'mqtt-unlock-code')")
    base = f"facelatch/{cfg.node_id}"
    topic, nonce_topic, state_topic = f"{base}/{target}/set", f"{base}/nonce", f"{base}/lock/state"
    seen: dict[str, list[str]] = {nonce_topic: [], state_topic: []}
    cond = threading.Condition()

    def on_message(client, userdata, msg):
        with cond:
            seen[msg.topic].append(msg.payload.decode("ascii", "replace"))
            cond.notify_all()

    def wait(pred, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        with cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FacelatchError(f"no {what} from the door within {timeout_s:g} s (see its audit log)")
                cond.wait(left)

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"facelatch-remote-{os.urandom(4).hex()}")
    creds = read_credentials(cfg.credentials_file)
    if creds:
        c.username_pw_set(*creds)
    if cfg.tls:
        import ssl

        c.tls_set(ca_certs=cfg.ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
    c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe([(nonce_topic, 1), (state_topic, 1)])
    c.on_message = on_message
    try:
        c.connect(cfg.host, cfg.port, keepalive=int(cfg.keepalive_s))
    except (OSError, ValueError) as e:
        raise FacelatchError(f"cannot reach the MQTT broker {cfg.host}:{cfg.port}: {e}") from None
    c.loop_start()
    try:
        wait(lambda: seen[nonce_topic], "nonce (is remote signing set up: mqtt.unlock_code_file?)")
        with cond:
            nonce, states = seen[nonce_topic][-1], len(seen[state_topic])
        payload = json.dumps({"action": action, "nonce": nonce, "mac": sign(code.encode(), topic, action, nonce)})
        c.publish(topic, payload, qos=1).wait_for_publish(timeout_s)
        if target == "lock":
            wait(lambda: "UNLOCKED" in seen[state_topic][states:], "unlock")
            return f"{action}: the door unlocked"
        wait(lambda: seen[nonce_topic][-1] != nonce, "answer")
        return f"pause {action}: accepted"
    finally:
        c.disconnect()
        c.loop_stop()
