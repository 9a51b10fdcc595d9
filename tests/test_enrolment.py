"""Safe enrolment and the CLI's edges: one face under one name, names checked, the
household found through --config, encrypt, --version, options after the command,
what identify says about the door, run and its config."""

import json
import shutil

import pytest

from conftest import DEMO, host_only, run_cli
from test_cli import ENROLL, assert_one_line_error

pytestmark = host_only  # command-line logic; the same embeddings decide the same on any machine

OBAMA3, BIDEN, GROUP = DEMO / "probe/obama3.jpg", DEMO / "probe/biden.jpg", DEMO / "probe/group_photo.jpg"


@pytest.fixture(scope="module")
def household(tmp_path_factory):
    g = tmp_path_factory.mktemp("h") / "household.json"
    assert run_cli("enroll", "--name", "barack", *ENROLL, "--template", g)[0] == 0
    assert run_cli("enroll", "--name", "joe", BIDEN, "--template", g)[0] == 0
    return g


def test_a_face_already_enrolled_under_another_name_is_refused_naming_them(household, tmp_path):
    g = tmp_path / "g.json"
    shutil.copy(household, g)
    before = g.read_bytes()
    rc, out, err = run_cli("enroll", "--name", "michelle", OBAMA3, "--template", g)
    assert_one_line_error(rc, out, err, "obama3.jpg: this face already matches barack", "--force", "nothing written")
    assert g.read_bytes() == before
    rc, out, err = run_cli("enroll", "--name", "michelle", OBAMA3, "--template", g, "--force")  # the installer insists
    assert rc == 0 and "3 people enrolled" in out, err
    rc, out, err = run_cli("identify", OBAMA3, "--template", g, "--json")
    rec = json.loads(out)
    assert rec["ambiguous"] and rec["door"].startswith("ambiguous: michelle 0.00 / barack 0.")  # what the door says
    rc, out, err = run_cli("enroll", "--name", "barack", OBAMA3, "--add", "--template", g)  # more of the same person
    assert rc != 0 and "already matches michelle" in err  # the clash is still there, now the other way round


def test_no_silent_default_name_for_a_second_person(household, tmp_path):
    g = tmp_path / "g.json"
    shutil.copy(household, g)
    rc, out, err = run_cli("enroll", DEMO / "probe/tom_hanks.png", "--template", g)
    assert_one_line_error(rc, out, err, "already holds barack, joe", "--name")
    for bad in ("ali\x1bce", "bob\n", "x" * 65, "", " lead"):
        rc, out, err = run_cli("enroll", "--name", bad, DEMO / "probe/tom_hanks.png", "--template", g)
        assert rc == 2 and "person name" in err and "\x1b" not in err.replace("\\x1b", ""), (bad, err)


def test_household_commands_use_the_configs_file_and_key(tmp_path):
    key = tmp_path / "door.key"
    assert run_cli("keygen", key)[0] == 0
    cfg = tmp_path / "door.toml"
    cfg.write_text(f'state_dir = "{tmp_path / "state"}"\n[template]\npath = "people.json"\nkey_file = "{key}"\n')
    rc, out, err = run_cli("enroll", "--name", "barack", *ENROLL, "--config", cfg)
    assert rc == 0 and "(encrypted)" in out and str(tmp_path / "state" / "people.json") in out, err
    rc, out, err = run_cli("people", "--config", cfg, "--json")
    assert rc == 0 and [json.loads(l)["name"] for l in out.splitlines()] == ["barack"], err
    rc, out, err = run_cli("identify", OBAMA3, "--config", cfg, "--json")
    assert rc == 0 and json.loads(out)["person"] == "barack"


def test_encrypt_converts_a_plaintext_household(household, tmp_path):
    g, key = tmp_path / "g.json", tmp_path / "k.key"
    shutil.copy(household, g)
    assert run_cli("keygen", key)[0] == 0
    rc, out, err = run_cli("encrypt", "--template", g)
    assert_one_line_error(rc, out, err, "--key-file")
    rc, out, err = run_cli("encrypt", "--template", g, "--key-file", key)
    assert rc == 0 and out.startswith(f"encrypted {g}") and b"barack" not in g.read_bytes(), err
    rc, out, err = run_cli("people", "--template", g)  # plaintext reading is refused now ...
    assert rc == 2
    rc, out, err = run_cli("people", "--template", g, "--key-file", key, "--json")  # ... the key opens it
    assert [json.loads(l)["name"] for l in out.splitlines()] == ["barack", "joe"]
    rc, out, err = run_cli("encrypt", "--template", g, "--key-file", key)
    assert rc == 0 and "already encrypted" in out
    other = tmp_path / "other.key"
    run_cli("keygen", other)
    rc, out, err = run_cli("encrypt", "--template", g, "--key-file", other)
    assert rc == 2 and "Traceback" not in err


def test_version_and_global_options_after_the_command(household):
    rc, out, err = run_cli("--version")
    assert rc == 0 and out.startswith("facelatch ") and len(out.split()) >= 2
    rc, out, err = run_cli("identify", OBAMA3, "--template", household, "--threads", "2", "--json")
    assert rc == 0 and json.loads(out)["person"] == "barack", err
    rc, out, err = run_cli("identify", OBAMA3, "--template", household, "--threads", "0")
    assert_one_line_error(rc, out, err, "--threads")  # the value after the command is the one used
    rc, out, err = run_cli("--threads", "0", "identify", OBAMA3, "--template", household)
    assert_one_line_error(rc, out, err, "--threads")


def test_identify_says_when_the_door_would_deny_a_crowd(household):
    rc, out, err = run_cli("identify", GROUP, "--template", household, "--json")
    rec = json.loads(out)
    assert rc == 0 and rec["faces"] > 1 and rec["door"] == f"crowd of {rec['faces']} faces", rec
    rc, out, err = run_cli("identify", GROUP, "--template", household)
    assert f"the door would deny: crowd of {rec['faces']} faces" in out


def test_run_without_a_config_says_so_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_cli("run")
    assert_one_line_error(rc, out, err, "--config", "nothing was created")
    assert list(tmp_path.iterdir()) == []


def test_config_problems_all_at_once_and_a_missing_video_in_one_line(tmp_path):
    cfg = tmp_path / "door.toml"
    cfg.write_text(f'state_dir = "{tmp_path}"\n[camera]\ndevice = "{tmp_path / "walk.mp4"}"\nfps = "fast"\n'
                   '[policy]\nk = 0\n[model]\nfmr = 2e-4\n[liveness]\nmodel = "no_such_model"\n')
    rc, out, err = run_cli("run", "--config", cfg)
    lines = err.strip().splitlines()
    assert rc == 2 and lines[0] == "facelatch: error: invalid configuration:", err
    assert [l.split(":")[0].strip() for l in lines[1:]] == ["camera.fps", "policy.k", "policy.k = 0",
                                                            "camera.device", "template.path", "model.fmr",
                                                            "liveness.model"], lines
    assert "use one of: " in lines[6]
    enrolled = tmp_path / "template.json"
    assert run_cli("enroll", *ENROLL, "--template", enrolled)[0] == 0
    cfg.write_text(f'state_dir = "{tmp_path}"\n[camera]\ndevice = "{tmp_path / "walk.mp4"}"\n')
    rc, out, err = run_cli("run", "--config", cfg)
    assert_one_line_error(rc, out, err, f"invalid configuration: camera.device: video file '{tmp_path / 'walk.mp4'}' "
                                        "not found")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["door.toml", "template.json"]  # nothing created
