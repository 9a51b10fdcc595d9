"""The household file (edge.gallery) and weekly schedules (edge.schedule)."""

import json
import logging
import os
import stat
import time

import numpy as np
import pytest

from edge import secrets
from edge.errors import FacelatchError
from edge.gallery import Gallery, load_gallery
from edge.schedule import Schedule
from edge.template import Template, load_template

SHA = "a" * 64


def emb(seed, n=2):
    v = np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def household():
    g = Gallery(SHA, "cosine")
    g.add("alice", emb(1, 3), ["a1.jpg", "a2.jpg", "a3.jpg"])
    g.add("bob", emb(2), ["b1.jpg", "b2.jpg"])
    g.person("bob").schedule = "mon-fri 07:00-19:00"
    g.person("alice").enabled = False
    return g


def test_round_trip_is_versioned_json_0600_and_bound_to_the_model(tmp_path):
    path = tmp_path / "sub" / "gallery.json"
    household().save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    d = json.loads(path.read_text())
    assert d["format"] == "facelatch-gallery" and d["version"] == 1 and d["model_sha256"] == SHA
    g = load_gallery(path, SHA)
    assert g.names == ["alice", "bob"] and len(g.person("alice").template.embeddings) == 3
    assert not g.person("alice").enabled and g.person("bob").schedule == "mon-fri 07:00-19:00"
    np.testing.assert_allclose(g.person("bob").template.embeddings, emb(2), atol=1e-6)
    with pytest.raises(FacelatchError, match="another model"):
        load_gallery(path, "b" * 64)


def test_encrypted_with_the_template_key_and_tamper_evident(tmp_path):
    key = os.urandom(32)
    path = tmp_path / "g.json"
    household().save(path, key)
    assert b"alice" not in path.read_bytes() and secrets.is_encrypted(path.read_bytes())
    assert load_gallery(path, SHA, key).names == ["alice", "bob"]
    with pytest.raises(FacelatchError, match="encrypted"):
        load_gallery(path, SHA)
    with pytest.raises(FacelatchError, match="wrong key"):
        load_gallery(path, SHA, os.urandom(32))
    household().save(path)  # plaintext where a key is configured: refused
    with pytest.raises(FacelatchError, match="not encrypted"):
        load_gallery(path, SHA, key)


@pytest.mark.parametrize("encrypted", [False, True])
def test_single_person_template_is_migrated_on_first_load(tmp_path, caplog, encrypted):
    key = os.urandom(32) if encrypted else None
    path = tmp_path / "template.json"
    Template(SHA, emb(3), "cosine", created="2026-01-02T03:04:05+0000", sources=["x.jpg", "y.jpg"]).save(path, key)
    with caplog.at_level(logging.WARNING, logger="facelatch"):
        g = load_gallery(path, SHA, key)
    assert "single-person template" in caplog.text and "'user'" in caplog.text and "rewritten" in caplog.text
    p = g.person("user")
    assert p.enabled and p.schedule == "" and p.template.created == "2026-01-02T03:04:05+0000"
    np.testing.assert_allclose(p.template.embeddings, emb(3), atol=1e-6)
    raw = path.read_bytes()  # rewritten as a gallery, encrypted as before, still 0600
    assert secrets.is_encrypted(raw) == encrypted and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    plain = secrets.decrypt(raw, key, "x") if encrypted else raw
    assert json.loads(plain)["format"] == "facelatch-gallery"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facelatch"):
        assert load_gallery(path, SHA, key).names == ["user"]
    assert "single-person" not in caplog.text  # only once
    with pytest.raises(FacelatchError):  # and the old reader no longer takes it for a template
        load_template(path, SHA, key)


def test_corrupt_files_are_clear_errors(tmp_path):
    path = tmp_path / "g.json"
    household().save(path)
    good = json.loads(path.read_text())
    for breakage in (lambda d: d["people"][0].pop("embeddings"), lambda d: d["people"][0].update(embeddings=[]),
                     lambda d: d["people"][1].update(name="alice"), lambda d: d["people"][0].update(name="../x"),
                     lambda d: d["people"][0].update(schedule="someday"),
                     lambda d: d["people"][0].update(embeddings=[[float("nan")] * 128])):
        d = json.loads(json.dumps(good))
        breakage(d)
        path.write_text(json.dumps(d))
        with pytest.raises(FacelatchError, match="corrupt"):
            load_gallery(path, SHA)
    path.write_text(json.dumps({**good, "version": 99}))
    with pytest.raises(FacelatchError, match="version 99"):
        load_gallery(path, SHA)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(FacelatchError, match="not JSON"):
        load_gallery(path, SHA)
    with pytest.raises(FacelatchError, match="enroll first"):
        load_gallery(tmp_path / "none.json", SHA)


def test_editing_people():
    g = household()
    with pytest.raises(FacelatchError, match="already enrolled"):
        g.add("bob", emb(4), ["c.jpg"])
    g.add("bob", emb(4, 1), ["c.jpg"], extend=True)
    assert len(g.person("bob").template.embeddings) == 3
    g.add("bob", emb(5, 1), ["d.jpg"], replace=True)  # keeps the schedule, replaces the embeddings
    assert len(g.person("bob").template.embeddings) == 1 and g.person("bob").schedule
    with pytest.raises(FacelatchError, match="person name"):
        g.add("", emb(6), [])
    g.remove("alice")
    assert g.names == ["bob"]
    with pytest.raises(FacelatchError, match="no person named 'alice'"):
        g.remove("alice")


def _wall(day: int, hh: int, mm: int) -> float:
    """Local wall-clock seconds for weekday ``day`` (0 = Monday) of a fixed week."""
    base = time.mktime((2026, 11, 23, hh, mm, 0, 0, 0, -1))  # 2026-11-23 is a Monday
    return time.mktime(time.localtime(base + day * 86400)[:3] + (hh, mm, 0, 0, 0, -1))


def test_schedule_rules():
    s = Schedule.parse("mon-fri 07:00-19:00; sat,sun 09:00-12:00")
    assert s.allows(_wall(0, 7, 0)) and s.allows(_wall(4, 18, 59))
    assert not s.allows(_wall(0, 6, 59)) and not s.allows(_wall(2, 19, 0))
    assert s.allows(_wall(5, 9, 30)) and not s.allows(_wall(6, 12, 0))
    night = Schedule.parse("fri 22:00-02:00")  # past midnight: Friday night into Saturday
    assert night.allows(_wall(4, 23, 0)) and night.allows(_wall(5, 1, 59))
    assert not night.allows(_wall(5, 2, 0)) and not night.allows(_wall(3, 1, 0))
    assert Schedule.parse("fri-mon 10:00-11:00").allows(_wall(6, 10, 30))  # wraps the week
    assert Schedule.parse("").allows(_wall(2, 3, 0)) and Schedule.parse("daily 00:00-24:00").allows(_wall(2, 3, 0))
    for bad in ("mon-fri", "someday 07:00-08:00", "mon 25:00-26:00", "mon 07:00-07:00", "mon 7-8"):
        with pytest.raises(FacelatchError, match="schedule"):
            Schedule.parse(bad)


def test_admission_names_the_person():
    g = household()
    monday_noon, monday_night = _wall(0, 12, 0), _wall(0, 22, 0)
    assert g.admits("alice", monday_noon) == "alice is disabled"
    assert g.admits("bob", monday_noon) is None
    assert g.admits("bob", monday_night) == "bob is outside their schedule (mon-fri 07:00-19:00)"
    assert "no longer enrolled" in g.admits("carol", monday_noon)
