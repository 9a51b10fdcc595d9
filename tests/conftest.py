import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "edge" / "demo"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(os.environ.get("FACELATCH_SHARED", ROOT.parent / "shared"))
# Under emulation (ci/arm64.sh runs the suite through qemu-user) everything is 10-50x
# slower: waits and time bounds in the tests are multiplied by this factor.
TIME_SCALE = float(os.environ.get("FACELATCH_TEST_TIME_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE

# Files the tests write by hand must not come out group-writable (facelatch refuses such
# templates) just because the machine's umask is 002.
os.umask(0o022)


@pytest.fixture(scope="session")
def pipeline():
    from edge.pipeline import FacePipeline

    return FacePipeline()


def run_cli(*args):
    """Run the facelatch CLI in a subprocess: (returncode, stdout, stderr)."""
    import subprocess

    p = subprocess.run([sys.executable, "-m", "edge.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=ROOT, timeout=scaled(120))
    return p.returncode, p.stdout, p.stderr
