"""Fuzzing the three files an attacker or a bad disk can hand the door: the template,
the config and the lockout state.  Random and mutated inputs may only ever give a
FacelatchError (a message the CLI prints as is), never another exception, and never
something that opens the door: a mutated encrypted template never loads, a loaded
mutated plaintext template never matches a stranger, and a state file that is not a
valid state always leaves the door locked for a fresh backoff."""

import atexit
import json
import os
import shutil
import tempfile
import time
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import DEMO, TIME_SCALE  # noqa: E402

from edge import config as config_mod  # noqa: E402
from edge import secrets  # noqa: E402
from edge.decision import Matcher  # noqa: E402
from edge.policy import DoorPolicy, FrameResult, PolicyConfig  # noqa: E402
from edge.errors import FacelatchError  # noqa: E402
from edge.state import StateStore, parse_state  # noqa: E402
from edge.gallery import Gallery, check_gallery_against_card, load_gallery  # noqa: E402
from edge.template import Template, check_against_card, load_template  # noqa: E402

# Under emulation (ci/arm64.sh) every example is ~50x slower: fewer there, the same properties.
FUZZ = settings(max_examples=150 if TIME_SCALE == 1 else 25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
WORK = Path(tempfile.mkdtemp(prefix="facelatch-fuzz-"))
atexit.register(shutil.rmtree, WORK, True)
KEY = os.urandom(32)


@pytest.fixture(scope="module")
def real(pipeline):
    """The enrolled person's template (plain and encrypted) and a stranger's embedding, all real."""
    from edge.images import read_image

    emb = [pipeline.analyze(read_image(DEMO / "enroll" / n))[0].embedding for n in ("obama.jpg", "obama2.jpg")]
    stranger = pipeline.analyze(read_image(DEMO / "probe/biden.jpg"))[0].embedding
    t = Template(pipeline.model_sha256, np.stack(emb), "cosine")
    card = pipeline.encoder_card
    g = Gallery(pipeline.model_sha256, "cosine")
    g.add("barack", np.stack(emb), ["obama.jpg", "obama2.jpg"])
    return {"plain": t.to_json(), "encrypted": secrets.encrypt(t.to_json(), KEY), "stranger": stranger,
            "gallery": g.to_json(), "gallery_encrypted": secrets.encrypt(g.to_json(), KEY),
            "card": card, "threshold": card.threshold(1e-4), "sha": pipeline.model_sha256}


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, pos, value in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == 0:
            b[i] ^= value or 1  # flip bits
        elif kind == 1:
            del b[i:i + value % 16 + 1]  # cut
        elif kind == 2:
            b[i:i] = bytes([value]) * (value % 5 + 1)  # insert
        elif kind == 3:
            b[i:i] = b"1" + b"0" * (value * 20)  # a long number (up to 5100 digits)
        else:
            b = b[:i]  # truncate
    return bytes(b)


OPS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)
HUGE = st.sampled_from([10 ** 400, -10 ** 400, 2 ** 63, -2 ** 63 - 1])  # beyond float / int64
JSON_VALUES = HUGE | st.lists(st.lists(HUGE, min_size=1), min_size=1) | st.recursive(
    st.none() | st.booleans() | st.integers() | HUGE | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)


def _write(name: str, data: bytes) -> Path:
    p = WORK / name
    p.write_bytes(data)
    p.chmod(0o600)
    return p


def _load_template(data: bytes, real, key=None):
    path = _write("t.json", data)
    t = load_template(path, real["sha"], key)
    check_against_card(t, real["card"], path)
    return t


def _never_opens_for_the_stranger(t, real):
    assert np.all(np.isfinite(t.embeddings)) and t.embeddings.shape[1] == 128
    m = Matcher(t.reference, t.metric, real["threshold"], 1e-4).compare(real["stranger"])
    assert not m.is_match


def _loaded_or_one_line_error(load, *args):
    """What ``load(*args)`` returns, or None after checking its error is one line."""
    try:
        return load(*args)
    except FacelatchError as e:
        assert "\n" not in str(e)
        return None


@FUZZ
@given(ops=OPS)
def test_mutated_plaintext_template(real, ops):
    t = _loaded_or_one_line_error(_load_template, mutate(real["plain"], ops), real)
    if t is None:
        return
    _never_opens_for_the_stranger(t, real)


@FUZZ
@given(ops=OPS)
def test_mutated_encrypted_template_never_loads(real, ops):
    data = mutate(real["encrypted"], ops)
    t = _loaded_or_one_line_error(_load_template, data, real, KEY)
    if t is None:
        return
    assert json.loads(data) == json.loads(real["encrypted"])  # only a no-op mutation (e.g. whitespace) loads
    _never_opens_for_the_stranger(t, real)


@FUZZ
@given(field=st.sampled_from(["format", "version", "model_sha256", "metric", "embeddings", "created", "sources"]),
       value=JSON_VALUES)
def test_template_fields_replaced_with_anything(real, field, value):
    d = json.loads(real["plain"])
    d[field] = value
    t = _loaded_or_one_line_error(_load_template, json.dumps(d).encode(), real)
    if t is None:
        return
    _never_opens_for_the_stranger(t, real)


def _load_gallery(data: bytes, real, key=None):
    path = _write("g.json", data)
    g = load_gallery(path, real["sha"], key, migrate=False)
    check_gallery_against_card(g, real["card"], path)
    return g


def _gallery_never_opens_for_the_stranger(g, real):
    if not g.people:
        return
    for p in g.people.values():
        assert np.all(np.isfinite(p.template.embeddings)) and p.template.embeddings.shape[1] == 128
    assert not g.identifier(real["card"], 1e-4).identify(real["stranger"]).is_match


@FUZZ
@given(ops=OPS, encrypted=st.booleans())
def test_mutated_gallery(real, ops, encrypted):
    data = mutate(real["gallery_encrypted" if encrypted else "gallery"], ops)
    g = _loaded_or_one_line_error(_load_gallery, data, real, KEY if encrypted else None)
    if g is None:
        return
    if encrypted:  # only a no-op mutation (e.g. whitespace) loads
        assert json.loads(data) == json.loads(real["gallery_encrypted"])
    _gallery_never_opens_for_the_stranger(g, real)


@FUZZ
@given(field=st.sampled_from(["format", "version", "model_sha256", "metric", "people", "name", "enabled", "schedule",
                              "embeddings", "sources"]), value=JSON_VALUES)
def test_gallery_fields_replaced_with_anything(real, field, value):
    d = json.loads(real["gallery"])
    (d if field in ("format", "version", "model_sha256", "metric", "people") else d["people"][0])[field] = value
    g = _loaded_or_one_line_error(_load_gallery, json.dumps(d).encode(), real)
    if g is None:
        return
    _gallery_never_opens_for_the_stranger(g, real)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_template(real, data):
    with pytest.raises(FacelatchError):
        _load_template(data, real)


EXAMPLE = (resources.files("edge") / "facelatch.example.toml").read_bytes()
KEYS = [f"{s}.{f.name}" for s in ("camera", "model", "liveness", "template", "policy", "actuator", "audit",
                                   "security") for f in __import__("dataclasses").fields(getattr(config_mod.Config(), s))]
TOML_VALUES = HUGE | st.recursive(st.booleans() | st.integers(-10**12, 10**12) | HUGE | st.floats() | st.text(max_size=8),
                                  lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                                  max_leaves=8)


def _config(data: bytes):
    try:
        return config_mod.load(_write("c.toml", data))
    except FacelatchError as e:
        assert str(e).strip() and all(line.strip() for line in str(e).splitlines())
        return None


@FUZZ
@given(ops=OPS)
def test_mutated_config(ops):
    cfg = _config(mutate(EXAMPLE, ops))
    assert cfg is None or cfg.security.allow_insecure or not config_mod.below_floor(cfg)


@FUZZ
@given(values=st.dictionaries(st.sampled_from(KEYS), TOML_VALUES, max_size=6))
def test_config_values_replaced_with_anything(values):
    data: dict = {}
    for k, v in values.items():
        section, name = k.split(".")
        data.setdefault(section, {})[name] = v
    try:
        cfg = config_mod.parse(data)
    except FacelatchError:
        return
    assert cfg.security.allow_insecure or not config_mod.below_floor(cfg)  # the floor holds
    assert 1 <= cfg.policy.k <= cfg.policy.n and cfg.model.threads <= 64


@FUZZ
@given(key=st.sampled_from(KEYS), value=TOML_VALUES)
def test_one_config_value_replaced_with_anything(key, value):
    section, name = key.split(".")
    try:
        cfg = config_mod.parse({section: {name: value}})
    except FacelatchError:
        return
    assert cfg.security.allow_insecure or not config_mod.below_floor(cfg)


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_as_config(data):
    _config(data)


VALID_STATE = json.dumps({"failed_attempts": 2, "lockouts": 1, "backoff_until": 1000.0}).encode()


def _state(data: bytes):
    path = _write("lockout.json", data)
    (WORK / "lockout.corrupt").unlink(missing_ok=True)
    now = time.time()
    s = StateStore(path, corrupt_backoff_s=30, backoff_max_s=600).load()
    assert s.failed_attempts >= 0 and s.lockouts >= 0
    assert np.isfinite(s.backoff_until) and s.backoff_until <= time.time() + 600
    try:
        parse_state(data, now, 600)
    except ValueError:  # not a valid state: the door must be locked for a fresh backoff
        assert s.lockouts == 1 and s.backoff_until >= now + 29 and (WORK / "lockout.corrupt").exists()


@FUZZ
@given(ops=OPS)
def test_mutated_lockout_state(ops):
    _state(mutate(VALID_STATE, ops))


@FUZZ
@given(field=st.sampled_from(["failed_attempts", "lockouts", "backoff_until"]), value=JSON_VALUES)
def test_lockout_state_values_replaced_with_anything(field, value):
    _state(json.dumps({**json.loads(VALID_STATE), field: value}).encode())


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_as_lockout_state(data):
    _state(data)


def test_fuzz_inputs_were_parsed_as_toml_sometimes():
    """A sanity check of the config fuzzing itself: the example parses."""
    assert config_mod.parse(tomllib.loads(EXAMPLE.decode())) == config_mod.Config()


# --- the door examines only the faces that can count ----------------------------------
NEAR, NEAR2, FAR = (100.0, 100.0, 120.0, 120.0), (400.0, 100.0, 110.0, 110.0), (300.0, 300.0, 40.0, 40.0)
LONG = (250.0, 200.0, 80.0, 20.0)  # as tall as min_face_px, a small area: the largest box by area is not it
SCENES = [[], [NEAR], [NEAR2], [FAR], [NEAR, FAR], [FAR, NEAR], [NEAR, NEAR2], [LONG], [FAR, LONG], [(60.0, 60.0, 79.0, 79.0), LONG]]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(SCENES), st.booleans()), max_size=120), st.sampled_from(["deny", "largest"]))
def test_only_the_face_the_policy_judges_can_change_a_decision(frames, crowd):
    """The door examines (landmarks, liveness, encoder) only the face DoorPolicy.judged
    names and none where it names none: a policy told nothing about a frame it does not
    judge decides exactly as one told everything, and the face it names is the one
    observe counts (a match reported for it moves the attempt's box there)."""
    cfg = PolicyConfig(attempt_timeout_s=1.0, max_failed_attempts=2, backoff_s=2.0, backoff_max_s=4.0,
                       unlock_cooldown_s=1.0, multiple_faces=crowd)
    told, blind = DoorPolicy(cfg), DoorPolicy(cfg)
    for i, (boxes, match) in enumerate(frames):
        t = i / 15
        judged = told.judged(t, 1000 + t, boxes)
        assert judged == blind.judged(t, 1000 + t, boxes)
        full = FrameResult(t, boxes, match, 0.03 if match else 0.2, eye_ratio=0.3, person="p" if match else None)
        a = told.observe(full, 1000 + t)
        assert a == blind.observe(full if judged is not None else FrameResult(t, boxes), 1000 + t)
        if judged is not None and told.attempt is not None:
            x, y, w, h = boxes[judged]
            assert list(told.attempt.box) == [x, y, x + w, y + h]
