"""The household: enrolled people, each with a name and several embeddings, in ONE
versioned JSON file (never a serialized Python object) bound to the encoder by its
sha256, written atomically with mode 0600, AES-256-GCM encrypted when a key is
given (edge.secrets).  Each person can be disabled and can carry a weekly schedule
(edge.schedule).

A file in the older single-person template format (edge.template) is read as a
household of one person named ``user`` and rewritten as a gallery on first load,
with a message saying so."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import secrets
from .decision import Identifier, household_fmr, person_reference
from . import template as template_mod
from .errors import FacelatchError
from .fileio import read_trusted_file, write_atomic
from .schedule import Schedule
from .template import Template

log = logging.getLogger("facelatch")

FORMAT = "facelatch-gallery"
VERSION = 1
MIGRATED_NAME = "user"  # the one person of a migrated single-person template
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):  # fullmatch: "$" would let "bob\n" through
        raise FacelatchError(f"person name {name!r}: use 1-64 letters, digits, space, '.', '_' or '-'")
    return name


@dataclass
class Person:
    name: str
    template: Template  # embeddings, metric, model binding, enrolled-when, sources
    enabled: bool = True
    schedule: str = ""  # "" = always; see edge.schedule

    def admits(self, wall: float) -> str | None:
        """None if the door may open for this person at ``wall``, else why not."""
        if not self.enabled:
            return f"{self.name} is disabled"
        if not Schedule.parse(self.schedule).allows(wall):
            return f"{self.name} is outside their schedule ({self.schedule})"
        return None


@dataclass
class Gallery:
    model_sha256: str
    metric: str
    people: dict[str, Person] = field(default_factory=dict)
    migrated: str = ""  # set when this was read from a single-person template

    # -- editing ---------------------------------------------------------------------

    def add(self, name: str, embeddings: np.ndarray, sources: list[str], replace: bool = False,
            extend: bool = False) -> Person:
        check_name(name)
        have = self.people.get(name)
        if have is not None and extend:
            have.template.embeddings = np.concatenate([have.template.embeddings, embeddings])
            have.template.sources += sources
            return have
        if have is not None and not replace:
            raise FacelatchError(f"{name} is already enrolled; --force replaces their embeddings, --add adds to them")
        p = Person(name, Template(self.model_sha256, np.asarray(embeddings, np.float32), self.metric, sources=sources))
        if have is not None:
            p.enabled, p.schedule = have.enabled, have.schedule
        self.people[name] = p
        return p

    def person(self, name: str) -> Person:
        try:
            return self.people[name]
        except KeyError:
            known = ", ".join(self.people) or "nobody"
            raise FacelatchError(f"no person named {name!r} is enrolled (enrolled: {known})") from None

    def remove(self, name: str) -> None:
        del self.people[self.person(name).name]

    # -- matching --------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self.people)

    def identifier(self, card, fmr: float) -> Identifier:
        """The shipped identification rule for this household at system-level ``fmr``:
        each comparison at ``household_fmr(fmr, N)``, its threshold from the model card."""
        if not self.people:
            raise FacelatchError("nobody is enrolled (facelatch enroll --name NAME IMG...)")
        return self.identifier_of(self.names, card, fmr)

    def identifier_of(self, names: list[str], card, fmr: float) -> Identifier:
        """The rule among ``names`` only (one name: verification of that person)."""
        people = [self.person(n) for n in names]
        per = household_fmr(fmr, len(people))
        try:
            threshold = card.threshold(per)
        except FacelatchError as e:
            raise FacelatchError(f"a household of {len(people)} at FMR {fmr:g} compares each face at FMR {per:g}: "
                                 f"{e}; raise the FMR (model.fmr, --fmr) or enroll fewer people") from None
        refs = np.stack([person_reference(p.template.embeddings, self.metric) for p in people])
        return Identifier(names, refs, self.metric, threshold, fmr)

    def already_enrolled_as(self, name: str, embeddings, card, fmr: float) -> list[tuple]:
        """Which of ``embeddings`` (about to be enrolled as ``name``) another enrolled
        person already matches at the household's threshold once ``name`` is in (each
        comparison at ``household_fmr(fmr, N)`` for the N people then enrolled):
        (index, that person, distance, threshold) per such embedding.  Enrolled anyway,
        every frame of this face would be ambiguous at the door."""
        others = [n for n in self.names if n != name]
        if not others:
            return []
        people = len(others) + 1
        ident = self.identifier_of(others, card, fmr * len(others) / people)  # per comparison: fmr / people
        out = []
        for i, e in enumerate(embeddings):
            d = ident.distances(e)
            j = int(np.argmin(d))
            if d[j] <= ident.threshold:
                out.append((i, others[j], float(d[j]), ident.threshold))
        return out

    def admits(self, name: str, wall: float) -> str | None:
        p = self.people.get(name)
        return f"{name} is no longer enrolled" if p is None else p.admits(wall)

    # -- file ------------------------------------------------------------------------

    def to_json(self) -> bytes:
        return json.dumps({
            "format": FORMAT, "version": VERSION, "model_sha256": self.model_sha256, "metric": self.metric,
            "people": [{"name": p.name, "enabled": p.enabled, "schedule": p.schedule, "enrolled": p.template.created,
                        "sources": p.template.sources,
                        "embeddings": [[round(float(v), 7) for v in e] for e in p.template.embeddings]}
                       for p in self.people.values()],
        }, indent=1).encode()

    def save(self, path, key: bytes | None = None) -> None:
        """Write atomically, mode 0600; AES-GCM encrypted when a key is given."""
        blob = self.to_json()
        write_atomic(path, secrets.encrypt(blob, key) if key is not None else blob, mode=0o600)


def _parse(d: dict, path: Path) -> Gallery:
    if d.get("version") != VERSION:
        raise FacelatchError(f"gallery {path} has version {d.get('version')!r}; this facelatch reads version {VERSION}")
    try:
        g = Gallery(str(d["model_sha256"]), str(d["metric"]))
        for e in d["people"]:
            emb = np.asarray(e["embeddings"], np.float32)
            if emb.ndim != 2 or len(emb) == 0 or not np.all(np.isfinite(emb)):
                raise ValueError
            name = check_name(str(e["name"]))
            schedule = str(e.get("schedule", ""))
            Schedule.parse(schedule)
            if name in g.people or not isinstance(e.get("enabled", True), bool):
                raise ValueError
            g.people[name] = Person(name, Template(g.model_sha256, emb, g.metric, str(e.get("enrolled", "")),
                                                   [str(s) for s in e.get("sources", [])]),
                                    e.get("enabled", True), schedule)
    except (KeyError, ValueError, TypeError, OverflowError, FacelatchError):
        raise FacelatchError(f"gallery {path} is corrupt (missing or malformed fields); re-enroll") from None
    if len({p.template.embeddings.shape[1] for p in g.people.values()}) > 1:
        raise FacelatchError(f"gallery {path} is corrupt (embeddings of different sizes); re-enroll")
    return g


def load_gallery(path, model_sha256: str | None = None, key: bytes | None = None, migrate: bool = True) -> Gallery:
    """The gallery at ``path``; a single-person template there is migrated (rewritten
    as a gallery, encrypted if it was, unless ``migrate`` is false) with a logged note."""
    path = Path(path)
    raw = read_trusted_file(path, "gallery", f"nobody is enrolled: no gallery at {path}; enroll first (facelatch enroll --name NAME IMG...)")
    encrypted = secrets.is_encrypted(raw)
    if key is not None and not encrypted:  # also a single-person template: no plaintext file with a key
        raise FacelatchError(f"gallery {path} is not encrypted but a key is configured: refusing a file that anyone "
                             "with write access could have replaced; re-enroll with the key")
    plain = secrets.decrypt(raw, key, str(path)) if encrypted else raw
    try:
        d = json.loads(plain)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, an integer too long to convert, nested too deep
        raise FacelatchError(f"gallery {path} is corrupt (not JSON); re-enroll") from None
    fmt = d.get("format") if isinstance(d, dict) else None
    if fmt == template_mod.FORMAT:
        return _migrate(path, model_sha256, key, migrate)
    if fmt != FORMAT:
        raise FacelatchError(f"{path} is not a facelatch gallery")
    g = _parse(d, path)
    if model_sha256 is not None and g.model_sha256 != model_sha256:
        raise FacelatchError(f"gallery {path} was made with another model (sha256 {g.model_sha256[:12]}…, "
                             f"this one is {model_sha256[:12]}…): re-enroll")
    return g


def _migrate(path: Path, model_sha256: str | None, key: bytes | None, write: bool) -> Gallery:
    t = template_mod.load_template(path, model_sha256, key)
    g = Gallery(t.model_sha256, t.metric)
    g.people[MIGRATED_NAME] = Person(MIGRATED_NAME, t)
    note = (f"{path} held a single-person template ({len(t.embeddings)} embeddings, enrolled {t.created}); "
            f"it is now a household of one person named {MIGRATED_NAME!r}")
    if write:
        try:
            g.save(path, key)
            note += " (file rewritten in the gallery format" + (", encrypted)" if key is not None else ")")
        except OSError as e:
            note += f" (could not rewrite the file: {e.strerror}; it is migrated again on each load)"
    g.migrated = note
    log.warning("%s", note)
    return g


def check_gallery_against_card(g: Gallery, card, path) -> None:
    """Every person's embedding size and the metric must be the encoder card's."""
    for p in g.people.values():
        template_mod.check_against_card(p.template, card, path)
