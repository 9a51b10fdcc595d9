"""Why the door did not open, in an installer's words.

Every frame that does not count for an attempt, every deny and every "no decision"
carries a :class:`Why`: a ``kind`` (a stable word for counting and automations) and
a ``text`` a person reads ("not live: P(live) 0.08 < 0.57").  The rules themselves
stay in edge/decision.py (who it is) and edge/policy.py (when the door opens); this
module only says what they concluded."""

from __future__ import annotations

from dataclasses import dataclass

# kind -> what the summary of a replay calls it
LABELS = {
    "no_match": "not recognised", "ambiguous": "ambiguous (close to two people)", "not_live": "not live",
    "repeat": "repeated frames (frozen camera or a still)",
    "live_share": "too few live frames in the attempt", "blink": "no blink", "few": "too few matching frames",
    "crowd": "crowd", "admit": "member refused (disabled or schedule)", "locked_out": "locked out",
    "quality": "face quality", "small": "face too small", "error": "error while judging",
}


@dataclass(frozen=True)
class Why:
    """A cause.  ``rank``: lower is closer to counting (an attempt reports the best
    frame of its most frequent cause: the smallest distance, the highest P(live))."""

    kind: str
    text: str
    rank: float = 0.0


def below(value: float, limit: float, op: str = "<") -> str:
    """``value op limit`` with just enough decimals that the two numbers differ."""
    for digits in (2, 3, 4):
        a, b = f"{value:.{digits}f}", f"{limit:.{digits}f}"
        if a != b:
            break
    return f"{a} {op} {b}"


def too_small(px: float, min_px: float) -> Why:
    return Why("small", f"face {px:.0f} px < min_face_px {min_px:g}")


def poor_quality(reason: str) -> Why:
    """``reason``: the quality gate's first failed measure, e.g. "contrast 5 < 8"."""
    return Why("quality", f"quality: {reason}")


def not_live(score: float, threshold: float) -> Why:
    return Why("not_live", f"not live: P(live) {below(score, threshold)}", -score)


def identity(m) -> Why | None:
    """Why an Identity (edge.decision) names nobody; None when it names someone."""
    if m.person is not None or m.distance is None:
        return None
    if m.ambiguous:
        return Why("ambiguous", f"ambiguous: {m.nearest} {m.distance:.2f} / {m.second} {m.runner_up:.2f}", m.distance)
    return Why("no_match", f"best distance {below(m.distance, m.threshold, '>')} ({m.nearest})", m.distance)


def frame(m, live_score: float | None, live_threshold: float | None) -> Why | None:
    """Why a judged face does not count: its identity first, then liveness (a face that
    matches but is not live is what a photo of a member looks like)."""
    why = identity(m)
    if live_score is not None and live_threshold is not None and live_score < live_threshold:
        live = not_live(live_score, live_threshold)
        return live if why is None else Why(why.kind, f"{why.text}; {live.text}", why.rank)
    return why


REPEAT = Why("repeat", "the same image as the frame before (a frozen camera or a still)")
NO_BLINK = Why("blink", "no blink seen (liveness.require_blink)")
NO_MATCH = Why("no_match", "no match")
NOT_LIVE = Why("not_live", "not live")
JUDGING_FAILED = Why("error", "error while judging this frame: no match (see the log)")


def crowd(n: int) -> Why:
    return Why("crowd", f"crowd of {n} faces")


def few(votes: int, k: int) -> Why:
    return Why("few", f"only {votes} of the {k} matching frames needed from one tracked face")


def live_share(person: str | None, share: float, need: float) -> Why:
    """k of n live matches, but too few of all the attempt's frames matching ``person`` were
    live (percent rounded down: 74.5 % reads 74 %, never "75 % < 75 %")."""
    who = person or "this face"
    return Why("live_share", f"too few live frames: {int(100 * share)}% of the frames matching {who} in this "
                             f"attempt looked live, {int(round(100 * need))}% needed (policy.min_live_share)", -share)


LOCKED_OUT = "locked out: too many failed attempts"
RELOCKED = ("locked out again: an enrolled person's face that was not live, soon after a lockout "
            "(policy.relock_on_spoof)")
RELOCKS = "; the door locks again at once (policy.relock_on_spoof)"  # said on the deny that started it


def wary(k: int) -> str:
    """Said on a deny whose attempt looked like a replay (an enrolled person's face, mostly not live)."""
    return f"; for the next hour an unlock needs {k} live frames in a row (policy.after_spoof_k)"


def wary_held(k: int) -> str:
    """Said on a failed attempt at a wary door (its frames alone need not explain it)."""
    return (f"; {k} live frames in a row were needed: an enrolled person's face that was not live was shown in "
            "the last hour (policy.after_spoof_k)")


def attempt(ending: str, cause: Why) -> str:
    """A failed attempt's reason: how it ended and its cause.  Not being recognised IS
    the timeout ("attempt timed out: best distance 0.52 > 0.40 (alice)"); any other
    cause comes first ("ambiguous: alice 0.41 / bob 0.44 (attempt timed out)")."""
    return f"{ending}: {cause.text}" if cause.kind in ("no_match", "few") else f"{cause.text} ({ending})"


def frame_line(t: float, index: int, px: float | None, live_score: float | None, who: str, note: str,
               decisions=()) -> str:
    """One line of ``facelatch run -v`` and ``facelatch replay`` for a judged frame."""
    cols = [f"{t:8.2f} s", f"#{index:<5d}", f"face {px:4.0f} px" if px is not None else "no face    ",
            f"P(live) {live_score:.2f}" if live_score is not None else " " * 12, f"{who:<18}", note]
    line = "  ".join(cols).rstrip()
    for d in decisions:
        line += f"\n{'':>10}  -> {d.kind.upper()}" + (f" {d.person}" if d.person else "") + f": {d.reason}"
    return line
