"""Smaller daemon parts: frozen camera, audit rotation and snapshots, GPIO relay,
enrolment from the camera."""

import json
import logging
import os
import stat
import threading

import numpy as np
import pytest

from conftest import run_cli
from frames import crops, frame, write_sequence

from edge.audit import AuditLog
from edge.camera import ImageFolder, ResilientCamera


def test_frozen_camera_is_reported_and_recovers(tmp_path, caplog):
    seq = write_sequence(tmp_path / "f", [frame()] * 20 + [frame(np.full((240, 240, 3), 30, np.uint8))] * 2, noise=0)
    cam = ResilientCamera(ImageFolder(str(seq), fps=10), frozen_after_s=1.0, stop=threading.Event())
    with caplog.at_level(logging.WARNING, logger="facelatch"):
        states = []
        while cam.read() is not None:
            states.append(cam.frozen)
    assert states[5] is False and states[15] is True and states[-1] is False
    assert any("camera frozen" in r.message for r in caplog.records)
    assert any("new frames again" in r.message for r in caplog.records)


def test_audit_rotates_by_size_and_keeps_mode_0600(tmp_path):
    log = AuditLog(tmp_path, max_bytes=2000, backups=2)
    for i in range(100):
        log.write({"decision": "deny", "i": i})
    files = sorted(p.name for p in tmp_path.glob("audit.jsonl*"))
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(os.path.getsize(tmp_path / f) <= 2000 for f in files)
    last = [json.loads(l) for l in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert last[-1]["i"] == 99 and "time" in last[-1]
    assert stat.S_IMODE(os.stat(tmp_path / "audit.jsonl").st_mode) == 0o600


def test_snapshots_only_when_enabled_and_bounded(tmp_path):
    rgb = np.zeros((48, 64, 3), np.uint8)
    AuditLog(tmp_path / "off").write({"decision": "deny"}, rgb)
    assert not (tmp_path / "off" / "snapshots").exists()
    log = AuditLog(tmp_path / "on", save_snapshots=True, snapshot_max_count=3)
    for _ in range(6):
        log.write({"decision": "deny"}, rgb)
    assert len(list((tmp_path / "on" / "snapshots").glob("*.jpg"))) == 3


def test_gpio_relay_pulses_the_pin(monkeypatch):
    gpiozero = pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockFactory

    from edge.actuators import GpioRelay

    gpiozero.Device.pin_factory = MockFactory()
    relay = GpioRelay(17, active_high=True, pulse_s=0.05)
    pin = gpiozero.Device.pin_factory.pin(17)
    assert pin.state is False
    record = relay.unlock()
    history = [state for _, state in pin.states]
    assert record == {"actuator": "gpio", "pin": 17, "pulse_s": 0.05}
    assert True in history and pin.state is False  # went high, ended low
    relay.close()


def test_enroll_from_the_camera(tmp_path):
    c = crops()
    seq = write_sequence(tmp_path / "cam", [frame()] * 2 + [frame(c["obama"])] * 4)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'state_dir = "{tmp_path}"\n[camera]\nsource = "images"\ndevice = "{seq}"\npace = false\n')
    rc, out, err = run_cli("enroll", "--camera", "--name", "barack", "--frames", "3", "--config", cfg)
    assert rc == 0, err
    assert "captured 3/3" in err and (tmp_path / "template.json").exists()
    people = json.loads((tmp_path / "template.json").read_text())["people"]
    assert [(p["name"], len(p["embeddings"])) for p in people] == [("barack", 3)]
    # not enough good frames: nothing written
    rc, out, err = run_cli("enroll", "--camera", "--frames", "9", "--config", cfg, "--template", tmp_path / "t2.json")
    assert rc == 2 and "captured only 4 of 9" in err and not (tmp_path / "t2.json").exists()


def test_missing_camera_keeps_the_watchdog_fed_and_stops_promptly(tmp_path):
    """A camera that is not there is retried with backoff; meanwhile the heartbeat
    (systemd watchdog) keeps coming, and a stop request ends the wait at once."""
    import time

    beats = []
    stop = threading.Event()
    cam = ResilientCamera(ImageFolder(str(tmp_path / "no-such-camera")), backoff_s=0.2, backoff_max_s=5.0,
                          stop=stop, heartbeat=beats.append)
    threading.Timer(2.5, stop.set).start()
    t0 = time.monotonic()
    assert cam.read() is None
    assert time.monotonic() - t0 < 3.5
    assert len(beats) >= 3 and "camera unavailable" in beats[-1]


def test_picamera2_source_drives_the_picamera2_api(monkeypatch):
    """No Pi here: a stand-in module records the calls our source makes, and the
    frame comes back as RGB (picamera2's "RGB888" is BGR in memory)."""
    import sys
    import types

    calls = []

    class FakePicamera2:
        def create_video_configuration(self, main, controls):
            calls.append(("config", main["size"], main["format"], controls["FrameRate"]))
            return "cfg"

        def configure(self, cfg):
            calls.append(("configure", cfg))

        def start(self):
            calls.append(("start",))

        def capture_array(self, stream):
            bgr = np.zeros((480, 640, 3), np.uint8)
            bgr[..., 0] = 255  # blue in BGR order
            return bgr

        def stop(self):
            calls.append(("stop",))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    from edge.camera import Picamera2Camera

    cam = Picamera2Camera(640, 480, 15.0)
    cam.open()
    f = cam.read()
    cam.close()
    assert calls[0] == ("config", (640, 480), "RGB888", 15.0) and ("start",) in calls and calls[-1] == ("close",)
    assert f.rgb.shape == (480, 640, 3) and f.rgb[0, 0].tolist() == [0, 0, 255]  # blue, now in RGB order


def test_picamera2_missing_is_a_clear_error(monkeypatch):
    import sys

    from edge.camera import Picamera2Camera
    from edge.errors import FacelatchError

    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    with pytest.raises(FacelatchError, match="python3-picamera2"):
        Picamera2Camera().open()
