"""A person's weekly schedule: when the door may open for them.

Written as ``"mon-fri 07:00-19:00"``; several rules joined by ``;``
(``"mon-fri 07:00-19:00; sat,sun 09:00-12:00"``).  Days are a range (``mon-fri``),
a list (``sat,sun``) or ``daily``; a time range whose end is before its start runs
past midnight (``fri 22:00-02:00`` covers Friday 22:00 to Saturday 02:00).  The
empty string means "always".  Times are the device's local time."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .errors import FacelatchError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(r"^\s*(?P<days>[a-z,\-]+)\s+(?P<h0>\d{1,2}):(?P<m0>\d{2})\s*-\s*(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*$")


def _days(spec: str, text: str) -> frozenset[int]:
    if spec == "daily":
        return frozenset(range(7))
    out = set()
    for part in spec.split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e in DAYS for e in ends):
            raise FacelatchError(f"schedule {text!r}: {part!r} is not a day or day range (mon..sun, e.g. mon-fri)")
        a, b = DAYS.index(ends[0]), DAYS.index(ends[-1])
        out.update(DAYS.index(DAYS[(a + i) % 7]) for i in range((b - a) % 7 + 1))
    return frozenset(out)


@dataclass(frozen=True)
class Schedule:
    text: str
    rules: tuple  # (days, start_minute, end_minute)

    @classmethod
    def parse(cls, text: str) -> "Schedule":
        text = text.strip().lower()
        rules = []
        for rule in filter(None, (r.strip() for r in text.split(";"))):
            m = _RULE.match(rule)
            if not m:
                raise FacelatchError(f"schedule {text!r}: {rule!r} is not 'DAYS HH:MM-HH:MM' (e.g. mon-fri 07:00-19:00)")
            h0, m0, h1, m1 = (int(m[k]) for k in ("h0", "m0", "h1", "m1"))
            if h0 > 24 or h1 > 24 or m0 > 59 or m1 > 59 or (h0 * 60 + m0) > 1440 or (h1 * 60 + m1) > 1440:
                raise FacelatchError(f"schedule {text!r}: {rule!r} has an impossible time")
            if h0 * 60 + m0 == h1 * 60 + m1:
                raise FacelatchError(f"schedule {text!r}: {rule!r} is an empty time range")
            rules.append((_days(m["days"], text), h0 * 60 + m0, h1 * 60 + m1))
        return cls(text, tuple(rules))

    def allows(self, wall: float) -> bool:
        """Is the wall-clock time ``wall`` (seconds since the epoch) inside the schedule?"""
        if not self.rules:
            return True
        t = time.localtime(wall)
        day, minute = t.tm_wday, t.tm_hour * 60 + t.tm_min
        for days, start, end in self.rules:
            if start < end and day in days and start <= minute < end:
                return True
            if start > end and ((day in days and minute >= start) or ((day - 1) % 7 in days and minute < end)):
                return True
        return False
