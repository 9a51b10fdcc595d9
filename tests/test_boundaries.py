"""The device package never needs TensorFlow or the workstation package."""

import subprocess
import sys

from conftest import ROOT


def test_edge_imports_without_tensorflow_or_convert():
    code = ("import sys, edge.cli, edge.daemon, edge.pipeline, edge.bench; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'convert', 'torch')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_interpreter_is_chosen_in_one_place():
    hits = [p for p in (ROOT / "edge").rglob("*.py")
            if "ai_edge_litert" in p.read_text() and p.name != "runtime.py"]
    assert hits == []
