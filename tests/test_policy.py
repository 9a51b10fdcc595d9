"""The decision policy on its own (pure logic, synthetic frame results)."""

from dataclasses import replace

from edge.policy import DoorPolicy, FrameResult, LockoutState, PolicyConfig

FACE = (100.0, 100.0, 120.0, 120.0)
OTHER = (400.0, 100.0, 110.0, 110.0)


def feed(policy, frames, t0=0.0, wall0=1000.0, fps=15.0):
    out = []
    for i, (boxes, match) in enumerate(frames):
        out += policy.observe(FrameResult(t0 + i / fps, boxes, match, 0.03 if match else 0.2), wall0 + i / fps)
    return out


def test_k_of_n():
    p = DoorPolicy(PolicyConfig(k=3, n=5))
    d = feed(p, [([FACE], m) for m in (True, False, True, False, True)])
    assert [x.kind for x in d] == ["unlock"] and d[0].matches == 3


def test_crowd_deny_is_recorded_once_per_scene():
    p = DoorPolicy(PolicyConfig())
    d = feed(p, [([FACE, OTHER], True)] * 10 + [([], False)] * 2 + [([FACE, OTHER], True)] * 3)
    assert [x.kind for x in d] == ["deny", "deny"]


def test_failed_attempts_lock_out_with_doubling_backoff_and_persist():
    saved = []
    cfg = PolicyConfig(attempt_timeout_s=1.0, max_failed_attempts=2, backoff_s=30, backoff_max_s=100)
    p = DoorPolicy(cfg, save=lambda s: saved.append((s.failed_attempts, s.lockouts, s.backoff_until)))
    d = feed(p, [([FACE], False)] * 40)  # two 1-s attempts fail, then the door reports the lockout
    assert [x.kind for x in d] == ["deny", "deny", "locked_out"]
    assert p.state.lockouts == 1 and 1020 < p.state.backoff_until < 1040 and saved
    # a restart with the persisted state keeps the door locked, then doubles the next backoff
    q = DoorPolicy(cfg, LockoutState(0, 1, p.state.backoff_until))
    assert [x.kind for x in feed(q, [([FACE], True)] * 5, wall0=1010)] == ["locked_out"]
    d = feed(q, [([FACE], False)] * 40, t0=100, wall0=2000)
    assert q.state.lockouts == 2 and q.state.backoff_until - 2000 > 55  # 60 s = 30 * 2


def test_backoff_is_capped():
    cfg = PolicyConfig(attempt_timeout_s=1.0, max_failed_attempts=1, backoff_s=30, backoff_max_s=45)
    p = DoorPolicy(cfg, LockoutState(0, 5, 0.0))
    feed(p, [([FACE], False)] * 20)
    assert p.state.lockouts == 6 and 45 <= p.state.backoff_until - 1000 <= 47  # failure at ~1001 s + 45 s cap


def test_cooldown_after_unlock_and_success_resets_failures():
    p = DoorPolicy(PolicyConfig(unlock_cooldown_s=5.0), LockoutState(3, 0, 0.0))
    d = feed(p, [([FACE], True)] * 30)
    assert [x.kind for x in d] == ["unlock"] and p.state.failed_attempts == 0


def test_face_that_leaves_early_after_a_judged_frame_is_a_failed_attempt():
    p = DoorPolicy(PolicyConfig(n=5, lost_after_s=0.2))
    d = feed(p, [([FACE], False)] * 3 + [([], False)] * 10)
    assert [x.kind for x in d] == ["deny"] and d[0].frames == 3 and p.state.failed_attempts == 1


def _positions(step: int):
    """A face that jumps to a new place (no box overlap: a new track) every ``step`` frames."""
    spots = [(20.0 + 150 * (i % 4), 60.0, 120.0, 120.0) for i in range(4)]
    return lambda i: spots[(i // step) % len(spots)]


def test_dodge_by_shifting_position_is_counted_and_locks_out():
    """The stranger moves to a new place every 4 frames (a new track each time):
    the attempt clock runs on, so every attempt_timeout_s in view is one failure."""
    cfg = PolicyConfig(n=5, attempt_timeout_s=5.0, max_failed_attempts=5, backoff_s=30)
    p = DoorPolicy(cfg)
    at = _positions(4)
    d = feed(p, [([at(i)], False) for i in range(400)])  # 26.7 s in view at 15 fps
    assert [x.kind for x in d] == ["deny"] * 5 + ["locked_out"]
    assert all(x.reason == "attempt timed out: no match" and x.cause == "no_match" for x in d[:5])
    assert p.state.lockouts == 1 and p.state.backoff_until > 1020


def test_dodge_by_stepping_out_is_counted_and_locks_out():
    """Four frames in view, then out of view for longer than lost_after_s, again and again."""
    cfg = PolicyConfig(n=5, lost_after_s=1.0, max_failed_attempts=5, backoff_s=30)
    p = DoorPolicy(cfg)
    cycle = [([FACE], False)] * 4 + [([], False)] * 20  # 20 empty frames = 1.33 s away
    d = feed(p, cycle * 35)  # 840 frames
    assert [x.kind for x in d[:6]] == ["deny"] * 5 + ["locked_out"]  # within 7 cycles (11 s)
    assert all(x.reason == "face left before acceptance: no match" and x.frames == 4 for x in d[:5])
    assert p.state.lockouts >= 2  # and again after the 30 s backoff: 56 s of tries, no free ones


def test_crowd_interrupting_an_attempt_counts_it():
    p = DoorPolicy(PolicyConfig())
    d = feed(p, [([FACE], False)] * 3 + [([FACE, OTHER], False)] * 3)
    assert [(x.kind, x.reason, x.cause) for x in d] == [("deny", "attempt interrupted by a crowd: no match", "no_match"),
                                                        ("deny", "crowd of 2 faces", "crowd")]
    assert p.state.failed_attempts == 1


def test_new_track_restarts_the_k_of_n_window():
    """k matches must come from one tracked face: 2 here + 1 after a jump do not unlock."""
    p = DoorPolicy(PolicyConfig(k=3, n=5))
    at = _positions(2)
    d = feed(p, [([at(i)], True) for i in range(2)] + [([at(2)], True)] + [([at(2)], False)] * 2)
    assert [x.kind for x in d] == []


def test_backoff_exponent_is_capped_at_huge_lockout_counts():
    cfg = PolicyConfig(attempt_timeout_s=1.0, max_failed_attempts=1, backoff_s=30, backoff_max_s=600)
    p = DoorPolicy(cfg, LockoutState(0, 5000, 0.0))
    d = feed(p, [([FACE], False)] * 20)
    assert d[0].kind == "deny" and 600 <= p.state.backoff_until - 1000 <= 602


def test_liveness_gates_matches():
    p = DoorPolicy(PolicyConfig(k=3, n=5))
    frames = [FrameResult(i / 15, [FACE], True, 0.03, live=False, live_score=0.1) for i in range(5)]
    assert not [x for f in frames for x in p.observe(f, 1000.0) if x.kind == "unlock"]


def test_repeated_frames_never_count():
    """A bit-identical repeat of the previous frame (frozen or injected still) is not
    evidence: matching, live, but not fresh -> no unlock."""
    p = DoorPolicy(PolicyConfig(k=3, n=5, attempt_timeout_s=1.0))
    frames = [FrameResult(i / 15, [FACE], True, 0.03, live=True, live_score=0.9, fresh=i == 0) for i in range(20)]
    d = [x for f in frames for x in p.observe(f, 1000.0 + f.t)]
    assert [(x.kind, x.cause) for x in d] == [("deny", "repeat")] and d[0].reason.startswith("the same image")
    q = DoorPolicy(PolicyConfig(k=3, n=5))
    fresh = [FrameResult(i / 15, [FACE], True, 0.03, live=True, live_score=0.9, fresh=True) for i in range(5)]
    assert [x.kind for f in fresh for x in q.observe(f, 1000.0)] == ["unlock"]


def test_require_blink_waits_for_a_blink():
    open_, closed = 0.3, 0.12
    ears = [open_] * 6 + [closed, open_, open_]
    frames = [FrameResult(i / 15, [FACE], True, 0.03, live=True, live_score=0.9, eye_ratio=e)
              for i, e in enumerate(ears)]
    p = DoorPolicy(PolicyConfig(k=3, n=5), require_blink=True)
    out = [(i, x.kind) for i, f in enumerate(frames) for x in p.observe(f, 1000.0)]
    assert out == [(7, "unlock")]  # not at frame 2 (no blink yet): at the first open frame after the blink
    still = [FrameResult(i / 15, [FACE], True, 0.03, live=True, live_score=0.9, eye_ratio=open_) for i in range(60)]
    q = DoorPolicy(PolicyConfig(k=3, n=5, attempt_timeout_s=2.0), require_blink=True)
    d = [x for f in still for x in q.observe(f, 1000.0 + f.t)]
    assert [(x.kind, x.reason) for x in d] == [("deny", "no blink seen (liveness.require_blink) (attempt timed out)")]


def test_household_acceptance_needs_k_frames_of_the_same_person():
    p = DoorPolicy(PolicyConfig(k=3, n=5))
    who = ["alice", "bob", "alice", "bob", "carol"]  # 5 matching frames, never 3 of one person
    d = [x for i, w in enumerate(who) for x in p.observe(FrameResult(i / 15, [FACE], True, 0.03, person=w), 1000)]
    assert d == []
    d = p.observe(FrameResult(6 / 15, [FACE], True, 0.03, person="alice"), 1000)  # window: bob alice bob carol alice
    assert d == [] and p.attempt.votes()[1] == 2  # alice 2, bob 2
    d = p.observe(FrameResult(7 / 15, [FACE], True, 0.03, person="alice"), 1000)
    assert [(x.kind, x.person, x.matches) for x in d] == [("unlock", "alice", 3)]


def test_admit_denies_a_recognised_person_by_name_without_counting_a_failure():
    asked = []

    def admit(person, wall):
        asked.append((person, wall))
        return f"{person} is outside their schedule (mon-fri 07:00-19:00)" if person == "bob" else None

    p = DoorPolicy(PolicyConfig(k=3, n=5, unlock_cooldown_s=5), admit=admit)
    d = [x for i in range(10) for x in p.observe(FrameResult(i / 15, [FACE], True, 0.03, person="bob"), 2000 + i)]
    assert [(x.kind, x.person, x.reason) for x in d] == [
        ("deny", "bob", "bob is outside their schedule (mon-fri 07:00-19:00)")]  # once: the cooldown follows
    assert p.state.failed_attempts == 0 and asked == [("bob", 2002)]
    d = [x for i in range(5) for x in p.observe(FrameResult(10 + i / 15, [FACE], True, 0.03, person="alice"), 3000)]
    assert [(x.kind, x.person) for x in d] == [("unlock", "alice")]


def test_a_matching_face_that_is_not_live_is_reported_as_spoof_frames():
    p = DoorPolicy(PolicyConfig(k=3, n=5, attempt_timeout_s=1.0))
    d = [x for i in range(20) for x in p.observe(
        FrameResult(i / 15, [FACE], True, 0.03, live=False, live_score=0.1, person="alice"), 1000 + i / 15)]
    assert [x.kind for x in d] == ["deny"] and d[0].spoof_frames >= 15 and d[0].person is None
    assert d[0].claimed == "alice"  # whom the photo showed
    p = DoorPolicy(PolicyConfig(k=3, n=5, attempt_timeout_s=1.0))  # fewer than k not-live matches: nobody claimed
    d = [x for i in range(20) for x in p.observe(
        FrameResult(i / 15, [FACE], i < 2, 0.03 if i < 2 else 0.3, live=False, live_score=0.1,
                    person="alice" if i < 2 else None), 1000 + i / 15)]
    assert [x.kind for x in d] == ["deny"] and d[0].spoof_frames == 2 and d[0].claimed is None


def test_judged_names_the_face_that_can_count():
    small, narrow = (300.0, 300.0, 40.0, 40.0), (250.0, 200.0, 80.0, 20.0)  # narrow: as tall as min_face_px
    p = DoorPolicy(PolicyConfig())
    assert p.judged(0.0, 1000.0, [FACE]) == 0 and p.judged(0.0, 1000.0, [small, FACE]) == 1
    assert p.judged(0.0, 1000.0, []) is None and p.judged(0.0, 1000.0, [small]) is None
    assert p.judged(0.0, 1000.0, [(60.0, 60.0, 79.0, 79.0), narrow]) == 1  # not the largest detected box
    assert p.judged(0.0, 1000.0, [FACE, OTHER]) is None  # a crowd is denied on its boxes
    q = DoorPolicy(PolicyConfig(multiple_faces="largest"))
    assert q.judged(0.0, 1000.0, [OTHER, FACE]) == 1
    assert [x.kind for x in feed(q, [([OTHER, FACE], True)] * 5)] == ["unlock"]  # k = 5 of n = 5
    assert q.judged(1.0, 1000.0, [FACE]) is None  # the cooldown after that unlock
    r = DoorPolicy(PolicyConfig(), LockoutState(0, 1, 2000.0))
    assert r.judged(0.0, 1000.0, [FACE]) is None and r.judged(600.0, 2000.0, [FACE]) == 0  # a backoff (on the
    # frames' clock, at most backoff_max_s = 600 s: the saved deadline was 1000 s ahead), then not


def _observe(p, frames, wall0=1000.0):
    return [x for f in frames for x in p.observe(f, wall0 + f.t)]


def test_a_failed_attempt_names_its_most_frequent_cause_at_its_best_frame():
    from edge import reasons

    p = DoorPolicy(PolicyConfig(k=3, n=5, attempt_timeout_s=1.0))
    whys = [reasons.not_live(s, 0.1316) for s in (0.05, 0.08, 0.02)] * 6 + [
        reasons.Why("no_match", "best distance 0.52 > 0.40 (alice)", 0.52)] * 4
    d = _observe(p, [FrameResult(i / 15, [FACE], True, 0.3, live=False, live_score=0.05, why=w)
                     for i, w in enumerate(whys)])
    assert [(x.kind, x.cause, x.reason) for x in d] == [
        ("deny", "not_live", "not live: P(live) 0.08 < 0.13 (attempt timed out); for the next hour an unlock needs "
                             "9 live frames in a row (policy.after_spoof_k)")]  # 18 not live vs 4, best 0.08; 9 fit in 60 % of 1 s
    q = DoorPolicy(PolicyConfig(k=3, n=5, attempt_timeout_s=1.0))
    no = [reasons.Why("no_match", f"best distance {v:.2f} > 0.40 (alice)", v) for v in (0.61, 0.52, 0.7)] * 7
    d = _observe(q, [FrameResult(i / 15, [FACE], False, 0.5, why=w) for i, w in enumerate(no)])
    assert [x.reason for x in d] == ["attempt timed out: best distance 0.52 > 0.40 (alice)"]


def test_a_person_enrolled_twice_is_denied_as_ambiguous_naming_both():
    """One face enrolled under two names: every frame is within the threshold of both."""
    import numpy as np

    from edge import reasons
    from edge.decision import Identifier

    rng = np.random.default_rng(1)
    face = rng.normal(size=128)
    ident = Identifier(["alice", "alice2"], np.stack([face, face + rng.normal(0, 0.05, 128)]) / np.linalg.norm(face),
                       "cosine", 0.4, 1e-4)
    frames = []
    for i in range(20):
        m = ident.identify(face + rng.normal(0, 0.3, 128))
        assert m.ambiguous and m.person is None
        frames.append(FrameResult(i / 15, [FACE], m.is_match, m.distance, why=reasons.frame(m, None, None),
                                  nearest=m.nearest))
    d = _observe(DoorPolicy(PolicyConfig(k=3, n=5, attempt_timeout_s=1.0)), frames)
    assert len(d) == 1 and d[0].cause == "ambiguous", d
    assert d[0].reason.startswith("ambiguous: alice") and "/ alice" in d[0].reason and d[0].reason.endswith(
        "(attempt timed out)")


def test_frames_that_are_not_judged_say_why():
    small = (300.0, 300.0, 35.0, 35.0)
    p = DoorPolicy(PolicyConfig(min_face_px=40))
    assert p.judging(0.0, 1000.0, [small]) == (None, reasons_small(35, 40))
    assert p.judging(0.0, 1000.0, []) == (None, None)
    assert p.judging(0.0, 1000.0, [FACE, OTHER])[1].text == "crowd of 2 faces"
    p.observe(FrameResult(0.0, [small]), 1000.0)
    assert p.note == "face 35 px < min_face_px 40"
    r = DoorPolicy(PolicyConfig(), LockoutState(0, 1, 1030.0))
    assert r.judging(0.0, 1000.0, [FACE])[1].text == "locked out for 30 s more"
    d = r.observe(FrameResult(0.0, [FACE]), 1000.0)
    assert [(x.kind, x.reason, x.cause) for x in d] == [("locked_out", "locked out: too many failed attempts",
                                                         "locked_out")]


def reasons_small(px, limit):
    from edge import reasons

    return reasons.too_small(px, limit)


def _live_feed(p, pattern, person="alice", t0=0.0):
    """One frame per character at 15 frames/s: L a live match, S a match that is not live."""
    return [x for i, c in enumerate(pattern) for x in p.observe(
        FrameResult(t0 + i / 15, [FACE], True, 0.03, live=c == "L", live_score=0.9 if c == "L" else 0.1,
                    person=person), 1000 + t0 + i / 15)]


def test_a_burst_of_live_frames_among_many_spoofed_ones_does_not_unlock():
    """A replayed screen passes liveness in bursts (BENCHMARKS.md, "Attempts"): five live
    frames in a row after ten that were not live are 5 of 15 -- under min_live_share."""
    p = DoorPolicy(PolicyConfig(attempt_timeout_s=2.0))
    d = _live_feed(p, "S" * 10 + "L" * 5)
    assert d == [] and p.note == ("too few live frames: 33% of the frames matching alice in this attempt "
                                  "looked live, 75% needed (policy.min_live_share)")
    p = DoorPolicy(PolicyConfig(attempt_timeout_s=2.0))  # more live frames: 30 after the 10 would reach 75 %,
    d = _live_feed(p, "S" * 10 + "L" * 25)  # but the attempt times out first (21 of 31): counted, named
    assert [x.kind for x in d] == ["deny"] and d[0].cause == "live_share" and p.state.failed_attempts == 1
    assert d[0].reason.startswith("too few live frames: 67% of the frames matching alice") and \
        d[0].reason.endswith("(attempt timed out)")
    q = DoorPolicy(PolicyConfig(attempt_timeout_s=2.0, min_live_share=0.0))  # off: the burst opens
    assert [x.kind for x in _live_feed(q, "S" * 10 + "L" * 5)] == ["unlock"]


def test_a_resident_with_a_few_frames_not_live_still_unlocks():
    p = DoorPolicy(PolicyConfig())
    d = _live_feed(p, "SLLSLLLLL")  # 7 of 9 live (78 %): the last five are live
    assert [x.kind for x in d] == ["unlock"] and d[0].person == "alice"
    p = DoorPolicy(PolicyConfig())
    d = _live_feed(p, "SSSLLLLLLLLL")  # 3 not live first: 5 in a row at 5 of 8 (62 %), unlocks at 9 of 12
    assert [x.kind for x in d] == ["unlock"] and d[0].frames == 12


def test_the_live_share_counts_the_matched_person_only():
    """An attacker's own live face (matching nobody) does not dilute the spoofed frames of a resident."""
    p = DoorPolicy(PolicyConfig(attempt_timeout_s=3.0))
    d = [x for i in range(20) for x in p.observe(
        FrameResult(i / 15, [FACE], False, 0.6, live=True, live_score=0.9, person=None), 1000 + i / 15)]
    d += _live_feed(p, "S" * 6 + "L" * 5, t0=20 / 15)  # alice: 5 of 11 live; all frames: 25 of 31
    assert d == [] and "45% of the frames matching alice" in p.note


def test_repeated_frames_do_not_count_towards_the_live_share():
    """A bit-identical repeat (a frozen or injected feed) is no evidence of liveness."""
    p = DoorPolicy(PolicyConfig(attempt_timeout_s=3.0))
    frames = [(False, True)] * 10 + [(True, False)] * 25 + [(True, True)] * 5  # (live, fresh)
    d = [x for i, (live, fresh) in enumerate(frames) for x in p.observe(
        FrameResult(i / 15, [FACE], True, 0.03, live=live, live_score=0.9 if live else 0.1, fresh=fresh,
                    person="alice"), 1000 + i / 15)]
    assert d == [] and "33% of the frames matching alice" in p.note  # 5 of 15, the 25 repeats left out



def _spoof_attempts(p, t0, wall0, seconds, live=False, match=True):
    """A photo of alice (a match, not live) in view for ``seconds`` at 15 frames/s."""
    out = []
    for i in range(int(seconds * 15)):
        out += p.observe(FrameResult(t0 + i / 15, [FACE], match, 0.03 if match else 0.6, live=live,
                                     live_score=0.1, person="alice" if match else None), wall0 + i / 15)
    return out


def test_a_replay_soon_after_a_lockout_locks_again_at_once():
    """After a lockout, one attempt that shows alice's face but not live starts the next
    (doubled) backoff: a replay gets one attempt per backoff, not max_failed_attempts."""
    cfg = PolicyConfig(attempt_timeout_s=1.0, max_failed_attempts=3, backoff_s=30, backoff_max_s=600)
    p = DoorPolicy(cfg)
    d = _spoof_attempts(p, 0.0, 1000.0, 4.0)  # three failed attempts, then the lockout
    assert [x.kind for x in d][:4] == ["deny", "deny", "deny", "locked_out"] and p.state.lockouts == 1
    d = _spoof_attempts(p, 40.0, 1040.0, 2.0)  # after the 30 s backoff: one attempt, and locked again
    assert [x.kind for x in d] == ["deny", "locked_out"] and p.state.lockouts == 2
    assert d[1].reason.startswith("locked out again: an enrolled person's face that was not live")
    assert 1099 < p.state.backoff_until < 1103  # 60 s: the backoff doubled
    q = DoorPolicy(replace(cfg, relock_on_spoof=False), LockoutState(0, 1, 1030.0))  # off: three attempts again
    assert [x.kind for x in _spoof_attempts(q, 40.0, 1040.0, 3.5)][:4] == ["deny", "deny", "deny", "locked_out"]


def test_a_restart_during_a_relock_backoff_still_says_why(tmp_path):
    """The relock's own text survives a restart (the state file keeps it); a file
    written before it existed still loads as a plain lockout."""
    from edge.state import StateStore

    cfg = PolicyConfig(attempt_timeout_s=1.0, max_failed_attempts=3, backoff_s=30, backoff_max_s=600)
    store = StateStore(tmp_path / "lockout.json", backoff_max_s=600)
    p = DoorPolicy(cfg, save=store.save)
    _spoof_attempts(p, 0.0, 1000.0, 4.0)
    _spoof_attempts(p, 40.0, 1040.0, 2.0)  # relocked at ~1041 until ~1101 (wall)
    assert p.state.relocked and p.state.lockouts == 2
    saved = store.path.read_text()
    wall = 1050.0
    for text, said in ((saved, "locked out again"), (saved.replace(', "relocked": true', ""), "locked out: too many")):
        store.path.write_text(text)
        state = StateStore(store.path, backoff_max_s=600).load()  # read as a restarted daemon does (now = today)
        state.backoff_until = wall + 50  # the same deadline seen from the test's clock
        d = DoorPolicy(cfg, state).observe(FrameResult(0.0, [FACE]), wall)
        assert [x.kind for x in d] == ["locked_out"] and d[0].reason.startswith(said)


def test_after_a_suspected_spoof_the_door_needs_a_longer_live_run_for_an_hour(tmp_path):
    """One attempt showing alice's face mostly not live makes the door wary: for an hour
    (on the frames' clock, kept over a restart) an unlock needs after_spoof_k live matches
    in a row; an unlock ends it; a stranger's failure does not start it; 0 turns it off."""
    from edge.state import StateStore

    cfg = PolicyConfig(after_spoof_k=15)
    store = StateStore(tmp_path / "lockout.json", backoff_max_s=600)
    p = DoorPolicy(cfg, save=store.save)
    d = _spoof_attempts(p, 0.0, 1000.0, 5.1667)  # one failed 5 s attempt of alice's photo (77 frames)
    assert [x.kind for x in d] == ["deny"] and "15 live frames in a row (policy.after_spoof_k)" in d[0].reason
    assert 4604 < p.state.wary_until < 4607 and '"wary_until": 46' in store.path.read_text()
    d = _live_feed(p, "L" * 14 + "S" + "L" * 20, t0=60.0)  # a resident a minute later: 14 live, 1 not, 20 live
    assert [x.kind for x in d] == ["unlock"] and d[0].matches == 15 and p.state.wary_until == 0.0
    assert [x.kind for x in _live_feed(p, "LLLLL", t0=70.0)] == ["unlock"]  # the unlock ended it: 5 of 5 again
    q = DoorPolicy(cfg, save=store.save)
    _spoof_attempts(q, 0.0, 1000.0, 5.1667)
    restarted = DoorPolicy(cfg, StateStore(store.path, backoff_max_s=600).load())  # restarted 10 minutes on
    restarted.state.wary_until = 1000.0 + 3600.0  # the saved deadline, on the test's clock
    assert _live_feed(restarted, "L" * 14, t0=600.0) == [] and restarted.note == "counts: alice (14 of 15 needed)"
    late = DoorPolicy(cfg, LockoutState(wary_until=1000.0 + 3600.0))
    assert [x.kind for x in _live_feed(late, "LLLLL", t0=3700.0)] == ["unlock"]  # after the hour: 5 of 5
    stranger = DoorPolicy(cfg)
    _spoof_attempts(stranger, 0.0, 1000.0, 5.1667, match=False)
    assert stranger.state.wary_until == 0.0
    off = DoorPolicy(PolicyConfig(after_spoof_k=0))
    _spoof_attempts(off, 0.0, 1000.0, 5.1667)
    assert off.state.wary_until == 0.0 and [x.kind for x in _live_feed(off, "LLLLL", t0=60.0)] == ["unlock"]


def test_a_wary_door_on_a_slow_camera_asks_only_for_what_fits_in_an_attempt():
    """At 2 frames/s 15 in a row would take 7.5 s of a 5 s attempt: a resident could
    never unlock in the wary hour.  It asks for what fits in 60 % of it (6), never under k."""
    p = DoorPolicy(PolicyConfig(after_spoof_k=15))
    frames = [FrameResult(i / 2, [FACE], True, 0.03, live=False, person="alice") for i in range(12)]
    d = _observe(p, frames)  # a photo at 2 frames/s: one failed attempt, the door wary
    assert [x.kind for x in d] == ["deny"] and "6 live frames in a row" in d[0].reason
    resident = [FrameResult(30 + i / 2, [FACE], True, 0.03, live=True, person="alice") for i in range(6)]
    d = _observe(p, resident)
    assert [(x.kind, x.matches) for x in d] == [("unlock", 6)]


def _frames(pattern, t0, dt, person="alice"):
    """One frame per character, ``dt`` apart: L a live match, S a match not live, - no face."""
    return [FrameResult(t0 + i * dt, [] if c == "-" else [FACE], c != "-", 0.03, live=c == "L", person=person)
            for i, c in enumerate(pattern)]


def test_the_wary_rule_is_sized_from_judged_frames_and_says_why(tmp_path):
    """(Found by a review.)  Slow frames without a face before an attempt do not switch the
    wary rule off; a slow judged rate (a Pi) lowers it within the attempt, so a resident
    still gets in; a wall clock stepped forward does not shorten the saved hour; a
    resident refused at a wary door is told why."""
    p = DoorPolicy(PolicyConfig())
    _observe(p, _frames("S" * 78, 0.0, 1 / 15))  # alice's photo: wary, 10 in a row
    d = _observe(p, _frames("-" * 6, 30.0, 0.7) + _frames("LLLLL" + "S" * 20, 34.2, 1 / 15))
    assert [x.kind for x in d] == ["deny"] and p.state.wary_until > 0  # a burst of 5 after a dark spell: no
    q = DoorPolicy(PolicyConfig(), LockoutState(wary_until=1000.0 + 3600.0))  # after a restart, at a 2 frames/s Pi
    d = _observe(q, _frames("-" * 20, 0.0, 0.1) + _frames("LLLLLLSLLLLL", 2.0, 0.5))
    assert [(x.kind, x.matches) for x in d] == [("unlock", 6)]
    saved = []
    r = DoorPolicy(PolicyConfig(), save=lambda st: saved.append(st.wary_until))
    _observe(r, _frames("S" * 78, 0.0, 1 / 15))
    r.observe(FrameResult(600.0, []), 1000.0 + 600.0 + 7200.0)  # ten minutes on, the wall clock 2 h ahead
    assert abs(saved[-1] - (1000.0 + 7200.0 + 3600.0 + 5.1)) < 2  # 50 minutes left, on the new wall clock
    w = DoorPolicy(PolicyConfig())
    _observe(w, _frames("S" * 78, 0.0, 1 / 15))
    d = _observe(w, _frames(("L" * 9 + "S") * 8, 60.0, 1 / 15))  # a resident, 9 frames in 10 live
    assert d and all(x.kind == "deny" and "10 live frames in a row were needed" in x.reason for x in d)


def test_a_stranger_or_a_late_replay_does_not_relock_at_once():
    cfg = PolicyConfig(attempt_timeout_s=1.0, max_failed_attempts=3, backoff_s=30, backoff_max_s=600)
    p = DoorPolicy(cfg, LockoutState(0, 1, 1030.0))  # a lockout ended at 1030
    d = _spoof_attempts(p, 40.0, 1040.0, 2.5, match=False)  # a stranger: counted, no relock
    assert [x.kind for x in d] == ["deny", "deny"] and p.state.lockouts == 1
    p = DoorPolicy(cfg, LockoutState(0, 1, 1030.0))
    d = _spoof_attempts(p, 3700.0, 4700.0, 2.5)  # alice's photo, but over an hour after the backoff's end
    assert [x.kind for x in d] == ["deny", "deny"] and p.state.lockouts == 1
    p = DoorPolicy(cfg, LockoutState(0, 1, 1030.0))  # a resident soon after: 1 frame in 3 not live (every
    d = []  # attempt fails here, k of n never reached), but most of them live: counted, no relock
    for i in range(int(2.5 * 15)):
        d += p.observe(FrameResult(40 + i / 15, [FACE], True, 0.03, live=i % 3 != 0, live_score=0.5,
                                   person="alice"), 1040 + i / 15)
    assert [x.kind for x in d] == ["deny", "deny"] and p.state.lockouts == 1


def test_the_relock_window_runs_on_the_frames_clock():
    """A wall clock stepped forward an hour does not disarm the relock (nor a restart)."""
    cfg = PolicyConfig(attempt_timeout_s=1.0, max_failed_attempts=3, backoff_s=30, backoff_max_s=600)
    p = DoorPolicy(cfg)
    _spoof_attempts(p, 0.0, 1000.0, 4.0)  # locked out at ~1003 (wall) / ~3.1 s (frames)
    d = _spoof_attempts(p, 40.0, 1040.0 + 7200, 2.0)  # 40 s on the frames' clock, the wall clock 2 h ahead
    assert [x.kind for x in d] == ["deny", "locked_out"] and "again at once" in d[0].reason


def test_a_frame_after_the_attempts_time_is_up_does_not_unlock():
    """Four live frames, the camera stalls 5.5 s, one more: five in a row, but outside the
    attempt's 5 s -- a timed-out attempt, not an unlock."""
    p = DoorPolicy(PolicyConfig())
    d = _live_feed(p, "LLLL") + _live_feed(p, "L", t0=5.5)
    assert [(x.kind, x.cause) for x in d] == [("deny", "few")]
