"""Issue 20's red-team cases, one printed row each, against whichever ``edge`` is first
on PYTHONPATH (benchmarks/hardening.py runs this for a tree: ``--redteam-only --tree``).

Works with the code before issue 20 (commands carry the code in clear) and after it
(commands signed over the device's nonce): the owner's command is made the way that
tree expects.  Real mosquitto with TLS and passwords (tests/mqtt_broker.py)."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import edge
from mqtt_broker import Broker, Watcher

from edge.config import MqttConfig

NEW = (Path(edge.__file__).parent / "commands.py").exists()  # (find_spec would also see an editable install)
CODE = "correct-horse-battery-staple"
NODE = "redteam"
T = f"facelatch/{NODE}"
LOCK, PAUSE = f"{T}/lock/set", f"{T}/pause/set"


def row(case: str, result: str) -> None:
    print(f"| {case} | {result} |", flush=True)


class Lab:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.broker = Broker(tmp, tls=True, users={"door": "s3cret-door", "ha": "s3cret-ha"}).start()
        self.creds, self.code = tmp / "mqtt.cred", tmp / "unlock.code"
        self.creds.write_text("door\ns3cret-door\n")
        self.code.write_text(CODE + "\n")
        for f in (self.creds, self.code):
            os.chmod(f, 0o600)
        self.state = tmp / "state"
        self.state.mkdir(exist_ok=True)

    def cfg(self, **kw) -> MqttConfig:
        names = {f.name for f in dataclasses.fields(MqttConfig)}
        base = dict(enabled=True, host="127.0.0.1", port=self.broker.port, node_id=NODE, tls=True,
                    ca_file=str(self.broker.tls["ca"]), credentials_file=str(self.creds), remote_unlock=True,
                    unlock_code_file=str(self.code), reconnect_min_s=1, reconnect_max_s=1)
        return MqttConfig(**{k: v for k, v in {**base, **kw}.items() if k in names})

    def bridge(self, **kw):
        from edge.mqtt import MqttBridge

        extra = {"state_dir": self.state} if NEW else {}
        return MqttBridge(self.cfg(**kw), "0", **extra)

    def owner(self) -> Watcher:
        return Watcher(self.broker, f"{T}/#", user=("ha", "s3cret-ha")).connected()

    def online(self, **kw) -> tuple[Watcher, object]:
        """The owner's client and a bridge that has come online."""
        w, b = self.owner(), self.bridge(**kw)
        w.wait_for(lambda t, p, r: t == f"{T}/status" and p == "online")
        return w, b

    def owner_payload(self, w: Watcher, target="lock", action="OPEN") -> str:
        """The owner's valid command, as this tree wants it."""
        if not NEW:
            return json.dumps({"action": action, "code": CODE}) if target == "lock" else action
        from edge.commands import sign

        nonce, topic = w.fresh_nonce(T), f"{T}/{target}/set"
        return json.dumps({"action": action, "nonce": nonce, "mac": sign(CODE.encode(), topic, action, nonce)})


def shut(*clients) -> None:
    for c in clients:
        c.close()


def drain(bridge, seconds: float) -> list:
    got, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        got += bridge.commands()
        time.sleep(1 / 15)  # as the door loop does, once a frame
    return got


def accepted(cmds, target="lock") -> int:
    return sum(1 for c in cmds if c.target == target and not c.refused)


def case_retained_open(lab: Lab) -> None:
    w = lab.owner()
    b = lab.bridge()
    w.wait_for(lambda t, p, r: t == f"{T}/status" and p == "online")
    payload = lab.owner_payload(w)  # the owner's own client retains it by mistake, or an attacker with the code
    b.close()
    w.publish(LOCK, payload, retain=True)
    b = lab.bridge()
    got = drain(b, 1.5)
    for _ in range(3):
        b.client.reconnect()  # a peer taking the client id forces this
        got += drain(b, 1.5)
    b.close()
    w.publish(LOCK, b"", retain=True)  # clear it
    w.close()
    row("retained OPEN on lock/set: commands accepted over 1 start + 3 reconnects", str(accepted(got)))


def case_replay(lab: Lab) -> None:
    w, b = lab.online()
    payload = lab.owner_payload(w)
    w.publish(LOCK, payload)
    first = drain(b, 1.0)
    for _ in range(3):
        w.publish(LOCK, payload)  # a subscriber recorded it
    again = drain(b, 1.5)
    shut(b, w)
    row("the owner's OPEN replayed 3 times by a subscriber: accepted (first, replays)",
        f"{accepted(first)}, {accepted(again)}; code in the payload: {'yes' if CODE in payload else 'no'}")


def case_retained_pause(lab: Lab) -> None:
    w = lab.owner()
    w.publish(PAUSE, "ON", retain=True)
    b = lab.bridge(pause_unsigned=True)  # after issue 20 only with this opt-in does a plain ON count at all
    got = drain(b, 1.5)
    b.close()
    w.publish(PAUSE, b"", retain=True)
    w.close()
    row("retained pause ON: accepted at start (pause_unsigned = true after issue 20)", str(accepted(got, "pause")))


def case_deep_json(lab: Lab) -> None:
    w, b = lab.online()
    w.publish(LOCK, b"[" * 100_000 + b"]" * 100_000)
    time.sleep(2.5)  # a dead thread is restarted within a second (after issue 20)
    alive = getattr(b.client, "_thread", None) is not None and b.client._thread.is_alive()
    w.publish(LOCK, lab.owner_payload(w))
    got = drain(b, 3.0)
    shut(b, w)
    row("deeply nested JSON on lock/set: paho thread alive 2.5 s later / owner's OPEN then accepted",
        f"{'yes' if alive else 'no'} / {accepted(got)}")


def case_flood(lab: Lab) -> None:
    w, b = lab.online()
    owner = lab.owner_payload(w)
    junk = [b"OPEN", b'{"action":"OPEN","code":"000000"}', b'{"action":"\\ud800x"}', b"[" * 600,
            json.dumps({"action": "OPEN", "nonce": "00" * 16, "mac": "11" * 32}).encode()]
    got, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            got.extend(b.commands())
            time.sleep(1 / 15)

    th = threading.Thread(target=loop)
    th.start()
    t0 = time.monotonic()
    for i in range(3000):
        w.c.publish(LOCK if i % 2 else PAUSE, junk[i % len(junk)], qos=0)
    w.publish(LOCK, owner)
    acted = None
    while time.monotonic() - t0 < 20:
        if accepted(got):
            acted = time.monotonic() - t0
            break
        time.sleep(0.05)
    time.sleep(1.0)
    stop.set()
    th.join()
    shut(b, w)
    refused = [c for c in got if c.refused]
    row("3,000 junk commands, then the owner's OPEN: accepted / seconds from the first junk / refused "
        "commands handed to the audit", f"{accepted(got)} / {acted:.2f} s / {len(refused)}" if acted
        else f"0 (dropped) / - / {len(refused)}")


def case_backoff_restart(lab: Lab) -> None:
    w, b = lab.online()
    waits = [0, 1.1, 2.1]  # each wrong code after the backoff the one before it set
    for wait in waits:
        time.sleep(wait)
        if NEW:
            nonce = w.fresh_nonce(T)
            w._used.discard(nonce)
            w.publish(LOCK, json.dumps({"action": "OPEN", "nonce": nonce, "mac": "00" * 32}))
        else:
            w.publish(LOCK, json.dumps({"action": "OPEN", "code": "wrong-wrong-wrong"}))
    drain(b, 0.3)
    b.close()  # a crash or restart
    t0 = time.monotonic()
    b = lab.bridge()
    if NEW:  # connected and subscribed once its own nonce is out
        nonce = b.gate.nonces.current()
        w.wait_for(lambda t, p, r: t == f"{T}/nonce" and p == nonce)
        w._used.update(p for p in w.payloads(f"{T}/nonce") if p != nonce)
    else:
        while not b.client.is_connected():
            time.sleep(0.02)
        time.sleep(0.3)
    w.publish(LOCK, lab.owner_payload(w))  # a guess right after the restart (here: the right code)
    after = time.monotonic() - t0
    got = drain(b, 1.0)
    shut(b, w)
    why = [c.refused or "accepted (the backoff was reset)" for c in got if c.target == "lock"][-1:]
    row("3 wrong codes (a 4 s backoff), restart, next attempt", f"{(why or ['no command arrived'])[0]} "
        f"({after:.1f} s after the restart)")


def case_audit_flood(lab: Lab) -> None:
    from edge.audit import AuditLog

    folder = lab.tmp / "audit"
    log = AuditLog(folder, 1_000_000, 5)
    log.write({"decision": "deny", "reason": "attempt timed out"})
    w, b = lab.online()
    for _ in range(6):
        w.publish(PAUSE, b"X" * 1_100_000)
    got = drain(b, 3.0)
    shut(b, w)
    for c in got:  # the record the door writes for a refused command (edge/daemon.py, Door.remote)
        command = f"{c.target} {c.action}"
        if NEW:
            from edge.commands import shown

            command = shown(command, 40)
        log.write({"decision": "remote_refused", "source": "mqtt", "command": command, "reason": c.refused})
    kept = [line for f in sorted(folder.glob("audit.jsonl*")) for line in f.read_text().splitlines()
            if '"decision":"deny"' in line]
    size = sum(f.stat().st_size for f in folder.glob("audit.jsonl*"))
    row("six 1.1 MB pause commands: the real deny still in audit.jsonl* / bytes written",
        f"{'yes' if kept else 'no (rotated away)'} / {size:,}")


def case_leaks(lab: Lab) -> None:
    w, b = lab.online()
    b.decision({"decision": "deny", "person": None, "claimed_person": "alice", "spoof_frames": 4,
                "best_distance": 0.123456789, "live_score": 0.0312345, "reason": "not live", "time": "now"})
    _, payload, _ = w.wait_for(lambda t, p, r: t == f"{T}/event")
    shut(b, w)
    ev = json.loads(payload)
    row("a spoof event: person / distance / P(live) published",
        f"{ev.get('person')} / {ev.get('distance', 'absent')} / {ev.get('live_score', 'absent')}")


def case_creds_in_clear() -> None:
    from edge import config as config_mod
    from edge.errors import FacelatchError

    try:
        config_mod.parse({"mqtt": {"enabled": True, "credentials_file": "/etc/facelatch/mqtt.cred"}})
        result = "accepted (the password crosses in clear)"
    except FacelatchError as e:
        result = "refused: " + str(e).splitlines()[-1].strip()[:90]
    row("credentials_file with tls = false", result)


def case_clock_back() -> None:
    from edge.config import PolicyConfig
    from edge.policy import DoorPolicy, LockoutState

    now = 1.8e9
    p = DoorPolicy(PolicyConfig(backoff_s=30, backoff_max_s=600), LockoutState(0, 3, now + 600))
    stepped = now - 86400
    t = stepped
    while p.judged(t - stepped, t, [(100.0, 100.0, 120.0, 120.0)]) is None and t - stepped < 2e5:
        t += 60  # a frame a minute; the camera's clock and the (stepped) wall clock both advance
    q = DoorPolicy(PolicyConfig(backoff_s=30, backoff_max_s=600), LockoutState(0, 3, now + 600))
    q.judged(0.0, now, [(100.0, 100.0, 120.0, 120.0)])
    forward = q.judged(60.0, now + 86400, [(100.0, 100.0, 120.0, 120.0)]) is None
    row("clock stepped back a day during a 600 s backoff: locked for / stepped forward a day: still locked",
        f"{t - stepped:,.0f} s / {'yes' if forward else 'no (the backoff ended at once)'}")


def case_tiff(tmp: Path) -> None:
    import struct

    from edge.errors import FacelatchError
    from edge.images import check_image

    entries = [(256, 12000), (256, 100), (257, 12000), (257, 100)]
    f = tmp / "dup.tif"
    f.write_bytes(b"II*\x00" + struct.pack("<IH", 8, len(entries))
                  + b"".join(struct.pack("<HHII", t, 4, 1, v) for t, v in entries) + b"\0\0\0\0")
    try:
        w, h = check_image(f)
        result = f"passes as {w}x{h} (the decoder reads 12000x12000: 144 MP)"
    except FacelatchError:
        result = "refused from the header"
    row("TIFF with repeated size tags (12000, then 100)", result)


def case_fifo(tmp: Path) -> None:
    from edge.camera import ImageFolder

    folder = tmp / "fifo"
    folder.mkdir()
    os.mkfifo(folder / "a.jpg")
    src = ImageFolder(str(folder))
    try:
        src.open()
    except Exception as e:
        row("images folder holding only a FIFO named a.jpg", f"skipped ({e.__class__.__name__}: {e})")
        return
    th = threading.Thread(target=lambda: src.read(), daemon=True)
    th.start()
    th.join(3)
    if th.is_alive():
        os.close(os.open(folder / "a.jpg", os.O_WRONLY | os.O_NONBLOCK))  # let it go
    row("images folder holding only a FIFO named a.jpg", "read() hangs (> 3 s, no watchdog ping)" if th.is_alive()
        else "not hanging")


def case_video_end(tmp: Path) -> None:
    import cv2

    from frames import write_demo_template

    from edge.daemon import run

    video = tmp / "door.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 240))
    for _ in range(3):
        w.write(np.zeros((240, 320, 3), np.uint8))
    w.release()
    state = tmp / "video_state"
    state.mkdir()
    write_demo_template(state / "template.json")
    cfg = tmp / "video.toml"
    cfg.write_text(f'state_dir = "{state}"\n[liveness]\nenabled = false\n[security]\nallow_insecure = true\n'
                   f'[camera]\nsource = "opencv"\ndevice = "{video}"\n')
    row("a video file camera that ends: exit status", str(run(str(cfg))))


def start_daemon(lab: Lab, name: str, mqtt_extra: str = ""):
    """A real `facelatch run` (images source, log actuator) under a notify socket."""
    from frames import frame, write_demo_template, write_sequence

    state = lab.tmp / f"{name}_state"
    state.mkdir()
    write_demo_template(state / "template.json")
    seq = write_sequence(lab.tmp / f"{name}_frames", [frame()] * 3)
    cfg = lab.tmp / f"{name}.toml"
    cfg.write_text(f'state_dir = "{state}"\n[liveness]\nenabled = false\n[security]\nallow_insecure = true\n'
                   f'[camera]\nsource = "images"\ndevice = "{seq}"\npace = true\nloop = true\nfps = 5.0\n'
                   f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {lab.broker.port}\nnode_id = "{NODE}"\n'
                   f'tls = true\nca_file = "{lab.broker.tls["ca"]}"\ncredentials_file = "{lab.creds}"\n{mqtt_extra}')
    sock = lab.tmp / f"{name}.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock))
    threading.Thread(target=lambda: [server.recv(4096) for _ in iter(int, 1)], daemon=True).start()
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(cfg)],
                            env={**os.environ, "NOTIFY_SOCKET": str(sock)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, state


def stop_daemon(proc) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def case_surrogate_daemon(lab: Lab) -> None:
    w = lab.owner()
    proc, _ = start_daemon(lab, "surrogate")
    w.wait_for(lambda t, p, r: t == f"{T}/status" and p == "online" and not r, timeout=60)
    w.publish(LOCK, '{"action":"\\ud800"}')
    time.sleep(3)
    alive = proc.poll() is None
    rc = stop_daemon(proc)
    w.close()
    row('`{"action":"\\ud800"}` on lock/set, daemon under systemd (NOTIFY_SOCKET)',
        "still running (clean exit on SIGTERM)" if alive else f"crashed (exit {rc})")


def case_flood_daemon(lab: Lab) -> None:
    """The door itself: 3,000 junk commands, then the owner's OPEN; does the door open?"""
    w = lab.owner()
    proc, state = start_daemon(lab, "flood", f'remote_unlock = true\nunlock_code_file = "{lab.code}"\n')
    w.wait_for(lambda t, p, r: t == f"{T}/status" and p == "online" and not r, timeout=60)
    owner = lab.owner_payload(w)
    junk = [b"OPEN", b'{"action":"OPEN","code":"000000"}', b"[" * 600,
            json.dumps({"action": "OPEN", "nonce": "00" * 16, "mac": "11" * 32}).encode()]
    unlocked = len([p for p in w.payloads(f"{T}/lock/state") if p == "UNLOCKED"])
    t0 = time.monotonic()
    for i in range(3000):
        w.c.publish(LOCK if i % 2 else PAUSE, junk[i % len(junk)], qos=0)
    w.publish(LOCK, owner)
    opened = None
    try:
        w.wait_for(lambda t, p, r: t == f"{T}/lock/state" and p == "UNLOCKED"
                   and len([q for q in w.payloads(t) if q == "UNLOCKED"]) > unlocked, timeout=60)
        opened = time.monotonic() - t0
    except AssertionError:
        pass
    time.sleep(1.0)
    rc = stop_daemon(proc)
    w.close()
    lines = (state / "audit.jsonl").read_text().splitlines() if (state / "audit.jsonl").exists() else []
    unlocks = sum('"decision":"unlock"' in line for line in lines)
    row("the door: 3,000 junk commands, then the owner's OPEN: door opened / after / audit lines / exit",
        f"{'yes' if opened else 'no'} / {f'{opened:.1f} s' if opened else '> 60 s'} / {len(lines)} "
        f"({unlocks} unlock) / {rc}")


def main():
    tmp = Path(sys.argv[1]) / f"redteam-{'new' if NEW else 'old'}"
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"red team against {Path(edge.__file__).parent} ({'after' if NEW else 'before'} issue 20)")
    print("| case | result |\n|---|---|")
    lab = Lab(tmp)
    try:
        for case in (case_retained_open, case_replay, case_retained_pause, case_deep_json, case_flood,
                     case_backoff_restart, case_audit_flood, case_leaks, case_surrogate_daemon, case_flood_daemon):
            if sys.argv[2:] and case.__name__ not in sys.argv[2:]:
                continue
            try:
                case(lab)
            except Exception as e:  # one broken case must not hide the others
                row(case.__name__, f"ERROR {e.__class__.__name__}: {str(e)[:120]}")
    finally:
        lab.broker.stop()
    if sys.argv[2:]:
        return
    case_creds_in_clear()
    case_clock_back()
    case_tiff(tmp)
    case_fifo(tmp)
    case_video_end(tmp)


if __name__ == "__main__":
    main()
