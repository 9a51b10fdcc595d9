"""Score-level fusion of dlib + SFace (models/facelatch_fusion_int8.json) on the real
shipped models and the bundled faces: the fused distance is the weighted sum of the
members' distances, it is selectable like any encoder, and templates bind to it."""

import itertools
import json
import shutil

import numpy as np
import pytest

from conftest import DEMO, run_cli
from test_cli import assert_one_line_error

from edge.decision import distance, person_reference
from edge.errors import FacelatchError
from edge.modelcard import ENCODER_KINDS, fusion_identity, load_card, models_dir
from edge.pipeline import FacePipeline, read_image

FUSION = "facelatch_fusion_int8"
# three of one person, one of another: 6 pairs, same-person and not, each embedded through
# three pipelines (the fusion and each member)
FACES = [DEMO / "enroll/obama.jpg", DEMO / "enroll/obama2.jpg", DEMO / "probe/obama3.jpg", DEMO / "probe/biden.jpg"]


@pytest.fixture(scope="module")
def card():
    return load_card(models_dir() / f"{FUSION}.json", kind=ENCODER_KINDS)


@pytest.fixture(scope="module")
def embedded(card):
    """{encoder name: [embedding per face]} for the fusion and each of its members, each
    through its own pipeline."""
    out = {}
    for name in [FUSION] + [m.data["name"] for m, _ in card.members]:
        pipe = FacePipeline(name, liveness=None)
        found = [pipe.analyze(read_image(p)) for p in FACES]
        assert all(len(f) == 1 for f in found)
        out[name] = [f[0].embedding for f in found]
        if name == FUSION:
            out["fused chip"] = found[0][0].chip
    return out


def test_the_card_names_its_members_and_binds_to_them(card):
    members = card.data["members"]
    assert [m["name"] for m in members] == ["facelatch_dlib_resnet_int8", "facelatch_sface_int8"]
    for (m, w), listed in zip(card.members, members):
        assert m.sha256 == listed["sha256"] and w == listed["weight"]
    assert card.sha256 == fusion_identity(members)
    assert sum(w for _, w in card.members) == pytest.approx(1)
    assert card.data["embedding"]["dim"] == sum(m.data["embedding"]["dim"] for m, _ in card.members)


def test_fused_distance_is_the_weighted_sum_of_the_members_distances(card, embedded):
    (dlib_card, w), (sface_card, w2) = card.members
    fused, d1, d2 = embedded[FUSION], embedded[dlib_card.data["name"]], embedded[sface_card.data["name"]]
    worst = 0.0
    for i, j in itertools.combinations(range(len(FACES)), 2):
        want = w * distance(d1[i], d1[j], "cosine") + w2 * distance(d2[i], d2[j], "cosine")
        worst = max(worst, abs(distance(fused[i], fused[j], "cosine") - want))
    assert worst < 1e-5, worst
    assert all(abs(np.linalg.norm(e) - 1) < 1e-5 for e in fused)
    # the door's distance to a person (mean over their enrolled embeddings) is the weighted mean, too
    probe = fused[2]
    got = 1 - person_reference(np.stack(fused[:2]), "cosine") @ probe
    want = np.mean([w * distance(d1[k], d1[2], "cosine") + w2 * distance(d2[k], d2[2], "cosine") for k in (0, 1)])
    assert abs(got - want) < 1e-5


def test_each_member_cuts_its_own_chip(card, embedded):
    chip = embedded["fused chip"]
    sizes = [m.data["alignment"]["chip_size"] for m, _ in card.members]
    assert chip.dtype == np.uint8 and chip.shape == (max(sizes), sum(sizes), 3)
    # each member's chip, taken back out, embeds to that member's own embedding
    x = 0
    for (m, w), s in zip(card.members, sizes):
        from edge.embed import Embedder

        e = Embedder(m).embed(np.ascontiguousarray(chip[:s, x:x + s]))
        np.testing.assert_allclose(e, embedded[m.data["name"]][0], atol=1e-6)
        x += s


def test_card_rows_and_figures_like_the_other_cards(card):
    sface = load_card(models_dir() / "facelatch_sface_int8.json")
    assert [t["fmr"] for t in card.thresholds()] == [t["fmr"] for t in sface.thresholds()]
    # fitted by the same rule (test_decision checks each row's per-source bound): same fields
    assert all(t["impostor_pairs"] > 1e7 and t.keys() == s.keys() for t, s in zip(card.thresholds(), sface.thresholds()))
    assert card.data["thresholds_method"] == sface.data["thresholds_method"]
    assert card.data["evaluation"]["threshold_transfer"]["rows"]
    assert card.data["quality"]["limits"]
    assert card.data["provenance"]["weights"]["chosen_on"]


@pytest.fixture(scope="module")
def fused_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("fusion") / "template.json"
    rc, out, err = run_cli("--encoder", FUSION, "enroll", FACES[0], FACES[1], "--template", path)
    assert rc == 0, err
    return path


def test_cli_enroll_and_verify_with_the_fusion(card, fused_template):
    d = json.loads(fused_template.read_text())
    assert d["model_sha256"] == card.sha256 and len(d["people"][0]["embeddings"][0]) == 256
    rc, out, err = run_cli("--encoder", FUSION, "verify", FACES[2], FACES[3], "--template", fused_template, "--json")
    assert rc == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["decision"] for r in recs] == ["match", "no match"]
    assert recs[0]["threshold"] == card.threshold(1e-4)


def test_templates_of_another_encoder_are_refused_both_ways(fused_template, tmp_path):
    rc, out, err = run_cli("verify", FACES[2], "--template", fused_template)  # the default encoder
    assert_one_line_error(rc, out, err, "another model", "re-enroll")
    sface = tmp_path / "sface.json"
    rc, out, err = run_cli("enroll", FACES[0], "--template", sface)
    assert rc == 0, err
    rc, out, err = run_cli("--encoder", FUSION, "verify", FACES[2], "--template", sface)
    assert_one_line_error(rc, out, err, "another model", "re-enroll")


def _models_copy(tmp_path):
    """The encoder cards in a folder of their own (models linked, cards copied)."""
    d = tmp_path / "models"
    d.mkdir(parents=True)
    for name in ("facelatch_dlib_resnet_int8", "facelatch_sface_int8", FUSION):
        shutil.copy(models_dir() / f"{name}.json", d)
        if name != FUSION:
            (d / f"{name}.tflite").symlink_to(models_dir() / f"{name}.tflite")
    return d


def _edit(path, change):
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


@pytest.mark.parametrize("change,words", [
    (lambda d: d["members"][0].update(weight=0.6), ["sum to 1"]),
    (lambda d: [m.update(weight=w) for m, w in zip(d["members"], (0.6, 0.4))], ["does not match its members"]),
    (lambda d: d["members"].pop(), ["at least two"]),
    (lambda d: d["members"][1].update(name="no_such_encoder"), ["does not match its members"]),
])
def test_bad_fused_cards_are_one_line_errors(tmp_path, change, words):
    d = _models_copy(tmp_path)
    _edit(d / f"{FUSION}.json", change)
    with pytest.raises(FacelatchError) as e:
        load_card(d / f"{FUSION}.json", kind=ENCODER_KINDS)
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)


def test_missing_or_changed_member_model_is_refused(tmp_path):
    d = _models_copy(tmp_path)
    (d / "facelatch_sface_int8.json").unlink()
    with pytest.raises(FacelatchError, match="member facelatch_sface_int8: model card not found"):
        load_card(d / f"{FUSION}.json", kind=ENCODER_KINDS)
    d = _models_copy(tmp_path / "b")
    _edit(d / "facelatch_dlib_resnet_int8.json", lambda c: c.update(sha256="0" * 64))
    (d / "facelatch_dlib_resnet_int8.tflite").unlink()
    shutil.copy(models_dir() / "facelatch_dlib_resnet_int8.tflite", d)
    with open(d / "facelatch_dlib_resnet_int8.tflite", "ab") as f:
        f.write(b"\0")
    with pytest.raises(FacelatchError, match="does not match its card"):
        load_card(d / f"{FUSION}.json", kind=ENCODER_KINDS)
    # a member card whose model changed (card and model consistent) no longer matches the fusion
    from edge.runtime import sha256_file

    _edit(d / "facelatch_dlib_resnet_int8.json", lambda c: c.update(sha256=sha256_file(d / "facelatch_dlib_resnet_int8.tflite")))
    with pytest.raises(FacelatchError, match="was measured with facelatch_dlib_resnet_int8"):
        load_card(d / f"{FUSION}.json", kind=ENCODER_KINDS)


def test_a_bad_fused_card_on_the_command_line_is_one_line(tmp_path):
    d = _models_copy(tmp_path)
    _edit(d / f"{FUSION}.json", lambda c: c["members"][1].update(weight=0.4))
    rc, out, err = run_cli("--encoder", d / f"{FUSION}.json", "--no-liveness", "demo")
    assert_one_line_error(rc, out, err, FUSION, "sum to 1")


def test_demo_and_bench_run_the_fusion():
    rc, out, err = run_cli("--encoder", FUSION, "demo", "--json")
    assert rc == 0, err
    recs = {r["probe"]: r for r in map(json.loads, out.splitlines())}
    assert recs["obama3.jpg"]["decision"] == "match"
    assert all(r["decision"] != "match" for k, r in recs.items() if k != "obama3.jpg")
    # its members' cross-architecture tolerances, weighted; every decision further from the threshold
    assert all(r["distance_tolerance"] == pytest.approx(0.7 * 0.01 + 0.3 * 0.05) for r in recs.values())
    assert min(abs(r["distance"] - r["threshold"]) for r in recs.values()) > recs["obama3.jpg"]["distance_tolerance"]
    rc, out, err = run_cli("--encoder", FUSION, "bench", "--seconds", "0.2", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["encoder"] == FUSION and r["stages_ms"]["embed"]["median"] > 0


def test_the_door_runs_the_fusion_from_its_config(tmp_path):
    from frames import crops, frame
    from test_daemon import audit, setup_door

    from edge.daemon import run
    from edge.template import Template

    enrolled = tmp_path / "enrolled"
    enrolled.mkdir()
    pipe = FacePipeline(FUSION, liveness=None)
    emb = [pipe.analyze(read_image(p))[0].embedding for p in FACES[:2]]
    Template(pipe.model_sha256, np.stack(emb), "cosine").save(enrolled / "template.json")
    obama = crops()["obama"]
    cfg, state = setup_door(tmp_path, enrolled, [frame()] * 2 + [frame(obama)] * 8)
    cfg.write_text(cfg.read_text() + f'[model]\nencoder = "{FUSION}"\n')
    assert run(str(cfg)) == 0
    unlocks = [a for a in audit(state) if a["decision"] == "unlock"]
    assert len(unlocks) == 1 and unlocks[0]["model_sha256"] == pipe.model_sha256


def test_convert_fuse_rebuilds_the_shipped_identity_and_keeps_the_measured_rows(tmp_path, card, capsys):
    from convert.cli import main

    d = _models_copy(tmp_path)
    members = [str(d / f"{m.data['name']}.json") for m, _ in card.members]
    weights = [str(w) for _, w in card.members]
    out = d / f"{FUSION}.json"
    assert main(["fuse", *members, "--weights", *weights, "--weight-chosen-on", "test", "-o", str(out)]) == 0
    rebuilt = load_card(out, kind=ENCODER_KINDS)
    assert rebuilt.sha256 == card.sha256 and rebuilt.thresholds() == card.thresholds()  # same fusion: rows kept
    assert rebuilt.data["embedding"] == card.data["embedding"] and rebuilt.data["quality"] == card.data["quality"]
    assert main(["fuse", *members, "--weights", "0.5", "0.5", "--weight-chosen-on", "test", "-o", str(out)]) == 0
    other = load_card(out, kind=ENCODER_KINDS)
    assert other.sha256 != card.sha256 and other.thresholds() == []  # another weight: nothing measured carries over
    assert "second_look_band" not in other.data["embedding"] and "quality" not in other.data
    assert main(["fuse", *members, "--weights", "0.5", "0.6", "--weight-chosen-on", "t", "-o", str(out)]) == 2
    assert "sum to 1" in capsys.readouterr().err


def test_first_look_and_completion_equal_the_full_fused_embedding(card, embedded):
    """The door's first look (edge.secondlook) for a fused card: every member's chip
    alone; completed, it is the full fused embedding."""
    from edge.fusion import FusedEmbedder
    from edge.pipeline import FacePipeline

    fused = FusedEmbedder(card)
    chip = embedded["fused chip"]
    first = fused.first_look(chip)
    np.testing.assert_allclose(fused.embed(chip, first=first), embedded[FUSION][0], atol=1e-6)
    quick = fused.finish(first)
    assert abs(np.linalg.norm(quick) - 1) < 1e-5 and 0 < distance(quick, embedded[FUSION][0], "cosine") < 0.05
    pipe = FacePipeline(FUSION, liveness=None)
    r = pipe.analyze(read_image(FACES[0]), look="first")[0]
    assert r.first_look is not None
    pipe.complete(r)
    np.testing.assert_allclose(r.embedding, embedded[FUSION][0], atol=1e-6)
