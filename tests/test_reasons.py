"""The reasons' words (edge/reasons.py): what an installer reads for each cause."""

import numpy as np

from edge import reasons
from edge.decision import Identifier


def test_numbers_get_just_enough_decimals_to_differ():
    assert reasons.below(0.08, 0.1316) == "0.08 < 0.13"
    assert reasons.below(0.128, 0.1316) == "0.128 < 0.132"  # "0.13 < 0.13" would say nothing
    assert reasons.below(0.5201, 0.52, ">") == "0.5201 > 0.5200"


def test_each_cause_in_words():
    assert reasons.too_small(35.2, 40.0).text == "face 35 px < min_face_px 40"
    assert reasons.poor_quality("contrast 5 < 8").text == "quality: contrast 5 < 8"
    assert reasons.not_live(0.08, 0.1316).text == "not live: P(live) 0.08 < 0.13"
    assert reasons.crowd(3).text == "crowd of 3 faces"
    assert reasons.attempt("attempt timed out", reasons.Why("no_match", "best distance 0.52 > 0.40 (alice)")) == \
        "attempt timed out: best distance 0.52 > 0.40 (alice)"
    assert reasons.attempt("attempt timed out", reasons.not_live(0.08, 0.13)) == \
        "not live: P(live) 0.08 < 0.13 (attempt timed out)"


def test_identity_reasons_name_the_people():
    ident = Identifier(["alice", "bob"], np.array([[1.0, 0.0], [0.8, 0.6]]), "cosine", 0.2, 1e-4)
    m = ident.identify(np.array([0.95, 0.31]))  # close to both
    assert m.ambiguous and m.nearest == "alice" and m.second == "bob"
    assert reasons.identity(m).text == f"ambiguous: alice {m.distance:.2f} / bob {m.runner_up:.2f}"
    strict = Identifier(["alice", "bob"], np.array([[1.0, 0.0], [0.8, 0.6]]), "cosine", 0.001, 1e-4)
    m = strict.identify(np.array([0.0, 1.0]))
    assert reasons.identity(m) == reasons.Why("no_match", f"best distance {m.distance:.2f} > 0.00 (bob)", m.distance)
    assert reasons.frame(m, 0.9, 0.13).kind == "no_match"
    ok = ident.identify(np.array([1.0, -0.2]))
    assert ok.person == "alice" and reasons.identity(ok) is None
    assert reasons.frame(ok, 0.05, 0.13).text == "not live: P(live) 0.05 < 0.13"  # a photo of alice


def test_the_readme_quotes_the_door_word_for_word():
    """Each reason in the README's "Why the door said no" table is what the code says."""
    import re

    from conftest import ROOT
    from edge.decision import Identity
    from edge.gallery import Person
    from edge.policy import DoorPolicy, FrameResult, LockoutState, PolicyConfig
    from edge.template import Template

    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Why the door said no", 1)[1].split("\n## ", 1)[0]
    quoted = set(re.findall(r"^\| `([^`]+)`", table, flags=re.M)) | set(re.findall(r" · `([^`]+)`", table))
    alice = Person("alice", Template("0" * 64, np.zeros((1, 4), np.float32), "cosine"), schedule="mon-fri 07:00-19:00")
    noon = 1_764_936_000.0  # some day at 12:00 UTC; within a week of it one day is outside mon-fri 07:00-19:00
    locked = DoorPolicy(PolicyConfig(), LockoutState(0, 1, 2000.0)).observe(FrameResult(0.0, [(0, 0, 100, 100)]), 1000.0)
    relock = DoorPolicy(PolicyConfig(attempt_timeout_s=1.0), LockoutState(0, 1, 990.0))  # a photo of alice after
    relocked = [d.reason for i in range(40) for d in relock.observe(  # a lockout: one attempt locks again
        FrameResult(i / 15, [(0, 0, 100, 100)], True, 0.3, live=False, person="alice"), 1000.0 + i / 15)
        if d.kind == "locked_out"]
    said = {reasons.too_small(35, 80).text, reasons.poor_quality(f"contrast {5.0:g} < {8:g}").text,
            reasons.not_live(0.08, 0.5747).text,
            reasons.identity(Identity(None, "alice", 0.31, 0.35, 0.40, 1e-4, True, "bob")).text,
            reasons.attempt("attempt timed out", reasons.identity(Identity(None, "alice", 0.52, None, 0.40, 1e-4))),
            reasons.crowd(3).text, locked[0].reason, relocked[0], reasons.live_share("alice", 0.68, 0.75).text,
            "... " + reasons.wary(PolicyConfig().after_spoof_k), "... " + reasons.wary_held(PolicyConfig().after_spoof_k),
            next(r for r in (alice.admits(noon + d * 86400) for d in range(7)) if r),
            Person("alice", alice.template, enabled=False).admits(noon)}
    assert quoted == said
