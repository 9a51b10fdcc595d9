"""Figures behind the hardening (issue #10): decompression-bomb memory, SIGTERM during
an unlock command, watchdog gaps during a slow command, and the unit's exposure; and
the red-team cases of issue 20 (MQTT and the door under attack), one row each.

    python benchmarks/hardening.py [--repeat 5]
    python benchmarks/hardening.py --redteam-only [--tree PATH]   # issue 20's rows only

``--tree`` runs the red-team rows against another checkout's ``edge`` (e.g. a
``git worktree`` of the commit before issue 20) for the "before" column.  They need
mosquitto (and mosquitto_passwd) on PATH.  Nothing is downloaded; the bomb is made here
(a valid 30000x30000 grey PNG, ~0.9 MB)."""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def door(tmp: Path, frames, command: list[str], extra: str = "") -> Path:
    import numpy as np

    from frames import write_sequence
    from edge.images import read_image
    from edge.pipeline import FacePipeline
    from edge.template import Template

    state = tmp / "state"
    state.mkdir(exist_ok=True)
    pipe = FacePipeline(liveness=None)
    emb = [pipe.analyze(read_image(ROOT / "edge/demo/enroll" / n))[0].embedding for n in ("obama.jpg", "obama2.jpg")]
    Template(pipe.model_sha256, np.stack(emb), "cosine").save(state / "template.json")
    seq = write_sequence(tmp / "frames", frames)
    cfg = tmp / "config.toml"
    cfg.write_text(f'state_dir = "{state}"\n[liveness]\nenabled = false\n[security]\nallow_insecure = true\n'
                   f'[camera]\nsource = "images"\ndevice = "{seq}"\npace = true\nloop = true\n{extra}'
                   f'[actuator]\nkind = "command"\ncommand_timeout_s = 60.0\ncommand = {command!r}\n'.replace("'", '"'))
    return cfg


def start(cfg: Path, env: dict) -> tuple[subprocess.Popen, socket.socket]:
    sock = str(cfg.parent / f"n{time.monotonic_ns()}.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(sock)
    server.settimeout(60)
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(cfg)], cwd=ROOT,
                            env={**os.environ, **env, "NOTIFY_SOCKET": sock}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while "READY=1" not in server.recv(4096).decode():
        pass
    return proc, server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--redteam-only", action="store_true", help="only issue 20's red-team rows")
    ap.add_argument("--tree", default=str(ROOT), help="the checkout whose edge the red-team rows attack")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    if args.redteam_only:
        return redteam(Path(args.tree), tmp)
    from frames import crops, frame
    from hostile import cli_peak_rss, png_bomb

    # 1. the bomb
    bomb = png_bomb(tmp / "bomb.png", 30000, 30000)
    rc, _, _, _ = cli_peak_rss(tmp, "enroll", ROOT / "edge/demo/enroll/obama.jpg", "--template", tmp / "t.json")
    probe = ROOT / "edge/demo/probe/obama3.jpg"
    print(f"bomb: {bomb.stat().st_size / 1e3:.0f} KB file, 30000x30000")
    for label, files in (("verify, one normal image", [probe]), ("verify, normal image + 3 bombs", [probe] + [bomb] * 3)):
        rc, _, rss, sec = cli_peak_rss(tmp, "verify", *files, "--template", tmp / "t.json")
        print(f"  {label:<32} exit {rc}  peak RSS {rss:.0f} MB  {sec:.2f} s")

    # 2. SIGTERM during a 20 s unlock command; 3. watchdog during a 10 s one
    c = crops()
    pidfile = tmp / "cmd.pid"
    cfg = door(tmp, [frame(c["obama"])] * 4 + [frame()], ["sh", "-c", f"echo $$ > {pidfile}; sleep 20 & wait"])
    stops = []
    for _ in range(args.repeat):
        pidfile.unlink(missing_ok=True)
        proc, server = start(cfg, {})
        while not pidfile.exists() or not pidfile.read_text().strip():
            time.sleep(0.02)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stops.append(time.monotonic() - t0)
        server.close()
        for f in (tmp / "state").glob("lockout.json"):
            f.unlink()
    print(f"SIGTERM during a 20 s unlock command, {args.repeat} runs: median {statistics.median(stops):.2f} s, "
          f"max {max(stops):.2f} s")

    cfg = door(tmp, [frame(c["obama"])] * 4 + [frame()], ["sleep", "10"], extra="")
    proc, server = start(cfg, {"WATCHDOG_USEC": "2000000"})
    server.settimeout(1.0)
    pings, t_end = [], time.monotonic() + 12
    while time.monotonic() < t_end:
        try:
            if "WATCHDOG=1" in server.recv(4096).decode():
                pings.append(time.monotonic())
        except socket.timeout:
            pass
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    print(f"watchdog during a 10 s unlock command (WatchdogSec=2): {len(pings)} pings in 12 s, "
          f"largest gap {max(gaps):.2f} s")

    # 4. the unit's exposure, before (the last commit before issue #10) and now
    for label, rev in (("before", "1d32b6e"), ("now", None)):
        unit = ROOT / "systemd/facelatch.service"
        if rev:
            unit = tmp / "facelatch.service"
            unit.write_bytes(subprocess.run(["git", "show", f"{rev}:systemd/facelatch.service"], cwd=ROOT,
                                            capture_output=True, check=True).stdout)
        out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True,
                             text=True).stdout
        print(f"systemd-analyze security --offline=yes, {label}: {re.search(r'exposure level.*: (.*)', out)[1]}")
    redteam(Path(args.tree), tmp)


def redteam(tree: Path, tmp: Path) -> None:
    """Issue 20's red-team cases against the ``edge`` of ``tree``, in a child process
    (so that the tree's modules, not this checkout's, are the ones attacked)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT / "tests")])}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "redteam.py"), str(tmp)], cwd=tree, env=env, check=True)


if __name__ == "__main__":
    main()
