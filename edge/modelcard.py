"""Model cards: the JSON contract next to every shipped ``.tflite``."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import FacelatchError
from .runtime import sha256_file


def models_dir() -> Path:
    """Where the shipped models live: $FACELATCH_MODELS, else the installed package
    data (``edge.models``, built from the repository's ``models/``), else the
    repository checkout."""
    env = os.environ.get("FACELATCH_MODELS")
    if env:
        return Path(env)
    try:
        installed = Path(str(resources.files("edge.models")))
        if installed.is_dir() and any(installed.glob("*.json")):
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "models"


ENCODER_KINDS = ("encoder", "fusion")  # what the pipeline accepts as its encoder


@dataclass
class ModelCard:
    path: Path  # the .json
    data: dict
    members: list = field(default_factory=list)  # a fused card's (member ModelCard, weight) pairs

    @property
    def model_path(self) -> Path:
        return self.path.with_suffix(".tflite")

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def sha256(self) -> str:
        return self.data["sha256"]

    @property
    def cross_arch_tolerance(self) -> float | None:
        """How far this model's scores may differ between machines (x86-64 vs arm64, other
        library builds), as measured and recorded in the card with its cause; None if not
        recorded (then the cross-architecture check fails).  A fused card's distance is
        the weighted sum of its members' (tests/test_fusion.py), so its tolerance is the
        weighted sum of theirs."""
        if self.members:
            tolerances = [m.cross_arch_tolerance for m, _ in self.members]
            return None if None in tolerances else sum(w * t for (_, w), t in zip(self.members, tolerances))
        entry = self.data.get("cross_arch")
        return float(entry["tolerance"]) if isinstance(entry, dict) and "tolerance" in entry else None

    def thresholds(self) -> list[dict]:
        return sorted(self.data.get("thresholds", []), key=lambda t: t["fmr"])

    def threshold(self, fmr: float, exact: bool = False) -> float:
        """The distance threshold for a target false-match rate: the entry for exactly
        ``fmr``, else (unless ``exact``) the nearest stricter entry, never a looser one."""
        table = self.thresholds()
        if not table:
            raise FacelatchError(f"model card {self.path.name} has no thresholds")
        have = ", ".join(f"{t['fmr']:g}" for t in table)
        usable = [t for t in table if t["fmr"] <= fmr * (1 + 1e-9)]
        if exact and not (usable and usable[-1]["fmr"] >= fmr * (1 - 1e-9)):
            raise FacelatchError(f"FMR {fmr:g} is not a row of {self.path.name}; use one of: {have}")
        if not usable:
            raise FacelatchError(f"no threshold for FMR {fmr:g} in {self.path.name} (measured: {have})")
        return float(usable[-1]["distance"])


def fusion_identity(members: list[dict]) -> str:
    """What a fused card's ``sha256`` is (and templates bind to): the sha256 of its
    members' names, model sha256s and weights, in order, as canonical JSON."""
    canon = [{"name": m["name"], "sha256": m["sha256"], "weight": m["weight"]} for m in members]
    return hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _load_members(card: ModelCard, verify: bool) -> list:
    """A fused card's member cards (next to it), each checked against the sha256 the
    fusion was measured with, and the card's own sha256 against its members."""
    name = card.path.name
    members = card.data.get("members")
    ok = isinstance(members, list) and len(members) >= 2 and all(
        isinstance(m, dict) and isinstance(m.get("name"), str) and "/" not in m["name"] and isinstance(m.get("sha256"), str)
        and isinstance(m.get("weight"), (int, float)) and not isinstance(m.get("weight"), bool) for m in members)
    if not ok:
        raise FacelatchError(f"fused card {name}: 'members' must list at least two encoder cards, each with "
                             f"name, sha256 and weight")
    weights = [float(m["weight"]) for m in members]
    if not all(0 < w < 1 for w in weights) or abs(sum(weights) - 1) > 1e-9:
        raise FacelatchError(f"fused card {name}: member weights {weights} must be in (0, 1) and sum to 1")
    if fusion_identity(members) != card.sha256:
        raise FacelatchError(f"fused card {name}: its sha256 does not match its members and weights "
                             f"(the card was edited after it was measured); rebuild it with facelatch-convert fuse")
    out = []
    for m, w in zip(members, weights):
        try:
            member = load_card(card.path.parent / f"{m['name']}.json", kind="encoder", verify=verify)
        except FacelatchError as e:
            raise FacelatchError(f"fused card {name}, member {m['name']}: {e}") from None
        if member.sha256 != m["sha256"]:
            raise FacelatchError(f"fused card {name} was measured with {m['name']} sha256 {m['sha256'][:12]}…, "
                                 f"but that card's model is {member.sha256[:12]}…: re-measure the fusion")
        emb = member.data.get("embedding", {})
        if emb.get("metric") != "cosine" or not emb.get("normalize"):
            raise FacelatchError(f"fused card {name}, member {m['name']}: fusion needs unit-length cosine "
                                 f"embeddings, the card says {emb.get('metric')!r}")
        out.append((member, w))
    return out


def load_card(path, kind: str | tuple[str, ...] | None = None, verify: bool = True) -> ModelCard:
    """Load ``name.json`` (or the card next to ``name.tflite``) and check the model's sha256
    (a fused card: its members' cards and models, see ``_load_members``).  ``kind``: the
    kind (or kinds) the caller accepts."""
    path = Path(path)
    if path.suffix == ".tflite":
        path = path.with_suffix(".json")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FacelatchError(f"model card not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FacelatchError(f"model card {path} is not valid JSON ({e})") from None
    except (ValueError, RecursionError) as e:  # an integer of > 4300 digits, nesting too deep for json
        raise FacelatchError(f"model card {path} is not a usable JSON file ({e.__class__.__name__})") from None
    if not isinstance(data, dict) or "kind" not in data or "sha256" not in data:
        raise FacelatchError(f"model card {path} lacks 'kind' or 'sha256'")
    card = ModelCard(path, data)
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds and card.kind not in kinds:
        raise FacelatchError(f"{path.name} is a {card.kind} model, expected {' or '.join(kinds)}")
    if card.kind == "fusion":
        card.members = _load_members(card, verify)
    elif verify:
        if not card.model_path.is_file():
            raise FacelatchError(f"model file not found: {card.model_path}")
        actual = sha256_file(card.model_path)
        if actual != card.sha256:
            raise FacelatchError(f"{card.model_path.name} does not match its card (sha256 {actual[:12]}… "
                                 f"vs {card.sha256[:12]}…): wrong or corrupted model file")
    return card
