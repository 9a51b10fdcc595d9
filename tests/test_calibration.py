"""Per-installation liveness calibration: the rule, the file, the CLI that records it and
the door that reads it."""

import json
import os

import numpy as np
import pytest

from conftest import DEMO, host_only, run_cli
from frames import write_demo_template, write_sequence

from edge.images import read_image

from edge import calibration
from edge import config as config_mod
from edge.errors import FacelatchError


def test_the_threshold_rejects_at_most_two_percent_and_never_drops_below_the_card():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.2, 1.0, 1000)
    thr = calibration.calibrated_threshold(scores, shipped=0.1)
    assert np.mean(scores < thr) <= 0.02
    assert np.mean(scores < np.nextafter(thr, 2)) > 0.02  # the highest such threshold
    assert calibration.calibrated_threshold(scores, shipped=0.5) == 0.5  # only ever stricter than the card
    assert calibration.calibrated_threshold(np.full(200, 0.05), shipped=0.13) == 0.13


def test_the_file_is_private_names_its_model_and_a_damaged_one_is_an_error(tmp_path):
    cal = calibration.load(tmp_path, "a" * 64)
    assert cal.threshold(0.13) is None
    cal.record(np.linspace(0.5, 1.0, calibration.MIN_FRAMES), "test")
    path = cal.save(tmp_path, 0.13)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert calibration.installation_threshold(tmp_path, "a" * 64, 0.13)[0] == pytest.approx(0.51, abs=0.01)
    thr, origin = calibration.installation_threshold(tmp_path, "b" * 64, 0.13)  # another model: not used
    assert thr == 0.13 and "default" in origin
    path.write_text('{"scores": [2.0], "model_sha256": "' + "a" * 64 + '"}')
    with pytest.raises(FacelatchError, match="outside 0..1"):
        calibration.load(tmp_path, "a" * 64)
    path.write_text('{"scores": [1' + "0" * 400 + '], "model_sha256": "' + "a" * 64 + '"}')  # beyond any float
    with pytest.raises(FacelatchError, match="unreadable"):  # was OverflowError: a traceback, the daemon down at start
        calibration.load(tmp_path, "a" * 64)
    path.write_text("{")
    with pytest.raises(FacelatchError, match="unreadable") as e:
        calibration.installation_threshold(tmp_path, "a" * 64, 0.13)
    assert "\n" not in str(e.value)


@pytest.fixture()
def installation(tmp_path, monkeypatch):
    """A state dir with the demo household and an images 'camera' showing the enrolled
    person's face: a whole digital photo (no print, no screen) that the model scores as live."""
    monkeypatch.setattr(calibration, "MIN_FRAMES", 6)  # the rule is tested above; keep the frames few
    state = tmp_path / "state"
    state.mkdir()
    write_demo_template(state / "template.json")
    seq = write_sequence(tmp_path / "frames", [read_image(DEMO / "probe" / "biden.jpg")[..., ::-1]] * 8)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'state_dir = "{state}"\n[camera]\nsource = "images"\ndevice = "{seq}"\npace = false\n')
    return cfg, state


@host_only  # CLI and file wiring; the rule and the file are tested above on every machine
def test_calibrating_at_the_camera_writes_the_threshold_the_door_then_uses(installation):
    cfg, state = installation
    from edge.daemon import Door

    door = Door(config_mod.load(cfg))
    card_default = door.pipeline.liveness.default_threshold
    assert door.pipeline.liveness.threshold == card_default and "not calibrated" in door.liveness_origin
    door.close()
    rc, out, err = run_cli("liveness", "--camera", "--calibrate", "--config", str(cfg), "--json", "--seconds", "60")
    assert rc == 0, err
    summary = json.loads(out.splitlines()[-1])
    stored = json.loads((state / calibration.FILE).read_text())
    assert stored["frames"] == summary["face_frames"] == 8
    thr = summary["calibrated_threshold"]
    assert thr == stored["threshold"] and thr > card_default  # this camera's live faces score high
    assert np.mean(np.array(stored["scores"]) < thr) <= 0.02
    audit = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    assert [a["decision"] for a in audit] == ["liveness_calibration"] and audit[0]["threshold"] == thr
    door = Door(config_mod.load(cfg))  # what the daemon builds at start and on every reload
    assert door.pipeline.liveness.threshold == pytest.approx(thr) and "calibrated" in door.liveness_origin
    door.close()


@host_only
def test_a_threshold_in_the_config_wins_and_calibration_says_so(installation):
    cfg, state = installation
    cfg.write_text(cfg.read_text() + "[liveness]\nthreshold = 0.2\n")
    rc, out, err = run_cli("liveness", "--camera", "--calibrate", "--config", str(cfg), "--seconds", "60")
    assert rc == 2 and "overrides any calibration" in err and len(err.strip().splitlines()) == 1
    assert not (state / calibration.FILE).exists()
    rc, out, err = run_cli("liveness", "--calibrate", "--config", str(cfg))
    assert rc == 2 and "--calibrate needs --camera" in err


@host_only
def test_enrolling_at_the_camera_records_its_live_frames(installation):
    cfg, state = installation
    (state / "template.json").unlink()
    rc, out, err = run_cli("enroll", "--camera", "--name", "alice", "--config", str(cfg), "--frames", "3",
                           "--min-sharpness", "0")
    assert rc == 0, err
    stored = json.loads((state / calibration.FILE).read_text())
    assert stored["frames"] >= 3 and stored["sessions"][-1]["by"].startswith("facelatch enroll --camera")
    assert "liveness" in out and stored["threshold"] is None or stored["threshold"] >= stored["shipped_threshold"]


def test_a_calibration_for_another_model_says_so(tmp_path):
    """After a model update (the card's sha256 changes) the old calibration no longer
    counts: the door must say why, not 'not calibrated'."""
    cal = calibration.load(tmp_path, "a" * 64)
    cal.record(np.linspace(0.5, 1.0, calibration.MIN_FRAMES), "test")
    cal.save(tmp_path, 0.13)
    thr, origin = calibration.installation_threshold(tmp_path, "b" * 64, 0.13)
    assert thr == 0.13 and "another liveness model" in origin and "calibrate again" in origin


def test_a_damaged_file_error_gives_advice_that_works_and_is_one_line(tmp_path):
    path = tmp_path / calibration.FILE
    path.write_text("[" * 100000)  # nested too deep for json: RecursionError, not a one-line error
    with pytest.raises(FacelatchError, match="unreadable") as e:
        calibration.load(tmp_path, "a" * 64)
    # 'calibrate again' alone cannot work: calibrating loads the damaged file first
    assert "remove the file, then" in str(e.value) and "\n" not in str(e.value)


def test_a_non_finite_score_is_not_recorded(tmp_path):
    """A NaN P(live) written into the file would stop the door at its next start ('outside 0..1')."""
    cal = calibration.load(tmp_path, "a" * 64)
    cal.record(list(np.linspace(0.5, 1.0, calibration.MIN_FRAMES)) + [float("nan"), float("inf")], "test")
    cal.save(tmp_path, 0.13)
    assert len(calibration.load(tmp_path, "a" * 64).scores) == calibration.MIN_FRAMES


def test_a_config_threshold_below_the_card_is_said_aloud(tmp_path, caplog):
    """A threshold kept from an earlier model (the V2 card's 0.1316) overrides the new card's
    default and any calibration: allowed, but never silently."""
    class FakeLiveness:
        default_threshold, threshold, model_sha256 = 0.4967, 0.4967, "a" * 64

    cfg = config_mod.parse({"state_dir": str(tmp_path), "liveness": {"threshold": 0.1316}})
    live = FakeLiveness()
    with caplog.at_level("WARNING", logger="facelatch"):
        origin = calibration.apply(live, cfg)
    assert live.threshold == 0.1316 and "BELOW the model card's default" in origin
    assert any("below this model's default" in r.message for r in caplog.records)
    cfg = config_mod.parse({"state_dir": str(tmp_path), "liveness": {"threshold": 0.6}})
    assert calibration.apply(FakeLiveness(), cfg) == "liveness.threshold in the config"


def test_a_new_head_on_the_same_network_does_not_reuse_the_old_scores(tmp_path, caplog):
    """The head changes P(live) while the .tflite (and its sha256) stays: scores recorded
    under the old head must not set the new head's threshold."""
    from edge.liveness import Liveness
    from edge.modelcard import load_card, models_dir

    card = load_card(models_dir() / "facelatch_liveness.json", kind="liveness")
    shipped = Liveness(card)
    card.data = dict(card.data, head=dict(card.data["head"], b=card.data["head"]["b"] + 1.0))
    moved = Liveness(card)
    assert moved.model_sha256 == shipped.model_sha256 and moved.scores_id != shipped.scores_id
    card.data = dict(card.data, sha256="0" * 64)  # the same head over another network (e.g. a re-conversion)
    assert Liveness(card).scores_id not in (moved.scores_id, shipped.scores_id)
    cal = calibration.load(tmp_path, shipped.scores_id)
    cal.record(np.full(calibration.MIN_FRAMES, 0.99), "test")
    cal.save(tmp_path, shipped.default_threshold)
    assert calibration.installation_threshold(tmp_path, shipped.scores_id, 0.4)[0] == pytest.approx(0.99)
    thr, origin = calibration.installation_threshold(tmp_path, moved.scores_id, 0.4)
    assert thr == 0.4 and "another liveness model or head" in origin
    # the daemon's wiring: a file keyed by the network alone (how it was written before the
    # head was part of the key) is not this head's calibration
    from edge.config import Config

    cfg = Config()
    cfg.state_dir = tmp_path
    old = calibration.load(tmp_path, shipped.model_sha256)
    old.record(np.full(calibration.MIN_FRAMES, 0.99), "test")
    old.save(tmp_path, shipped.default_threshold)
    with caplog.at_level("WARNING", logger="facelatch"):
        origin = calibration.apply(shipped, cfg)
    assert shipped.threshold == shipped.default_threshold
    # the installer is told what happened in words that fit: this network, an earlier head (not "another
    # model" next to this very model's sha256), and loudly: their stricter door is back at the card's default
    assert "earlier liveness head over this network" in origin and "calibrate again" in origin
    assert any("ignored" in r.message and "--calibrate" in r.message for r in caplog.records)


@host_only
def test_recalibrating_after_a_new_head_says_the_old_recordings_were_dropped(installation):
    """The upgrade path: a file recorded under the previous head (keyed by the network's
    sha256 alone) at this installation; facelatch liveness --camera --calibrate starts afresh
    and says so."""
    cfg, state = installation
    from edge.modelcard import load_card, models_dir

    sha = load_card(models_dir() / "facelatch_liveness.json", kind="liveness").sha256
    old = calibration.load(state, sha)
    old.record([0.95] * 300, "under the previous head")
    old.save(state, 0.4967)
    rc, out, err = run_cli("liveness", "--camera", "--calibrate", "--config", str(cfg), "--json", "--seconds", "60")
    assert rc == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert "earlier liveness head" in summary["threshold_from"]
    assert "recordings were dropped" in summary["calibration"]
    stored = json.loads((state / calibration.FILE).read_text())
    assert stored["frames"] == 8 and [x["by"] for x in stored["sessions"]] == ["facelatch liveness --camera --calibrate"]
