"""The facelatch CLI end to end, including the bad inputs."""

import json
import os
import stat

import cv2
import numpy as np
import pytest

from conftest import DEMO, host_only, job_output, run_cli

ENROLL = [DEMO / "enroll/obama.jpg", DEMO / "enroll/obama2.jpg"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "template.json"
    rc, out, err = run_cli("enroll", *ENROLL, "--template", path)
    assert rc == 0, err
    return path


def assert_one_line_error(rc, out, err, *words):
    assert rc != 0
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]


def test_enroll_writes_a_0600_template(template):
    assert stat.S_IMODE(os.stat(template).st_mode) == 0o600
    d = json.loads(template.read_text())
    assert d["format"] == "facelatch-gallery" and len(d["model_sha256"]) == 64
    assert [(p["name"], len(p["embeddings"])) for p in d["people"]] == [("user", 2)]


def test_verify_decides_per_image(template):
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", DEMO / "probe/biden.jpg", "--template", template, "--json")
    assert rc == 0, err
    recs = [json.loads(l) for l in out.splitlines()]
    assert [r["decision"] for r in recs] == ["match", "no match"]
    assert recs[0]["distance"] <= recs[0]["threshold"] < recs[1]["distance"]
    assert recs[0]["fmr"] == 1e-4


def test_verify_text_output_and_fmr_option(template):
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", template, "--fmr", "1e-3")
    assert rc == 0 and out.startswith("match") and "FMR 0.001" in out


def test_verify_reports_no_face(template, tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 200, np.uint8))
    rc, out, err = run_cli("verify", blank, "--template", template, "--json")
    assert rc == 0 and json.loads(out)["decision"] == "no face"


def test_enroll_refuses_group_photo_and_writes_nothing(tmp_path):
    path = tmp_path / "t.json"
    rc, out, err = run_cli("enroll", ENROLL[0], DEMO / "probe/group_photo.jpg", "--template", path)
    assert_one_line_error(rc, out, err, "group_photo.jpg", "6 faces")
    assert not path.exists()


def test_enroll_refuses_image_without_face(tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 200, np.uint8))
    rc, out, err = run_cli("enroll", blank, "--template", tmp_path / "t.json")
    assert_one_line_error(rc, out, err, "wall.png", "no face")
    assert not (tmp_path / "t.json").exists()


def test_enroll_does_not_overwrite_without_force(template):
    before = template.read_bytes()
    rc, out, err = run_cli("enroll", ENROLL[0], "--template", template)
    assert_one_line_error(rc, out, err, "already enrolled", "--force")
    assert template.read_bytes() == before


def test_unreadable_image_is_a_one_line_error(template, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_text("this is not a jpeg")
    rc, out, err = run_cli("verify", bad, "--template", template)
    assert_one_line_error(rc, out, err, "photo.jpg", "cannot read image")
    rc, out, err = run_cli("verify", tmp_path / "missing.jpg", "--template", template)
    assert_one_line_error(rc, out, err, "missing.jpg", "not found")


def test_missing_corrupt_and_foreign_templates(template, tmp_path):
    probe = DEMO / "probe/obama3.jpg"
    rc, out, err = run_cli("verify", probe, "--template", tmp_path / "none.json")
    assert_one_line_error(rc, out, err, "enroll first")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_bytes(template.read_bytes()[:100])
    rc, out, err = run_cli("verify", probe, "--template", corrupt)
    assert_one_line_error(rc, out, err, "corrupt")
    foreign = tmp_path / "foreign.json"
    d = json.loads(template.read_text())
    d["model_sha256"] = "0" * 64
    foreign.write_text(json.dumps(d))
    rc, out, err = run_cli("verify", probe, "--template", foreign)
    assert_one_line_error(rc, out, err, "another model", "re-enroll")


def test_bad_option_values(template):
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", template, "--fmr", "2")
    assert_one_line_error(rc, out, err, "--fmr")
    rc, out, err = run_cli("--threads", "0", "demo")
    assert_one_line_error(rc, out, err, "--threads")
    rc, out, err = run_cli("--encoder", "no_such_model", "demo")
    assert_one_line_error(rc, out, err, "no_such_model")


def test_compare():
    rc, out, err = run_cli("compare", ENROLL[0], DEMO / "probe/obama3.jpg", "--json")
    assert rc == 0 and json.loads(out)["same_person"] is True
    rc, out, err = run_cli("compare", ENROLL[0], DEMO / "probe/biden.jpg")
    assert rc == 0 and out.startswith("different people")


def test_embed_recurses_directories(tmp_path):
    rc, out, err = run_cli("embed", DEMO / "probe", "--json")
    assert rc == 0, err
    recs = {os.path.basename(r["path"]): r for r in map(json.loads, out.splitlines())}
    assert set(recs) == {"astronaut.jpg", "biden.jpg", "group_photo.jpg", "obama3.jpg", "tom_hanks.png"}
    assert recs["group_photo.jpg"]["faces"] == 6
    r = recs["obama3.jpg"]
    assert r["faces"] == 1 and len(r["embedding"]) == 128 and len(r["box"]) == 4 and r["det_score"] > 0.5


@host_only  # CLI wiring; the first look itself is the pipeline's, tested in test_secondlook
def test_embed_first_look_is_the_chip_alone_and_says_so(pipeline):
    from edge.pipeline import read_image

    rc, out, err = run_cli("embed", "--look", "first", ENROLL[0])
    assert rc == 0, err
    [rec] = map(json.loads, out.splitlines())
    r = pipeline.analyze(read_image(ENROLL[0]), look="first")[0]
    first = np.array(rec["embedding"])
    assert rec["look"] == "first" and np.allclose(first, r.embedding, atol=2e-6)
    pipeline.complete(r)  # the full embedding (chip + mirror) is another vector
    assert not np.allclose(first, r.embedding, atol=1e-3)


def test_embed_keeps_going_past_a_bad_file(tmp_path):
    (tmp_path / "a_bad.jpg").write_text("nope")
    cv2.imwrite(str(tmp_path / "b_face.jpg"), cv2.imread(str(ENROLL[0])))
    rc, out, err = run_cli("embed", tmp_path, "--json")
    recs = [json.loads(l) for l in out.splitlines()]
    assert rc == 1 and "error" in recs[0] and recs[1]["faces"] == 1


def test_demo_matches_only_the_enrolled_person_and_flags_photos():
    out = job_output("FACELATCH_DEMO_TEXT", "demo")
    lines = {next(w for w in l.split() if w.endswith((".jpg", ".png"))): l for l in out.splitlines()
             if l.startswith(("  MATCH", "  no match"))}
    assert lines["obama3.jpg"].startswith("  MATCH")
    for other in ("biden.jpg", "tom_hanks.png", "astronaut.jpg", "group_photo.jpg"):
        assert lines[other].startswith("  no match")
    assert "6 faces in view" in lines["group_photo.jpg"]
    assert "P(live)" in lines["obama3.jpg"]


def test_household_commands(tmp_path):
    g = tmp_path / "household.json"
    assert run_cli("enroll", "--name", "barack", *ENROLL, "--template", g)[0] == 0
    rc, out, err = run_cli("enroll", "--name", "joe", DEMO / "probe/biden.jpg", "--template", g)
    assert rc == 0 and "2 people enrolled" in out, err
    rc, out, err = run_cli("people", "--template", g, "--json")
    rows = [json.loads(l) for l in out.splitlines()]
    assert [(r["name"], r["embeddings"], r["enabled"], r["schedule"]) for r in rows] == [
        ("barack", 2, True, "always"), ("joe", 1, True, "always")] and len(rows[0]["model_sha256"]) == 64
    rc, out, err = run_cli("identify", DEMO / "probe/obama3.jpg", DEMO / "probe/tom_hanks.png", "--template", g, "--json")
    a, b = (json.loads(l) for l in out.splitlines())
    assert rc == 0 and a["person"] == "barack" and a["distance"] <= a["threshold"] and a["door"] == "would open"
    assert a["comparison_fmr"] == pytest.approx(5e-5) and b["person"] is None and b["distance"] > b["threshold"]
    rc, out, err = run_cli("identify", DEMO / "probe/tom_hanks.png", "--template", g)
    assert out.startswith("unknown")
    assert run_cli("disable", "barack", "--template", g)[0] == 0
    rc, out, err = run_cli("identify", DEMO / "probe/obama3.jpg", "--template", g, "--json")
    assert json.loads(out)["door"] == "barack is disabled"
    rc, out, err = run_cli("schedule", "joe", "mon-fri 07:00-19:00", "--template", g)
    assert rc == 0 and "mon-fri 07:00-19:00" in out
    rc, out, err = run_cli("schedule", "joe", "weekdays", "--template", g)
    assert_one_line_error(rc, out, err, "schedule")
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", g)  # two people: which one?
    assert_one_line_error(rc, out, err, "--name")
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--name", "barack", "--template", g, "--json")
    assert json.loads(out)["decision"] == "match"
    assert run_cli("remove", "joe", "--template", g)[0] == 0
    rc, out, err = run_cli("remove", "joe", "--template", g)
    assert_one_line_error(rc, out, err, "no person named 'joe'")
    assert stat.S_IMODE(os.stat(g).st_mode) == 0o600
    assert [p["name"] for p in json.loads(g.read_text())["people"]] == ["barack"]


def test_old_single_person_template_is_migrated_by_the_cli(tmp_path):
    from edge.pipeline import FacePipeline, read_image
    from edge.template import Template

    pipe = FacePipeline()
    path = tmp_path / "template.json"
    Template(pipe.model_sha256, np.stack([pipe.analyze(read_image(p))[0].embedding for p in ENROLL]),
             "cosine").save(path)
    rc, out, err = run_cli("people", "--template", path)
    assert rc == 0 and "user" in out and "single-person template" in err and "'user'" in err
    assert json.loads(path.read_text())["format"] == "facelatch-gallery"
    rc, out, err = run_cli("verify", DEMO / "probe/obama3.jpg", "--template", path, "--json")
    assert rc == 0 and json.loads(out)["decision"] == "match" and "single-person" not in err


def test_bench_names_the_board_it_measured():
    rc, out, err = run_cli("bench", "--seconds", "0.2", "--json")
    assert rc == 0, err
    board = json.loads(out)["board"]
    assert board["cores"] >= 1 and board["cpu"] and board["machine"]
    assert board["interpreter"].split()[0] in ("ai_edge_litert", "tflite_runtime", "tensorflow.lite")
    assert board["xnnpack"] in (True, False, None)
    from edge.bench import format_board

    line = format_board(board).splitlines()[0]
    assert line.startswith("board: ") and f"{board['cores']} cores" in line and "XNNPACK" in line


def test_device_process_uses_one_blas_thread_unless_configured():
    import subprocess
    import sys

    code = "import edge.cli, os; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=DEMO.parent.parent)
    assert r.stdout.split() == ["1", "1"]
    r = subprocess.run([sys.executable, "-c", code], env={**env, "OPENBLAS_NUM_THREADS": "3"},
                       capture_output=True, text=True, cwd=DEMO.parent.parent)
    assert r.stdout.split() == ["3", "1"]
