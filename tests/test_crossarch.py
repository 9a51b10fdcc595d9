"""The cross-architecture check (ci/cross_arch.py): its margin rule on this machine's
demo, and that it fails on what it must catch."""

import importlib.util
import json

import pytest

from conftest import ROOT, run_cli

spec = importlib.util.spec_from_file_location("cross_arch", ROOT / "ci" / "cross_arch.py")
cross_arch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cross_arch)


@pytest.fixture(scope="module")
def demo():
    rc, out, err = run_cli("demo", "--json")
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_demo_json_has_every_probe_with_full_precision(demo):
    assert [d["probe"] for d in demo] == sorted(p.name for p in (ROOT / "edge/demo/probe").iterdir())
    by = {d["probe"]: d for d in demo}
    assert by["obama3.jpg"]["decision"] == "match" and by["biden.jpg"]["decision"] == "no match"
    assert by["group_photo.jpg"]["faces"] > 1
    assert all(isinstance(d["distance"], float) and "live_score" in d for d in demo)


def test_every_bundled_decision_is_further_from_its_threshold_than_the_tolerance(demo):
    # otherwise an int8 kernel difference between x86-64 and arm64 could flip it
    assert cross_arch.margin_problems(demo) == []
    margins = [abs(d[s] - d[t]) for d in demo for s, t in cross_arch.SCORES]
    assert min(margins) > cross_arch.TOLERANCE


def test_check_fails_on_a_flipped_decision_a_drift_or_a_thin_margin(demo):
    assert cross_arch.compare(demo, demo) == ([], 0.0)
    flipped = [dict(d) for d in demo]
    flipped[0]["decision"] = "match" if demo[0]["decision"] != "match" else "no match"
    assert any("decision" in p for p in cross_arch.compare(demo, flipped)[0])
    drifted = [dict(d) for d in demo]
    drifted[1]["distance"] += 2 * cross_arch.TOLERANCE
    problems, worst = cross_arch.compare(demo, drifted)
    assert any("distance differs" in p for p in problems) and worst == pytest.approx(2 * cross_arch.TOLERANCE)
    thin = [dict(d) for d in demo]
    thin[2]["distance"] = thin[2]["threshold"] + cross_arch.TOLERANCE / 2
    assert len(cross_arch.margin_problems(thin)) == 1


def test_check_command_exit_codes(demo, tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text("".join(json.dumps(d) + "\n" for d in demo))
    b = tmp_path / "b.jsonl"
    b.write_text("".join(json.dumps({**d, "distance": d["distance"] + 0.01}) + "\n" for d in demo))
    assert cross_arch.main([str(a), str(a)]) == 0
    assert cross_arch.main([str(a), str(b)]) == 1
    assert cross_arch.main([str(a), str(tmp_path / "missing.jsonl")]) == 2


def test_arm64_job_skips_cleanly_without_binfmt_misc(tmp_path):
    """Where binfmt_misc cannot be mounted (here: a folder that does not exist), the CI
    job prints a SKIP line and exits 0: a skip, not a failure."""
    import subprocess

    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "FACELATCH_CI_BINFMT": str(tmp_path / "no-binfmt"),
           "FACELATCH_CI_CACHE": str(tmp_path / "cache")}
    r = subprocess.run(["bash", str(ROOT / "ci" / "arm64.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "SKIP" in r.stdout and ("binfmt_misc" in r.stdout or "needs root" in r.stdout)
    assert not (tmp_path / "cache").exists()
