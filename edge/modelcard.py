"""Model cards: the JSON contract next to every shipped ``.tflite``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


@dataclass
class ModelCard:
    path: Path  # the .json
    data: dict

    @property
    def model_path(self) -> Path:
        return self.path.with_suffix(".tflite")

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def sha256(self) -> str:
        return self.data["sha256"]

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


def load_card(path, kind: str | None = None, verify: bool = True) -> ModelCard:
    """Load ``name.json`` (or the card next to ``name.tflite``) and check the model's sha256."""
    path = Path(path)
    if path.suffix == ".tflite":
        path = path.with_suffix(".json")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FacelatchError(f"model card not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FacelatchError(f"model card {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or "kind" not in data or "sha256" not in data:
        raise FacelatchError(f"model card {path} lacks 'kind' or 'sha256'")
    card = ModelCard(path, data)
    if kind and card.kind != kind:
        raise FacelatchError(f"{path.name} is a {card.kind} model, expected {kind}")
    if verify:
        if not card.model_path.is_file():
            raise FacelatchError(f"model file not found: {card.model_path}")
        actual = sha256_file(card.model_path)
        if actual != card.sha256:
            raise FacelatchError(f"{card.model_path.name} does not match its card (sha256 {actual[:12]}… "
                                 f"vs {card.sha256[:12]}…): wrong or corrupted model file")
    return card
