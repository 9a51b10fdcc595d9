"""facelatch replay: the real door on a recording, driving nothing, explaining every refusal."""

import json
import subprocess
import sys

import cv2
import pytest

from conftest import ROOT, host_only, run_cli, scaled
from frames import crops, frame, write_demo_template, write_sequence

from edge import config as config_mod

# The door's judging of frames (edge.daemon.Door.judge, the policy) runs under emulation
# in test_daemon; replaying it is machine-independent installer logic: host only.
pytestmark = host_only


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    """A door config: household enrolled from the demo photos, liveness off (these are
    photographs: see test_daemon), a command actuator that would leave a marker file,
    MQTT on towards a port where nothing listens."""
    root = tmp_path_factory.mktemp("replaydoor")
    state = root / "state"
    state.mkdir()
    write_demo_template(state / "template.json")
    (state / "lockout.json").write_text('{"failed_attempts": 4, "lockouts": 0, "backoff_until": 0}')
    faces = crops()
    seq = write_sequence(root / "frames", [frame()] * 2 + [frame(faces["biden"])] * 5 + [frame()] * 10
                         + [frame(faces["obama"], faces["hanks"])] * 2 + [frame()] * 10 + [frame(faces["obama"])] * 6)
    cfg = root / "door.toml"
    cfg.write_text(f'state_dir = "{state}"\n[liveness]\nenabled = false\n[security]\nallow_insecure = true\n'
                   f'[actuator]\nkind = "command"\ncommand = ["touch", "{root / "OPENED"}"]\n'
                   f'[mqtt]\nenabled = true\nport = 1\n[policy]\nlost_after_s = 0.5\n')
    return root, cfg, seq, state


@pytest.fixture(scope="module")
def no_liveness_pipeline():
    from edge.pipeline import FacePipeline

    return FacePipeline(liveness=None, full_range_fallback=False)  # as the door builds it with liveness off


def _files(state):
    return {p.name: p.read_bytes() for p in state.iterdir()}


def test_replay_prints_a_timeline_and_a_summary_and_changes_nothing(door, tmp_path):
    root, cfg, seq, state = door
    before = _files(state)
    rc, out, err = run_cli("replay", seq, "--config", cfg, "--snapshots", tmp_path / "snaps", "--max-snapshots", "1")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"replaying {seq} at 15 frames/s: 1 person, threshold 0.5")
    judged = [l for l in lines if " px " in l]
    assert len(judged) == 5 + 2 + 6  # biden; the crowd; obama until the unlock, then in the cooldown
    assert all(" > 0.53 (user)" in l for l in judged[:5]), judged
    assert "-> DENY: face left before acceptance: best distance 0.8" in out
    assert judged[5].endswith("crowd of 2 faces") and "-> DENY: crowd of 2 faces" in out
    assert "-> UNLOCK user: 5 of the last 5 frames matched" in out
    assert judged[-1].endswith("cooldown after an unlock (4.9 s left)")
    summary = lines[lines.index(next(l for l in lines if l.startswith("summary:"))):]
    assert summary[0] == "summary: 35 frames (2.3 s), 13 with faces; 2 attempt(s), 1 unlock(s), 2 deny(ies)"
    assert summary[1] in ("  denies by reason: not recognised x1, crowd x1", "  denies by reason: crowd x1, not recognised x1")
    assert summary[2] == "  first unlock at 2.27 s (user), 2.07 s after the first face"
    assert _files(state) == before  # no audit line, no lockout change (4 failures stay 4), no migration
    assert not (root / "OPENED").exists()  # the command actuator never ran
    snaps = list((tmp_path / "snaps").iterdir())  # one of the two refused attempts: --max-snapshots 1
    assert [p.name for p in snaps] == ["001-0001.00s-no_match.jpg"] and snaps[0].stat().st_mode & 0o777 == 0o600
    assert cv2.imread(str(snaps[0])).shape[0] > 100  # the face, with a margin


def test_replay_json_of_a_video_file_at_its_own_frame_rate(door, tmp_path, no_liveness_pipeline):
    from edge.replay import replay

    root, cfg, seq, state = door
    video = tmp_path / "walk-up.avi"
    files = sorted(seq.iterdir())
    first = cv2.imread(str(files[0]))
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (first.shape[1], first.shape[0]))
    for f in files[29:34]:  # five frames of the enrolled face
        w.write(cv2.imread(str(f)))
    w.release()
    out = []
    s = replay(config_mod.load(cfg), video, state / "template.json", out=out.append, as_json=True,
               pipeline=no_liveness_pipeline)
    recs = [json.loads(l) for l in out]
    assert recs[-1]["summary"] == s and s["unlocks"] == 1 and s["attempts"] == 1 and s["frames"] == 5
    assert s["time_to_unlock_s"] == pytest.approx(0.4)  # 10 frames/s: the video's own rate
    unlock = [r for r in recs[:-1] if r.get("decisions")]
    assert unlock[0]["frame"] == 5 and unlock[0]["decisions"][0]["decision"] == "unlock"
    assert all(r["person"] == "user" and r["face_px"] > 80 for r in recs[:5])


def test_replay_of_one_person_enrolled_twice_says_ambiguous(door, tmp_path, no_liveness_pipeline):
    """The same face under two names: the door refuses it and says why, naming both."""
    from edge.gallery import Gallery, load_gallery
    from edge.replay import replay

    root, cfg, seq, state = door
    one = load_gallery(state / "template.json", migrate=False).people["user"].template
    twice = Gallery(one.model_sha256, one.metric)
    twice.add("barack", one.embeddings, one.sources)
    twice.add("obama", one.embeddings, one.sources)
    twice.save(tmp_path / "twice.json")
    recording = tmp_path / "rec"
    recording.mkdir()
    for f in sorted(seq.iterdir())[29:34]:  # 5 frames: enough for a k = 5 unlock, were ambiguity not refused
        (recording / f.name).symlink_to(f)
    out = []
    s = replay(config_mod.load(cfg), recording, tmp_path / "twice.json", out=out.append,
               pipeline=no_liveness_pipeline)
    assert s["unlocks"] == 0 and s["denies"] == {"ambiguous (close to two people)": 1}, out
    deny = [l for l in out if "-> DENY" in l][0]
    assert all(n in deny for n in ("ambiguous: ", "barack 0.", "obama 0.", "(recording ended before a decision)")), deny


def test_replay_of_nothing_is_a_one_line_error(door, tmp_path):
    _, cfg, _, _ = door
    rc, out, err = run_cli("replay", tmp_path / "nothing.mp4", "--config", cfg)
    assert rc == 2 and err.strip() == f"facelatch: error: replay: {tmp_path / 'nothing.mp4'} not found (give a video file or a folder of images)"
    (tmp_path / "bad.mp4").write_bytes(b"not a video")  # a fresh process: FFmpeg's own log is silenced at first use
    r = subprocess.run([sys.executable, "-m", "edge.cli", "replay", str(tmp_path / "bad.mp4"), "--config", str(cfg)],
                       cwd=ROOT, capture_output=True, text=True, timeout=scaled(60))
    assert r.returncode == 2 and r.stderr == f"facelatch: error: replay: cannot open camera '{tmp_path / 'bad.mp4'}'\n"


def test_replay_uses_the_installations_calibrated_liveness_threshold(door, tmp_path):
    """The replay judges liveness as this door does: with the threshold calibrated on its
    camera (read from the real state directory, which stays untouched)."""
    import numpy as np

    from edge import calibration
    from edge.modelcard import load_card, models_dir
    from edge.replay import replay

    root, cfg, seq, state = door
    live_cfg = tmp_path / "live.toml"
    live_cfg.write_text(f'state_dir = "{state}"\n')
    from edge.liveness import Liveness

    cal = calibration.load(tmp_path, Liveness(load_card(models_dir() / "facelatch_liveness.json")).scores_id)
    cal.record(np.linspace(0.6, 1.0, calibration.MIN_FRAMES), "test")
    cal.save(state, 0.13)
    try:
        before = _files(state)
        recording = tmp_path / "one"
        recording.mkdir()
        (recording / "00000.jpg").symlink_to(sorted(seq.iterdir())[29])
        out = []
        replay(config_mod.load(live_cfg), recording, state / "template.json", out=out.append)
        assert "calibrated on this camera (100 live frames" in out[0], out[0]
        assert _files(state) == before
    finally:
        (state / calibration.FILE).unlink()
