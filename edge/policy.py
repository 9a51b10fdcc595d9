"""The door's decision policy — the one file to read to know when the door opens.

Vocabulary
- *frame*: one camera image, reduced by the pipeline to the faces in it and, for
  the largest face big enough to judge, whether it matches the enrolled template
  at the configured false-match rate (and, when liveness is on, whether it is live).
- *attempt*: the time a judged face is in view, counted by the clock, not by the
  track: it starts at the first judged frame (a face of at least ``min_face_px``)
  and lasts while faces stay in view (gaps up to ``lost_after_s``), even when the
  tracked box jumps to another place (a new track only restarts the k-of-n window
  and the blink check).
  It is accepted when at least ``k`` of the last ``n`` frames of one tracked face
  match, are live and are *fresh* (not a bit-identical repeat of the frame before:
  a real camera never repeats a frame; see edge/temporal.py), and when at least
  ``min_live_share`` of all the attempt's frames that matched that person looked
  live (a replayed screen passes liveness in bursts, among many frames that fail;
  a resident's frames mostly pass: BENCHMARKS.md, "Attempts"); with ``require_blink``
  the attempt must also have shown a blink (edge.temporal.blinked over its
  eye-aspect ratios).  It **fails**, and is counted and audited, when it times out
  (``attempt_timeout_s`` in view), and also when it ends early after any judged
  frame: the face leaves for more than ``lost_after_s``, or a crowd interrupts it.
  So a stranger cannot reset the count by shifting position (new track) or by
  stepping out of view: every ``attempt_timeout_s`` in view, and every
  appearance, costs one failed attempt.

Rules, in order, for every frame:
1. Backoff: after ``max_failed_attempts`` failed attempts in a row the door ignores
   faces until the backoff deadline (``backoff_s``, doubling with each further
   lockout, at most ``backoff_max_s``).  Counter and deadline are persisted so a
   restart does not reset them.  With ``relock_on_spoof``, within an hour of a
   lockout's end (on the frames' clock) and before any unlock, one failed attempt
   that matched an enrolled person in k frames, at least half of its matching frames
   not live (what a replayed screen or photo of them does), starts the next backoff
   at once: a replay gets one attempt per backoff instead of ``max_failed_attempts``
   (a stranger's failures, and a resident's whose frames mostly pass, count as before).
   The same kind of attempt (a *suspected spoof*) also makes the door wary: for an
   hour (on the frames' clock, persisted) and until an unlock, an attempt is accepted
   only on ``after_spoof_k`` consecutive live matching frames (k = n = after_spoof_k)
   instead of k of n: a replayed screen passes liveness in short bursts.  A slow door
   asks for fewer (at most what fits in 60 % of ``attempt_timeout_s`` at the rate it
   judges faces, never fewer than k), so that a resident can still unlock in the wary hour.
2. Cooldown: for ``unlock_cooldown_s`` after an unlock, faces are ignored.
3. Faces smaller than ``min_face_px`` are ignored; no face left -> no attempt (the
   current attempt ends, and fails, once the face has been gone for ``lost_after_s``).
4. More than one face in view -> deny at once (tailgating), unless
   ``multiple_faces = "largest"``; such a deny is recorded once per crowded
   scene (not every frame) and not counted as a failed attempt, but an attempt
   it interrupts is.
5. Accept (k of the last n frames are live matches of the SAME person, and at least
   ``min_live_share`` of the attempt's frames matching that person were live) -> unlock,
   reset the failure counter, start the cooldown -- unless ``admit`` (the household's
   enabled flags and schedules) refuses that person now: then deny, naming them, with
   a cooldown, not counted as a failed attempt.
Anything that goes wrong in the pipeline reaches this file as "no match": the
policy can only unlock on positive evidence (fail-secure).

Every deny names its cause (edge/reasons.py): a failed attempt reports the most
frequent reason its frames did not count, with the best frame of that reason
("attempt timed out: best distance 0.52 > 0.40 (alice)", "not live: P(live) 0.08 <
0.13 (face left before acceptance)"); ``note`` says what became of the last frame.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from . import reasons
from .geometry import iou
from .reasons import Why
from .temporal import blinked

MAX_BACKOFF_DOUBLINGS = 32  # 30 s * 2**32 is far beyond any backoff_max_s
RELOCK_WINDOW_S = 3600.0  # relock_on_spoof is armed this long after a lockout's end (until an unlock)
RELOCK_SPOOF_SHARE = 0.5  # ... for an attempt at least this share of whose matching frames were not live
WARY_S = 3600.0  # after a suspected spoof, after_spoof_k applies this long (until an unlock)
WARY_FIT = 0.6  # ... needing at most the frames that fit in this share of attempt_timeout_s


@dataclass(frozen=True)
class PolicyConfig:
    k: int = 5
    n: int = 5
    min_face_px: float = 80.0
    multiple_faces: str = "deny"  # or "largest"
    attempt_timeout_s: float = 5.0
    lost_after_s: float = 1.0
    track_iou: float = 0.3
    max_failed_attempts: int = 5
    backoff_s: float = 30.0
    backoff_max_s: float = 600.0
    unlock_cooldown_s: float = 5.0
    min_live_share: float = 0.75  # of the attempt's frames matching the person, the share that must look live
    relock_on_spoof: bool = True  # soon after a lockout, one attempt showing a member's face not live locks again
    after_spoof_k: int = 10  # after a suspected spoof, for an hour: this many live matches in a row (0: off)


@dataclass
class FrameResult:
    """What the pipeline says about one frame."""

    t: float  # seconds (monotonic within a run, wall-clock for persisted deadlines is separate)
    boxes: list  # (x, y, w, h) of every face found
    match: bool = False  # the largest face matches the template
    distance: float | None = None
    live: bool | None = None  # None: liveness off
    live_score: float | None = None
    fresh: bool = True  # not a bit-identical repeat of the previous frame's face patch
    eye_ratio: float | None = None  # eye aspect ratio (edge.temporal), for the blink check
    person: str | None = None  # who matched (None: nobody, or a single-template caller)
    why: Why | None = None  # why the judged face does not count (edge.reasons), set by the pipeline's caller
    nearest: str | None = None  # the nearest enrolled person, matched or not
    face_px: float | None = None  # the face judged "no decision" (its box is not passed on: not a face to count)


@dataclass
class Decision:
    """One audited outcome."""

    kind: str  # "unlock" | "deny" | "locked_out"
    reason: str
    frames: int = 0
    matches: int = 0
    best_distance: float | None = None
    face_px: float | None = None
    live_score: float | None = None
    failed_attempts: int = 0
    backoff_until: float | None = None  # wall clock
    person: str | None = None  # who was recognised (unlock, or a refused member)
    spoof_frames: int = 0  # frames that matched but were judged not live
    claimed: str | None = None  # a failed attempt whose face matched this person in k frames, but not live
    cause: str | None = None  # the reason's kind (edge.reasons: "no_match", "not_live", "crowd", ...)


@dataclass
class LockoutState:
    """Persisted between runs (see edge.state)."""

    failed_attempts: int = 0
    lockouts: int = 0
    backoff_until: float = 0.0  # wall-clock seconds
    relocked: bool = False  # the last lockout came from relock_on_spoof (its text survives a restart)
    wary_until: float = 0.0  # wall clock: after_spoof_k applies until then (a suspected spoof's hour)


@dataclass
class _Attempt:
    box: np.ndarray
    started: float
    last_seen: float
    window: deque = field(default_factory=deque)
    need: int = 1  # live matches needed in the window (k; after_spoof_k while the door is wary)
    frames: int = 0
    best_distance: float | None = None
    face_px: float = 0.0
    live_score: float | None = None
    eye_ratios: list = field(default_factory=list)
    spoof_frames: int = 0
    spoofed: Counter = field(default_factory=Counter)  # person -> frames that matched them but were not live
    matched: Counter = field(default_factory=Counter)  # person -> fresh frames that matched them, liveness judged
    share_block: Why | None = None  # k of n were live matches, but under min_live_share of all the matches were
    whys: Counter = field(default_factory=Counter)  # reason kind -> frames that did not count for it
    best_why: dict = field(default_factory=dict)  # reason kind -> its frame closest to counting

    def note_why(self, why: Why) -> None:
        self.whys[why.kind] += 1
        have = self.best_why.get(why.kind)
        if have is None or why.rank < have.rank:
            self.best_why[why.kind] = why

    def cause(self, k: int) -> Why:
        """Why this attempt did not unlock: the most frequent reason of its frames
        (its best frame), else too few matching frames in one track, else no blink --
        unless k of n were reached but too few of all its matching frames were live."""
        if self.share_block is not None:  # k of n were reached, the share of live frames was not
            return self.share_block
        if self.whys:
            return self.best_why[self.whys.most_common(1)[0][0]]
        votes = self.votes()[1]
        return reasons.few(votes, k) if votes < k else reasons.NO_BLINK

    def live_share(self, person: str) -> float | None:
        """The share of this attempt's frames matching ``person`` that looked live (None:
        liveness not judged)."""
        n = self.matched[person]
        return (n - self.spoofed[person]) / n if n else None

    def votes(self) -> tuple[str | None, int]:
        """The person with the most live matching frames in the window, and that count."""
        c = Counter(p for p in self.window if p is not None)
        return c.most_common(1)[0] if c else (None, 0)


def _corners(box) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], float)


class DoorPolicy:
    """``observe(frame, wall_time) -> [Decision]``; ``save`` is called with the
    LockoutState whenever it changes; ``admit(person, wall)`` says why a recognised
    person may not enter now (None: they may)."""

    def __init__(self, config: PolicyConfig, state: LockoutState | None = None, save=lambda s: None,
                 admit=lambda person, wall: None, require_blink: bool = False):
        if not 1 <= config.k <= config.n:
            raise ValueError("policy needs 1 <= k <= n")
        self.c = config
        self.require_blink = require_blink
        self.state = state or LockoutState()
        self._save = save
        self._admit = admit
        self.attempt: _Attempt | None = None
        self.cooldown_until = -np.inf  # monotonic
        self._backoff_t: float | None = None  # the backoff's end on the frames' clock t (None: not read yet)
        self._t = 0.0  # t of the frame last looked at
        self._locked_reported = False
        self._crowded = False  # a multiple-faces deny was already recorded for this scene
        self._relock_end_t: float | None = None  # relock_on_spoof is armed until then (frames' clock t)
        self._wary_end_t = -np.inf  # after_spoof_k applies until then (frames' clock t)
        self._intervals: deque = deque([1 / 15], maxlen=9)  # the last intervals between judged frames of an attempt
        self.note = ""  # what became of the last observed frame, in words (facelatch run -v, replay)

    # -- helpers -------------------------------------------------------------------

    def _end_attempt(self, reason: str, wall: float) -> list[Decision]:
        a, self.attempt = self.attempt, None
        if a is None or a.frames == 0:
            return []
        return [self._fail(a, reason, wall)]  # ended early after a judged frame: counted

    def _fail(self, a: _Attempt, ending: str, wall: float) -> Decision:
        s = self.state
        s.failed_attempts += 1
        claimed, n = a.spoofed.most_common(1)[0] if a.spoofed else (None, 0)
        # within an hour of a lockout, an attempt that showed an enrolled person's face, mostly not live, locks
        # again at once: a replay gets one attempt per backoff, not max_failed_attempts (a stranger's failures,
        # and a resident's whose frames mostly pass, count as before)
        spoof = n >= self.c.k and n >= RELOCK_SPOOF_SHARE * a.matched[claimed]  # a suspected spoof
        relocks = (self.c.relock_on_spoof and s.lockouts > 0 and spoof
                   and self._relock_end_t is not None and self._t < self._relock_end_t)
        wary = spoof and self.c.after_spoof_k > 0
        if wary:
            self._wary_end_t, s.wary_until = self._t + WARY_S, wall + WARY_S
        if s.failed_attempts >= self.c.max_failed_attempts or relocks:
            s.lockouts += 1
            doublings = min(s.lockouts - 1, MAX_BACKOFF_DOUBLINGS)  # 2 ** 1023 would overflow a float
            delay = min(self.c.backoff_s * 2 ** doublings, self.c.backoff_max_s)
            s.backoff_until, self._backoff_t = wall + delay, self._t + delay
            self._relock_end_t = self._backoff_t + RELOCK_WINDOW_S
            s.failed_attempts, s.relocked = 0, relocks
            self._locked_reported = False
        self._save(s)
        cause = a.cause(a.need)
        text = reasons.attempt(ending, cause) + (reasons.RELOCKS if relocks else "")
        need = self._wary_need() if wary else 0
        if need > self.c.k:
            text += reasons.wary(need)
        elif a.need > self.c.k:  # this attempt was held to the wary rule: say so
            text += reasons.wary_held(a.need)
        return Decision("deny", text, a.frames, a.votes()[1], a.best_distance, a.face_px,
                        a.live_score, s.failed_attempts, s.backoff_until if s.backoff_until > wall else None,
                        spoof_frames=a.spoof_frames, claimed=claimed if n >= self.c.k and claimed else None,
                        cause=cause.kind)

    def finish(self, wall: float) -> list[Decision]:
        """The frames have ended (a replayed recording): an attempt in progress ends as
        when the face leaves -- failed, counted, with its cause."""
        return self._end_attempt("recording ended before a decision", wall)

    # -- the rule ------------------------------------------------------------------

    def _backed_off(self, t: float, wall: float) -> bool:
        """In a backoff, for a frame at camera time ``t`` and wall time ``wall``.

        Within a run the backoff runs on the frames' clock ``t`` (monotonic for a
        camera), like the cooldown: a wall clock stepped back a day does not lock the
        door for a day, one stepped forward does not end a backoff early.  The saved
        wall-clock deadline (it must survive a restart) is trusted only up to
        ``backoff_max_s`` ahead, and rewritten when the wall clock has stepped."""
        s = self.state
        self._t = t
        if self._backoff_t is None:  # the first frame of this run
            self._backoff_t = t + min(max(s.backoff_until - wall, 0.0), self.c.backoff_max_s)
            if s.lockouts:  # after a restart: armed for what is left of the hour after the saved backoff's end
                self._relock_end_t = self._backoff_t + max(0.0, RELOCK_WINDOW_S - max(wall - s.backoff_until, 0.0))
            if 0 < s.wary_until and wall < s.wary_until:  # after a restart: what is left of a wary hour
                self._wary_end_t = t + min(s.wary_until - wall, WARY_S)
        left = max(0.0, min(self._backoff_t - t, self.c.backoff_max_s))
        if (left > 0 or s.backoff_until > wall) and abs(s.backoff_until - (wall + left)) > 1.0:
            s.backoff_until = wall + left  # the wall clock stepped: what a restart reads stays true
            self._save(s)
        wary = min(self._wary_end_t - t, WARY_S)
        if wary > 0 and abs(s.wary_until - (wall + wary)) > 1.0:
            s.wary_until = wall + wary  # likewise for the wary hour
            self._save(s)
        return left > 0

    def _wary_need(self) -> int:
        """Live matches in a row an attempt needs while the door is wary: after_spoof_k,
        at most what this camera delivers in WARY_FIT of an attempt, never under k.  The
        rate is that of judged frames (the median of the last intervals between two
        frames of one attempt): frames without a face, or before it, do not set it."""
        fits = int(WARY_FIT * self.c.attempt_timeout_s / max(float(np.median(self._intervals)), 1e-3) + 1e-6)
        return max(self.c.k, min(self.c.after_spoof_k, fits))

    def _window(self, need: int, frames=()) -> deque:
        """The frames an attempt counts votes over: the last n (k of n), or the last
        ``need`` when a wary door needs more than k in a row."""
        return deque(frames, maxlen=need if need > self.c.k else self.c.n)

    def _big_enough(self, box) -> bool:
        return max(box[2], box[3]) >= self.c.min_face_px

    def judged(self, t: float, wall: float, boxes) -> int | None:
        """Which of these faces (an index into ``boxes``), in a frame at camera time ``t``
        and wall time ``wall``, can count for an attempt, so that the door must know who
        it is and whether it is live: the largest of those big enough (rule 3, as
        ``observe`` picks it).  None during a backoff or the cooldown (rules 1, 2), when
        no face is big enough (3) or when several are and crowds are denied (4):
        ``observe`` then needs only the boxes, and on a Pi detection alone is a fraction
        of the work."""
        return self.judging(t, wall, boxes)[0]

    def judging(self, t: float, wall: float, boxes) -> tuple[int | None, Why | None]:
        """``judged``, and when no face is judged, why not (None without faces)."""
        if self._backed_off(t, wall):
            left = self._backoff_t - t
            return None, Why("locked_out", f"locked out for {left:.0f} s more") if boxes else None
        if t < self.cooldown_until:
            left = self.cooldown_until - t
            return None, Why("cooldown", f"cooldown after an unlock ({left:.1f} s left)") if boxes else None
        sized = [i for i, b in enumerate(boxes) if self._big_enough(b)]
        if not sized:
            return None, reasons.too_small(max(max(b[2], b[3]) for b in boxes), self.c.min_face_px) if boxes else None
        if len(sized) > 1 and self.c.multiple_faces == "deny":
            return None, reasons.crowd(len(sized))
        return max(sized, key=lambda i: boxes[i][2] * boxes[i][3]), None

    def observe(self, f: FrameResult, wall: float) -> list[Decision]:
        c, out = self.c, []
        self.note = (self.judging(f.t, wall, f.boxes)[1] or f.why or Why("", "")).text
        if self._backed_off(f.t, wall):  # 1. backoff
            self.attempt = None
            if not self._locked_reported and f.boxes:
                self._locked_reported = True
                return [Decision("locked_out", reasons.RELOCKED if self.state.relocked else reasons.LOCKED_OUT,
                                 backoff_until=self.state.backoff_until, failed_attempts=self.state.failed_attempts,
                                 cause="locked_out")]
            return []
        if f.t < self.cooldown_until:  # 2. cooldown
            self.attempt = None
            return []
        boxes = [b for b in f.boxes if self._big_enough(b)]  # 3. size
        if len(boxes) <= 1:
            self._crowded = False
        if not boxes:
            if self.attempt is not None and f.t - self.attempt.last_seen > c.lost_after_s:
                out += self._end_attempt("face left before acceptance", wall)
            return out
        if len(boxes) > 1 and c.multiple_faces == "deny":  # 4. tailgating
            out += self._end_attempt("attempt interrupted by a crowd", wall)
            if self._crowded:
                return out
            self._crowded = True
            return out + [Decision("deny", reasons.crowd(len(boxes)).text,
                                   face_px=float(max(max(b[2], b[3]) for b in boxes)), cause="crowd")]
        box = _corners(max(boxes, key=lambda b: b[2] * b[3]))
        a = self.attempt
        if a is not None and iou(a.box, box[None])[0] < c.track_iou:  # another track: the clock runs on
            a.window.clear()  # k of n and the blink must come from one tracked face
            a.eye_ratios.clear()
        if a is None:
            need = self._wary_need() if f.t < self._wary_end_t else c.k  # consecutive, while wary
            a = self.attempt = _Attempt(box, f.t, f.t, self._window(need), need=need)
        if f.t - a.started > c.attempt_timeout_s:  # its time is up: a frame this late is judged
            self.attempt = None  # with it but cannot count (a camera that stalls mid-attempt does not stretch it)
            a.frames += 1
            return out + [self._fail(a, "attempt timed out", wall)]
        if a.frames and f.t > a.last_seen:
            self._intervals.append(min(f.t - a.last_seen, 1.0))
            if a.need > c.k and (need := self._wary_need()) < a.need:  # a slower camera than measured so far
                a.need, a.window = need, self._window(need, a.window)
        a.box, a.last_seen = box, f.t
        ok = bool(f.match) and (f.live is None or bool(f.live)) and f.fresh
        a.window.append((f.person or "") if ok else None)
        if not ok:
            why = reasons.REPEAT if not f.fresh else f.why or (reasons.NO_MATCH if not f.match else reasons.NOT_LIVE)
            a.note_why(why)
            self.note = why.text
        a.eye_ratios.append(f.eye_ratio)
        if f.match and f.live is not None and f.fresh:  # a repeated frame is no evidence either way
            a.matched[f.person or ""] += 1
            if not f.live:
                a.spoof_frames += 1
                a.spoofed[f.person or ""] += 1
        a.frames += 1
        a.face_px = float(max(box[2] - box[0], box[3] - box[1]))
        if f.distance is not None and (a.best_distance is None or f.distance < a.best_distance):
            a.best_distance = f.distance
        if f.live_score is not None:
            a.live_score = f.live_score
        person, votes = a.votes()
        if ok:
            self.note = f"counts: {f.person or 'match'} ({votes} of {a.need} needed)"
        share = a.live_share(person or "") if votes >= a.need else None
        if share is not None and share < c.min_live_share:  # 5. not yet: too many of its frames were not live
            a.share_block = reasons.live_share(person or None, share, c.min_live_share)
            self.note = a.share_block.text
        elif votes >= a.need and (not self.require_blink or blinked(a.eye_ratios)):  # 5. accept
            self.attempt = None
            self.cooldown_until = f.t + c.unlock_cooldown_s
            refused = self._admit(person, wall) if person else None
            if refused:
                return out + [Decision("deny", refused, a.frames, votes, a.best_distance, a.face_px, a.live_score,
                                       self.state.failed_attempts, person=person, cause="admit")]
            if self.state.failed_attempts:
                self.state.failed_attempts = 0
            self.state.lockouts = 0
            self.state.wary_until, self._wary_end_t = 0.0, -np.inf
            self._save(self.state)
            return out + [Decision("unlock", f"{votes} of the last {len(a.window)} frames matched",
                                   a.frames, votes, a.best_distance, a.face_px, a.live_score, person=person or None)]
        return out
