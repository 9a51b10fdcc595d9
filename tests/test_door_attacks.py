"""The door's own side of issue 20: backoffs and a clock stepped back, the images source
(non-UTF-8 names, FIFOs, TIFF headers that disagree), a video file that ends, and a
reload that fails half-way."""

import json
import os
import signal
import socket
import struct
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import host_only, scaled
from frames import frame, write_sequence
from test_daemon import _start_daemon, audit, decisions, enrolled, faces, setup_door  # noqa: F401  (fixtures)

from edge.camera import ImageFolder
from edge.config import PolicyConfig
from edge.daemon import run
from edge.errors import FacelatchError
from edge.images import check_image, image_size, read_image
from edge.policy import DoorPolicy, LockoutState
from edge.state import StateStore
from edge.systemd import Notifier

FACE = (100.0, 100.0, 120.0, 120.0)


# -- backoffs and the clock ----------------------------------------------------------------

def test_a_clock_stepped_during_a_backoff_neither_stretches_nor_ends_it_and_the_file_follows():
    saved = []
    cfg = PolicyConfig(backoff_s=30, backoff_max_s=600)
    p = DoorPolicy(cfg, LockoutState(0, 3, 1000.0 + 600), save=lambda s: saved.append(s.backoff_until))
    stepped = 1000.0 - 86400  # a restart finds the clock a day back
    assert p.judged(0.0, stepped, [FACE]) is None  # still in the backoff ...
    assert p.state.backoff_until == stepped + 600 and saved == [stepped + 600]  # ... bounded and written back
    assert p.judged(601.0, stepped + 601, [FACE]) == 0  # over after backoff_max_s, not after a day
    q = DoorPolicy(cfg, LockoutState(0, 3, 1000.0 + 600), save=lambda s: saved.append(s.backoff_until))
    assert q.judged(0.0, 1000.0, [FACE]) is None
    assert q.judged(1.0, 1001.0 + 86400, [FACE]) is None  # stepped forward a day (NTP at boot): not over ...
    assert q.state.backoff_until == 1001.0 + 86400 + 599 == saved[-1]  # ... and what a restart reads says so
    wall = 1000.0 - 3600  # stepped back an hour within the run: no longer than before
    assert q.judged(599.0, wall, [FACE]) is None and q.judged(600.0, wall + 1, [FACE]) == 0


def test_a_clamped_deadline_is_written_back_at_load(tmp_path):
    path = tmp_path / "lockout.json"
    path.write_text(json.dumps({"failed_attempts": 0, "lockouts": 2, "backoff_until": time.time() + 86400}))
    state = StateStore(path, backoff_max_s=600).load()
    on_disk = json.loads(path.read_text())["backoff_until"]
    assert on_disk == state.backoff_until and on_disk <= time.time() + 600


# -- the images source --------------------------------------------------------------------

def _tiff(sizes: list[tuple[int, int]]) -> bytes:
    """A little-endian TIFF whose IFD holds the (tag, value) pairs ``sizes`` as given."""
    entries = b"".join(struct.pack("<HHII", tag, 4, 1, value) for tag, value in sizes)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(sizes)) + entries + b"\0\0\0\0"


def test_a_tiff_whose_size_tags_disagree_is_refused_from_the_header(tmp_path):
    assert image_size(_tiff([(256, 100), (257, 100)])) == (100, 100)
    dup = tmp_path / "dup.tif"  # the decoder reads 12000x12000 (144 MP); a last-wins reader saw 100x100
    dup.write_bytes(_tiff([(256, 12000), (256, 100), (257, 12000), (257, 100)]))
    with pytest.raises(FacelatchError, match="not a JPEG, PNG, BMP, WebP or TIFF image, or corrupt"):
        check_image(dup)
    assert image_size(_tiff([(257, 100), (256, 100)])) is None  # tags out of order: not a TIFF we trust


def test_images_source_skips_fifos_and_survives_non_utf8_names(tmp_path):
    folder = write_sequence(tmp_path / "frames", [frame()] * 2)
    os.mkfifo(folder / "00001_fifo.jpg")
    fd = os.open(os.fsencode(folder) + b"/00000_\xff\xfe.jpg", os.O_WRONLY | os.O_CREAT, 0o644)  # not UTF-8
    os.write(fd, (folder / "00000.jpg").read_bytes())
    os.close(fd)
    src = ImageFolder(str(folder))
    src.open()
    assert len(src.files) == 3 and not any(p.name.endswith("fifo.jpg") for p in src.files)
    assert [src.read() is not None for _ in range(3)] == [True] * 3
    result = []
    reader = threading.Thread(target=lambda: result.append(pytest.raises(FacelatchError, read_image,
                                                                         folder / "00001_fifo.jpg")), daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock it before failing
        os.close(os.open(folder / "00001_fifo.jpg", os.O_WRONLY | os.O_NONBLOCK))
    assert result and "not a regular file" in str(result[0].value)


@host_only  # machine-independent daemon logic; each loads the models (the emulated job's budget)
def test_a_corrupt_image_with_a_non_utf8_name_under_systemd_does_not_crash_the_daemon(tmp_path, enrolled):
    """The camera error names the file; the status sent to systemd must still encode."""
    cfg, state = setup_door(tmp_path, enrolled, [frame()] * 2)
    cfg.write_text(cfg.read_text().replace("[camera]\n", "[camera]\nreopen_backoff_s = 0.05\n"))
    bad = os.fsencode(tmp_path / "frames") + b"/00000_\xff.jpg"
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8 corrupt")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "n.sock"))
    assert run(str(cfg), notifier=Notifier(str(tmp_path / "n.sock"))) == 0
    server.close()


@host_only  # machine-independent daemon logic; each loads the models (the emulated job's budget)
def test_a_video_file_that_ends_exits_non_zero(tmp_path, enrolled):
    video = tmp_path / "door.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 240))
    for _ in range(3):
        w.write(np.zeros((240, 320, 3), np.uint8))
    w.release()
    cfg, state = setup_door(tmp_path, enrolled, [frame()])
    cfg.write_text(cfg.read_text().replace('source = "images"', 'source = "opencv"')
                   .replace(f'device = "{tmp_path / "frames"}"', f'device = "{video}"'))
    assert run(str(cfg)) == 1  # systemd's Restart=on-failure sees it; a folder of images still ends with 0


# -- reload --------------------------------------------------------------------------------

@host_only  # machine-independent daemon logic; each loads the models (the emulated job's budget)
def test_a_reload_that_changes_the_actuator_and_fails_in_mqtt_keeps_the_door_driving(tmp_path, enrolled, faces):
    out = tmp_path / "opened"
    cfg, state = setup_door(tmp_path, enrolled, [frame()] * 10 + [frame(faces["obama"])] * 6,  # 1 s before the face
                            unlock_cooldown_s=0.5, lost_after_s=0.1)
    actuator = f'[actuator]\nkind = "command"\ncommand = ["sh", "-c", "sleep 0.3; echo x >> {out}"]\n'
    cfg.write_text(cfg.read_text().replace("pace = false", "pace = true\nloop = true\nfps = 10.0") + actuator)
    proc, server = _start_daemon(tmp_path, cfg)
    lines, readies = [], []  # both drained as it runs: a full pipe or notify socket would stall the daemon

    def notes():
        try:
            while True:
                readies.append("READY=1" in server.recv(4096).decode())
        except OSError:
            pass

    drain = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    drain.start()
    threading.Thread(target=notes, daemon=True).start()
    try:
        deadline = time.monotonic() + scaled(60)
        # a new actuator AND an MQTT section that cannot be built (its credentials file is missing)
        cfg.write_text(cfg.read_text() + "command_timeout_s = 9.0\n[mqtt]\nenabled = true\ntls = true\n"
                       f'credentials_file = "{tmp_path / "missing.cred"}"\n')
        proc.send_signal(signal.SIGHUP)
        while not any(readies) and time.monotonic() < deadline:
            time.sleep(0.05)
        while not decisions(state, "actuator") and time.monotonic() < deadline:  # the next unlock
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=scaled(10))
        drain.join(scaled(10))
    err = "".join(lines)
    assert "reload failed, keeping the running configuration" in err  # [mqtt] cannot be built: its credentials
    assert "missing.cred" in err or "needs paho-mqtt" in err  # file is missing (or, on the Pi image, paho)
    after = decisions(state, "actuator")
    assert after and all(a["reason"] == "unlock done" and a["exit_code"] == 0 for a in after), after
    assert len(out.read_text().split()) >= 1  # the old actuator really drove the door (a closed one: "stopped")


def test_an_image_that_decodes_to_another_size_than_its_header_is_refused(tmp_path, monkeypatch):
    import edge.images as images

    path = write_sequence(tmp_path / "f", [frame()]) / "00000.jpg"
    assert read_image(path).shape == (480, 640, 3)
    monkeypatch.setattr(images, "image_size", lambda b: (64, 48))  # a header parser the decoder disagrees with
    with pytest.raises(FacelatchError, match="decodes to 640x480, not the 64x48 of its header"):
        read_image(path)
