"""The door as an attacker, a careless installer and a flaky device would try it:
lockout dodges, full / read-only / size-limited state directories, a tampered
lockout file, unsafe template and key files, decompression bombs, bad configs,
slow actuators, and the unit's exposure."""

import ctypes
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DEMO, ROOT, TIME_SCALE, run_cli, scaled
from frames import frame
from hostile import cli_peak_rss, png_bomb
from test_cli import ENROLL, assert_one_line_error, template  # noqa: F401  (fixture)
from test_daemon import _start_daemon, audit, decisions, enrolled, faces, setup_door  # noqa: F401  (fixtures)

from edge import config as config_mod
from edge.daemon import Door, run
from edge.errors import FacelatchError
from edge.images import image_size, read_image
from edge.policy import LockoutState
from edge.state import StateStore

IS_ROOT = os.geteuid() == 0


# -- the lockout cannot be dodged (real faces through the real door loop) -------------

def _at(crop, x0):
    """A 640x480 frame with ``crop`` at column ``x0`` (a different place = a new track)."""
    f = frame()
    f[120:120 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    return f


def test_stranger_shifting_position_is_counted_and_locked_out(tmp_path, enrolled, faces):
    frames = [_at(faces["biden"], 0 if (i // 2) % 2 else 400) for i in range(14)]  # a new track every 2 frames:
    cfg, state = setup_door(tmp_path, enrolled, frames, attempt_timeout_s=0.3, max_failed_attempts=2)  # 3 an attempt (6 frames)
    run(str(cfg))
    assert [a["decision"] for a in audit(state)] == ["deny", "deny", "locked_out"]
    assert json.loads((state / "lockout.json").read_text())["lockouts"] == 1


def test_stranger_stepping_out_is_counted_and_locked_out(tmp_path, enrolled, faces):
    cycle = [frame(faces["biden"])] * 4 + [frame()] * 8  # 4 frames in view, 0.53 s out of view
    # k = 3 (not the default 5): the test is about counting, not the window; with k = 5 its
    # 4-frame attempts could never unlock, so a stranger taken for the user would go unnoticed
    cfg, state = setup_door(tmp_path, enrolled, cycle * 2 + cycle[:1], k=3, max_failed_attempts=2, lost_after_s=0.4)
    run(str(cfg))
    kinds = [(a["decision"], a["reason"]) for a in audit(state)]
    assert [(k, r.split(":")[0]) for k, r in kinds[:2]] == [("deny", "face left before acceptance")] * 2
    assert all(" > 0.53 (user)" in r for _, r in kinds[:2]) and kinds[2][0] == "locked_out"
    assert all(a["frames"] == 4 for a in decisions(state, "deny"))


# -- lockout.json is not trusted -------------------------------------------------------

@pytest.mark.parametrize("content", [
    '{"failed_attempts": 0, "lockouts": 0, "backoff_until": NaN}',
    '{"failed_attempts": 0, "lockouts": 0, "backoff_until": Infinity}',
    '{"failed_attempts": -3, "lockouts": 0, "backoff_until": 0}',
    '{"failed_attempts": 0, "lockouts": 0, "backoff_until": -1e9}',
    '{"failed_attempts": 1.5, "lockouts": 0, "backoff_until": 0}',
    '{"failed_attempts": true, "lockouts": 0, "backoff_until": 0}',
    '{"failed_attempts": 0, "lockouts": 0}',
    '{"failed_attempts": 0, "lockouts": 0, "backoff_until": 0, "extra": 1}',
    '{"failed_attempts": 0, "lockouts": 0, "backoff_until": 1%s}' % ("0" * 400),
    '{"failed_attempts": 10%s, "lockouts": 0, "backoff_until": 0}' % ("0" * 400),
    '[0, 0, 0]', '', '\xff\xfe', '{"failed_attempts": 0, "lockouts": 0, "backoff_until": "later"}',
    '{"failed_attempts": 0, "lockouts": 0, "backoff_until": 0, "relocked": 1}',
    '{"failed_attempts": 0, "lockouts": 0, "backoff_until": 0, "wary_until": -5}',
    '{"failed_attempts": 0, "lockouts": 0, "backoff_until": 0, "wary_until": 1%s}' % ("0" * 400),
])
def test_corrupt_lockout_state_is_kept_aside_and_fails_closed(tmp_path, content):
    path = tmp_path / "lockout.json"
    path.write_bytes(content.encode("latin-1"))
    s = StateStore(path, corrupt_backoff_s=30, backoff_max_s=600).load()
    assert s.lockouts == 1 and 25 < s.backoff_until - time.time() <= 30
    assert (tmp_path / "lockout.corrupt").read_bytes() == content.encode("latin-1")
    assert json.loads(path.read_text())["backoff_until"] == s.backoff_until  # the fresh backoff is saved


def test_far_future_deadline_is_clamped_and_huge_counts_do_not_crash(tmp_path, caplog):
    path = tmp_path / "lockout.json"
    path.write_text(json.dumps({"failed_attempts": 0, "lockouts": 1024, "backoff_until": 4102444800.0}))  # 2100
    with caplog.at_level(logging.WARNING, logger="facelatch"):
        s = StateStore(path, backoff_max_s=600).load()
    assert s.lockouts == 1024 and s.backoff_until <= time.time() + 600 and "clamped" in caplog.text
    from edge.policy import DoorPolicy, FrameResult, PolicyConfig

    p = DoorPolicy(PolicyConfig(attempt_timeout_s=0.5, max_failed_attempts=1), LockoutState(0, 1024, 0.0))
    out = [d for i in range(20) for d in p.observe(FrameResult(i / 15, [(0, 0, 120, 120)]), 1000 + i / 15)]
    assert out[0].kind == "deny" and p.state.lockouts == 1025 and math.isfinite(p.state.backoff_until)


# -- faults on the state directory -----------------------------------------------------

@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (root only; skipped where mount is not permitted)."""
    d = tmp_path / "tiny"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(d)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def _journal(caplog, kind):
    return [json.loads(r.getMessage()[6:]) for r in caplog.records
            if r.getMessage().startswith("audit {") and json.loads(r.getMessage()[6:])["decision"] == kind]


def _stranger_on(tmp_path, enrolled, faces, state_dir):
    cfg, state = setup_door(tmp_path, enrolled, [frame(faces["biden"])] * 12, attempt_timeout_s=0.2,
                            max_failed_attempts=2)
    shutil.copy(state / "template.json", state_dir / "template.json")
    cfg.write_text(cfg.read_text().replace(f'state_dir = "{state}"', f'state_dir = "{state_dir}"'))
    return cfg


def test_full_disk_keeps_the_door_judging_and_the_counter_in_memory(tmp_path, enrolled, faces, tiny_tmpfs, caplog):
    cfg = _stranger_on(tmp_path, enrolled, faces, tiny_tmpfs)
    filler = _fill(tiny_tmpfs)
    with caplog.at_level(logging.INFO, logger="facelatch"):
        assert run(str(cfg)) == 0  # no traceback, no exit
    assert len(_journal(caplog, "deny")) == 2 and len(_journal(caplog, "locked_out")) == 1  # the journal has all
    assert "cannot save the lockout state" in caplog.text and "not writable" in caplog.text
    for line in (tiny_tmpfs / "audit.jsonl").read_text().splitlines() if (tiny_tmpfs / "audit.jsonl").exists() else []:
        json.loads(line)  # whatever made it to disk is whole lines
    # once space is back, the pending counter is written by the retry
    store = StateStore(tiny_tmpfs / "lockout.json")
    store.save(LockoutState(1, 2, time.time() + 60))
    assert store.pending is not None and not (tiny_tmpfs / "lockout.json").exists()
    filler.unlink()
    store._next_try = 0.0  # (the daemon retries once a second)
    assert store.flush() and json.loads((tiny_tmpfs / "lockout.json").read_text())["lockouts"] == 2


@pytest.fixture
def readonly_dir(tmp_path):
    """A read-only directory: a read-only tmpfs as root (root ignores mode bits), mode 0500 otherwise."""
    d = tmp_path / "ro"
    d.mkdir()
    if not IS_ROOT:
        yield d, lambda: d.chmod(0o500)
        d.chmod(0o700)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield d, lambda: subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_read_only_state_dir_keeps_the_door_judging(tmp_path, enrolled, faces, readonly_dir, caplog):
    d, make_readonly = readonly_dir
    cfg = _stranger_on(tmp_path, enrolled, faces, d)
    (d / "lockout.json").write_text("not json")  # corrupt AND cannot be moved aside
    make_readonly()
    with caplog.at_level(logging.INFO, logger="facelatch"):
        assert run(str(cfg)) == 0
    assert "could not be moved aside" in caplog.text
    # fail closed: the corrupt counter gave a fresh backoff, held in memory
    # (under emulation the run outlasts the backoff, so the lockout can be reported again)
    assert len(_journal(caplog, "locked_out")) >= 1 and not _journal(caplog, "unlock")
    assert not (d / "audit.jsonl").exists()


def test_file_size_limit_never_tears_an_audit_line(tmp_path):
    script = (f"import resource, sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "from edge.audit import AuditLog\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (3000, resource.RLIM_INFINITY))\n"
              f"log = AuditLog({str(tmp_path)!r}, max_bytes=10**6)\n"
              "for i in range(40):\n"
              "    log.write({'decision': 'deny', 'i': i, 'pad': 'x' * (i * 7 % 50)})\n"
              "print('done')\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr
    raw = (tmp_path / "audit.jsonl").read_bytes()
    assert 0 < len(raw) <= 3000 and raw.endswith(b"\n")
    lines = [json.loads(l) for l in raw.decode().splitlines()]  # every line whole
    assert [l["i"] for l in lines] == sorted({l["i"] for l in lines}) and 10 < len(lines) < 40
    assert "not writable" in r.stderr and "Traceback" not in r.stderr


# -- template and key files ------------------------------------------------------------

def test_plaintext_template_is_refused_when_a_key_is_configured(template, tmp_path):  # noqa: F811
    key = tmp_path / "k"
    run_cli("keygen", key)
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", template, "--key-file", key)
    assert_one_line_error(rc, out, err, "not encrypted", "re-enroll with the key")


def test_writable_or_foreign_template_and_key_are_refused(template, tmp_path):  # noqa: F811
    t = tmp_path / "t.json"
    shutil.copy(template, t)
    t.chmod(0o666)
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", t)
    assert_one_line_error(rc, out, err, "writable by group or others", f"chmod go-w {t}")
    t.chmod(0o600)
    if not IS_ROOT:
        pytest.skip("chown to another user needs root")
    os.chown(t, 12345, 12345)
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", t)
    assert_one_line_error(rc, out, err, "owned by uid 12345", "chown")
    key = tmp_path / "k"
    run_cli("keygen", key)
    os.chown(key, 12345, 12345)
    rc, out, err = run_cli("enroll", *ENROLL, "--template", tmp_path / "new.json", "--key-file", key)
    assert_one_line_error(rc, out, err, "key file", "owned by uid 12345")
    assert not (tmp_path / "new.json").exists()


def _cut_to_64(d):
    for p in d["people"]:
        p["embeddings"] = [e[:64] for e in p["embeddings"]]


@pytest.mark.parametrize("change, words", [(_cut_to_64, "64-D"), (lambda d: d.update(metric="euclidean"), "euclidean")])
def test_template_schema_must_match_the_encoder_card(template, tmp_path, change, words):  # noqa: F811
    d = json.loads(template.read_text())
    change(d)
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps(d))
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", bad)
    assert_one_line_error(rc, out, err, words, "128-D cosine", "re-enroll")


# -- images ----------------------------------------------------------------------------

def test_decompression_bomb_is_refused_before_decoding(template, tmp_path):  # noqa: F811
    bomb = png_bomb(tmp_path / "bomb.png", 10000, 10000)  # 100 MP, ~100 KB on disk, 300 MB decoded
    assert bomb.stat().st_size < 200_000
    rc, err, rss, _ = cli_peak_rss(tmp_path, "verify", DEMO / "probe/obama3.jpg", bomb, bomb, bomb, "--template", template)
    assert rc == 2 and "10000x10000" in err and "40 MP limit" in err and len(err.strip().splitlines()) == 1
    assert rss < 300, rss
    with pytest.raises(FacelatchError, match="over the 50 MP limit"):
        read_image(bomb, max_mp=50)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tiff"])
def test_image_size_is_read_from_every_header(tmp_path, ext):
    img = np.zeros((37, 91, 3), np.uint8)
    ok, data = cv2.imencode(ext, img)
    assert ok and image_size(data.tobytes()) == (91, 37)


def test_daemon_image_source_refuses_a_bomb_and_goes_on(tmp_path, enrolled, faces, caplog):
    cfg, state = setup_door(tmp_path, enrolled, [frame(faces["obama"])] * 6)
    png_bomb(tmp_path / "frames" / "00002.png", 10000, 10000)
    with caplog.at_level(logging.INFO, logger="facelatch"):
        run(str(cfg))
    assert "over the 40 MP limit" in caplog.text and len(decisions(state, "unlock")) == 1


# -- one-line errors -------------------------------------------------------------------

def _without_dac_override():
    """Mode 000 stops no one who has CAP_DAC_OVERRIDE (root): drop it from the
    bounding set, so the exec'd child obeys file modes like any user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (fails harmlessly without privileges)


def test_unreadable_image_is_a_one_line_error_in_every_command(template, tmp_path):  # noqa: F811
    t = tmp_path / "t.json"
    shutil.copy(template, t)
    t.chmod(0o644)
    bad = tmp_path / "locked.jpg"
    shutil.copy(DEMO / "probe/obama3.jpg", bad)
    bad.chmod(0)
    good = DEMO / "probe/biden.jpg"

    def cli(*args):
        p = subprocess.run([sys.executable, "-m", "edge.cli", *map(str, args)], capture_output=True, text=True,
                           cwd=ROOT, timeout=120, preexec_fn=_without_dac_override,
                           env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        return p.returncode, p.stdout, p.stderr

    for args in (("verify", bad, "--template", t), ("compare", bad, good)):
        rc, out, err = cli(*args)
        assert_one_line_error(rc, out, err, "cannot read image", "Permission denied")
    for cmd in ("embed", "liveness"):  # these go on past the bad file
        rc, out, err = cli(cmd, bad, good, "--json")
        recs = [json.loads(l) for l in out.splitlines()]
        assert rc == 1 and "Traceback" not in err and "error" in recs[0] and recs[1]["faces"] == 1


@pytest.mark.parametrize("kind", ["directory", "not utf-8", "unreadable"])
def test_bad_config_files_are_one_line_errors(tmp_path, kind):
    path = tmp_path / "c.toml"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b'state_dir = "\xff\xfe"\n')
    if kind == "unreadable":
        path.write_text('state_dir = "/tmp"\n')
        path.chmod(0)
    p = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=60, preexec_fn=_without_dac_override)
    words = {"directory": "is a directory", "not utf-8": "not UTF-8", "unreadable": "Permission denied"}[kind]
    assert_one_line_error(p.returncode, p.stdout, p.stderr, words)
    assert p.returncode == 2


def test_threads_are_bounded_like_the_config():
    rc, out, err = run_cli("--threads", "100000", "demo")
    assert_one_line_error(rc, out, err, "--threads", "between 1 and 64")


def test_sighup_with_a_broken_config_keeps_the_running_one(tmp_path, enrolled, faces):
    cfg, state = setup_door(tmp_path, enrolled, [frame()])
    cfg.write_text(cfg.read_text().replace("pace = false", "pace = true\nloop = true"))
    proc, server = _start_daemon(tmp_path, cfg)
    try:
        cfg.write_bytes(b"state_dir = \"\xff\"\n")
        proc.send_signal(signal.SIGHUP)
        got = ""
        while "READY=1" not in got:
            got = server.recv(4096).decode()
        time.sleep(0.3)
        assert proc.poll() is None  # still running
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
    err = proc.stderr.read()
    assert rc == 0 and "reload failed, keeping the running configuration" in err and "not UTF-8" in err
    assert "Traceback" not in err


# -- the [security] floor --------------------------------------------------------------

@pytest.mark.parametrize("toml, words", [
    ("[policy]\nk = 1\nn = 1\n", "policy.k = 1"),
    ("[model]\nfmr = 0.5\n", "model.fmr = 0.5"),
    ("[policy]\nmin_face_px = 0.0\n", "policy.min_face_px = 0"),
    ("[liveness]\nenabled = false\n", "liveness.enabled = false"),
    ("[liveness]\nthreshold = 0.0\n", "liveness.threshold = 0"),
])
def test_security_floor_refuses_dangerous_configs(toml, words):
    with pytest.raises(FacelatchError) as e:
        config_mod.parse(__import__("tomllib").loads(toml))
    assert words in str(e.value) and "allow_insecure" in str(e.value)
    cfg = config_mod.parse(__import__("tomllib").loads(toml + "[security]\nallow_insecure = true\n"))
    assert config_mod.insecure_settings(cfg)


def test_insecure_config_warns_and_marks_every_audit_line(tmp_path, enrolled, faces, caplog):
    # attempts of 0.3 s at 15 fps: the 5 frames a k = 5 unlock needs, then the stranger times out
    cfg, state = setup_door(tmp_path, enrolled, [frame(faces["obama"])] * 5 + [frame(faces["biden"])] * 6,
                            attempt_timeout_s=0.3, unlock_cooldown_s=0.0)
    with caplog.at_level(logging.WARNING, logger="facelatch"):
        run(str(cfg))
    assert "INSECURE" in caplog.text and "liveness.enabled = false" in caplog.text
    lines = audit(state)
    assert {a["decision"] for a in lines} >= {"unlock", "deny"} and all(a["insecure"] is True for a in lines)


def test_fmr_without_a_card_row_is_an_error(tmp_path, enrolled):
    cfg, state = setup_door(tmp_path, enrolled, [frame()])
    cfg.write_text(cfg.read_text() + "[model]\nfmr = 0.0005\n")
    with pytest.raises(FacelatchError, match="not a row"):
        Door(config_mod.load(cfg))
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", state / "template.json",
                           "--fmr", "0.5")
    assert_one_line_error(rc, out, err, "FMR 0.5 is not a row")


# -- actuators never starve the watchdog; SIGTERM ends them ------------------------------

def test_slow_unlock_command_does_not_starve_the_watchdog(tmp_path, enrolled, faces, monkeypatch):
    # 4 s of paced frames at 15 fps; under emulation a frame takes over a second to judge,
    # so 12 frames already outlast the 3 s command by far
    cfg, state = setup_door(tmp_path, enrolled, [frame(faces["obama"])] * (60 if TIME_SCALE == 1 else 12))
    cfg.write_text(cfg.read_text().replace("pace = false", "pace = true")
                   + '[actuator]\nkind = "command"\ncommand = ["sleep", "3"]\n')
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # ping at least every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    sock_path = str(tmp_path / "n.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(sock_path)
    server.settimeout(0.2)
    pings, done = [], threading.Event()

    def listen():
        while not done.is_set():
            try:
                if "WATCHDOG=1" in server.recv(4096).decode():
                    pings.append(time.monotonic())
            except socket.timeout:
                pass

    threading.Thread(target=listen, daemon=True).start()
    from edge.systemd import Notifier

    run(str(cfg), notifier=Notifier(sock_path))  # 4 s of frames; the unlock command takes 3 s of it
    done.set()
    gaps = np.diff(pings)
    assert len(pings) >= 6 and gaps.max() < scaled(1.0), gaps
    assert decisions(state, "actuator")[0]["exit_code"] == 0


def test_one_unlock_at_a_time_and_a_timed_out_command_loses_its_whole_group(tmp_path):
    from edge.actuators import Actuation, CommandActuator

    pidfile = tmp_path / "pid"
    act = Actuation(CommandActuator(["sh", "-c", f"echo $$ > {pidfile}; sleep 30 & wait"], timeout_s=0.5))
    t0 = time.monotonic()
    assert act.start() and not act.start()  # busy: the second is refused
    act.wait(5)
    took = time.monotonic() - t0
    [r] = act.results()
    assert r["error"] == "timeout" and r["exit_code"] is None and 0.5 <= took < 1.5
    assert _live_in_group(int(pidfile.read_text())) == []


def test_stop_during_a_long_relay_pulse_ends_it_low_at_once():
    gpiozero = pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockFactory

    from edge.actuators import Actuation, GpioRelay

    gpiozero.Device.pin_factory = MockFactory()
    relay = GpioRelay(17, pulse_s=30.0)
    act = Actuation(relay)
    act.start()
    time.sleep(0.2)
    pin = gpiozero.Device.pin_factory.pin(17)
    assert pin.state is True
    t0 = time.monotonic()
    act.stop()
    relay.close()
    assert time.monotonic() - t0 < 0.5 and pin.state is False and not act.busy


def _live_in_group(pgid: int) -> list[int]:
    """Processes (not zombies) in process group ``pgid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def test_sigterm_during_an_unlock_command_ends_it_and_its_group_within_two_seconds(tmp_path, enrolled, faces):
    pidfile = tmp_path / "cmd.pid"
    # four noisy (fresh) frames of the enrolled face, then an empty one, looped
    cfg, state = setup_door(tmp_path, enrolled, [frame(faces["obama"])] * 4 + [frame()])
    cfg.write_text(cfg.read_text().replace("pace = false", "pace = true\nloop = true")
                   + f'[actuator]\nkind = "command"\ncommand_timeout_s = 60.0\n'
                   f'command = ["sh", "-c", "echo $$ > {pidfile}; sleep 20 & wait"]\n')
    proc, server = _start_daemon(tmp_path, cfg)
    deadline = time.monotonic() + 30
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    pgid = int(pidfile.read_text())
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=10)
    took = time.monotonic() - t0
    assert rc == 0 and took < scaled(2.0), took
    assert _live_in_group(pgid) == []  # the command and its child are gone
    assert "Traceback" not in proc.stderr.read()
    assert decisions(state, "actuator")[0]["error"] == "stopped"


# -- the unit ---------------------------------------------------------------------------

def test_unit_exposure_is_ok_offline():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    r = subprocess.run([analyze, "security", "--offline=yes", "--threshold=30",
                        str(ROOT / "systemd" / "facelatch.service")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    level = float(r.stdout.split("Overall exposure level for facelatch.service:")[1].split()[0])
    assert level <= 1.5  # issue 20: stays at or below 1.5 (1.2 measured, systemd 252)
    unit = (ROOT / "systemd" / "facelatch.service").read_text()
    for device in ("char-video4linux", "char-media", "/dev/vchiq", "/dev/dma_heap", "/dev/gpiomem", "char-gpiochip"):
        assert f"DeviceAllow={device} rw" in unit
    assert "SupplementaryGroups=video gpio" in unit


def test_demo_runs_with_memory_deny_write_execute():
    """The unit sets MemoryDenyWriteExecute=yes: the interpreters must not need W+X
    memory.  prctl(PR_SET_MDWE) (Linux >= 6.3) applies the same rule to one process."""
    libc = ctypes.CDLL(None, use_errno=True)

    def mdwe():
        if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
            os._exit(77)

    p = subprocess.run([sys.executable, "-m", "edge.cli", "demo"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, preexec_fn=mdwe)
    if p.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE")
    assert p.returncode == 0 and "MATCH" in p.stdout, p.stderr[-2000:]
