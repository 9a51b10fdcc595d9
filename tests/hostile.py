"""Hostile inputs and how to measure them (shared by tests and benchmarks/hardening.py)."""

import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PEAK_RSS = """
import atexit, os, sys
from edge.cli import main
def report():
    with open(os.environ["PEAK_RSS_FILE"], "w") as f:
        f.write(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
atexit.register(report)
sys.exit(main(sys.argv[1:]))
"""


def png_bomb(path: Path, w: int, h: int) -> Path:
    """A valid grey PNG of w x h black pixels: tiny on disk, w*h*3 bytes once decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, rows = zlib.compressobj(9), b"\0" * ((w + 1) * 100)
    idat = b"".join(z.compress(rows) for _ in range(h // 100)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def cli_peak_rss(tmp: Path, *args) -> tuple[int, str, float, float]:
    """Run the CLI: (exit status, stderr, its own peak RSS in MB, seconds).  The peak is
    VmHWM read by the process itself at exit: a forked child's ru_maxrss would also
    count the (possibly large) parent."""
    t0 = time.monotonic()
    out = Path(tmp) / "peak_rss"
    p = subprocess.run([sys.executable, "-c", _PEAK_RSS, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PEAK_RSS_FILE": str(out)})
    return p.returncode, p.stderr, int(out.read_text()) / 1024, time.monotonic() - t0
