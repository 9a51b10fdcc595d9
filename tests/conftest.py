import os
import sys
from pathlib import Path

import pytest

from edge.nativethreads import limit_native_threads

limit_native_threads()  # as in the device process (edge/cli.py), before the tests import numpy

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "edge" / "demo"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(os.environ.get("FACELATCH_SHARED", ROOT.parent / "shared"))
# Under emulation (ci/arm64.sh runs the suite through qemu-user) everything is 10-50x
# slower: waits and time bounds in the tests are multiplied by this factor.
TIME_SCALE = float(os.environ.get("FACELATCH_TEST_TIME_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE


# Tests of command-line logic over real faces whose answer does not depend on the
# machine (the same embeddings decide the same way): run on the host only, so that the
# emulated arm64 job (ci/arm64.sh, ~100x slower per frame) keeps to its time budget.
host_only = pytest.mark.skipif(TIME_SCALE != 1, reason="machine-independent CLI logic over real faces; host only "
                                                        "(the emulated job's time budget)")

# Files the tests write by hand must not come out group-writable (facelatch refuses such
# templates) just because the machine's umask is 002.
os.umask(0o022)


@pytest.fixture(scope="session")
def pipeline():
    from edge.pipeline import FacePipeline

    return FacePipeline()


def job_output(variable: str, *args) -> str:
    """The stdout of ``facelatch ARGS``.  ci/arm64.sh runs the installed command itself
    (the README's demo, the demo --json of the cross-architecture check) and names its
    output in ``variable``: that output is read rather than a second run of it."""
    if os.environ.get(variable):
        return Path(os.environ[variable]).read_text()
    rc, out, err = run_cli(*args)
    assert rc == 0, err
    return out


class CliHung(BaseException):
    """A CLI call in run_cli that ran over its time."""


def run_cli(*args):
    """The facelatch CLI's ``main`` run in this process, seen as a subprocess would
    see it: (returncode, stdout, stderr), with what native code (the interpreters,
    OpenCV) writes to file descriptors 1 and 2 included.  Starting a Python per call
    would add ~1.5 s of imports each under emulation (ci/arm64.sh).  Tests of the
    process itself (exit on a signal, file modes, the unit's memory rules, the thread
    variables set before numpy loads) start a real one with subprocess."""
    import contextlib
    import io
    import logging
    import signal
    import tempfile
    import traceback
    import warnings

    from edge.cli import main

    out, err = io.StringIO(), io.StringIO()
    # a fresh process has no log handlers: warnings reach stderr through logging.lastResort
    root, last_resort = logging.getLogger(), logging.StreamHandler(err)
    last_resort.setLevel(logging.WARNING)
    handlers, root.handlers = root.handlers, [last_resort]

    def hung(signum, frame):  # what subprocess.run(timeout=...) did; no `except Exception` in the CLI stops it
        raise CliHung(f"facelatch {' '.join(map(str, args))} ran over {scaled(120):g} s")

    with tempfile.TemporaryFile() as fd1, tempfile.TemporaryFile() as fd2, contextlib.chdir(ROOT):
        sys.stdout.flush(), sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(fd1.fileno(), 1), os.dup2(fd2.fileno(), 2)
        alarm = signal.signal(signal.SIGALRM, hung)
        signal.alarm(int(scaled(120)))
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
                # a fresh process's warning filters (pytest's would record warnings instead of printing them)
                warnings.resetwarnings()
                for action, category in (("ignore", DeprecationWarning), ("ignore", PendingDeprecationWarning),
                                         ("ignore", ImportWarning), ("ignore", ResourceWarning)):
                    warnings.simplefilter(action, category, append=True)
                warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: err.write(
                    warnings.formatwarning(message, category, filename, lineno, line))
                try:
                    rc = main([str(a) for a in args])
                except SystemExit as e:  # argparse: usage errors and --help
                    rc = e.code if isinstance(e.code, int) else 0 if e.code is None else (print(e.code, file=sys.stderr), 1)[1]
                except Exception:  # what an uncaught exception does to a Python process
                    traceback.print_exc()
                    rc = 1
        finally:
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
            root.handlers = handlers
            signal.alarm(0)
            signal.signal(signal.SIGALRM, alarm)
        native = [(f.seek(0), f.read().decode(errors="replace"))[1] for f in (fd1, fd2)]
    return rc, out.getvalue() + native[0], err.getvalue() + native[1]
