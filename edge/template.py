"""The enrolled user's template: a versioned JSON file (never a serialized Python object), bound to the
encoder that produced it by the model's sha256, written atomically with mode 0600."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import secrets
from .errors import FacelatchError
from .fileio import read_trusted_file, write_atomic

FORMAT = "facelatch-template"
VERSION = 1


def default_template_path() -> Path:
    env = os.environ.get("FACELATCH_TEMPLATE")
    if env:
        return Path(env)
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "facelatch" / "template.json"


@dataclass
class Template:
    model_sha256: str
    embeddings: np.ndarray  # (n, dim)
    metric: str
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    sources: list[str] = field(default_factory=list)

    @property
    def reference(self) -> np.ndarray:
        """The vector probes are compared with: the mean of the enrolled embeddings
        (re-normalized for the cosine metric)."""
        mean = self.embeddings.mean(0)
        if self.metric == "cosine":
            mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return mean

    def to_json(self) -> bytes:
        return json.dumps({
            "format": FORMAT, "version": VERSION, "model_sha256": self.model_sha256, "metric": self.metric,
            "created": self.created, "sources": self.sources,
            "embeddings": [[round(float(v), 7) for v in e] for e in self.embeddings],
        }, indent=1).encode()

    def save(self, path, key: bytes | None = None) -> None:
        """Write atomically, mode 0600; AES-GCM encrypted when a key is given."""
        blob = self.to_json()
        write_atomic(path, secrets.encrypt(blob, key) if key is not None else blob, mode=0o600)


def load_template(path, model_sha256: str | None = None, key: bytes | None = None) -> Template:
    path = Path(path)
    raw = read_trusted_file(path, "template", f"no template at {path}: enroll first (facelatch enroll IMG... --template {path})")
    if secrets.is_encrypted(raw):
        raw = secrets.decrypt(raw, key, str(path))
    try:
        d = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, an integer too long to convert, nested too deep
        raise FacelatchError(f"template {path} is corrupt (not JSON); re-enroll") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise FacelatchError(f"{path} is not a facelatch template")
    if d.get("version") != VERSION:
        raise FacelatchError(f"template {path} has version {d.get('version')!r}; this facelatch reads version {VERSION}")
    try:
        emb = np.asarray(d["embeddings"], np.float32)
        t = Template(str(d["model_sha256"]), emb, str(d["metric"]), str(d.get("created", "")), list(d.get("sources", [])))
    except (KeyError, ValueError, TypeError, OverflowError):
        raise FacelatchError(f"template {path} is corrupt (missing or malformed fields); re-enroll") from None
    if emb.ndim != 2 or len(emb) == 0 or not np.all(np.isfinite(emb)):
        raise FacelatchError(f"template {path} is corrupt (bad embeddings); re-enroll")
    if model_sha256 is not None and t.model_sha256 != model_sha256:
        raise FacelatchError(f"template {path} was made with another model (sha256 {t.model_sha256[:12]}…, "
                             f"this one is {model_sha256[:12]}…): re-enroll")
    return t


def require_encrypted(path, key: bytes | None) -> None:
    """With a key configured only an encrypted template may load: otherwise whoever can
    write the file could enroll themselves."""
    if key is None:
        return
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return  # load_template says what is wrong with the file
    if not secrets.is_encrypted(head):
        raise FacelatchError(f"template {path} is not encrypted, but a key is configured: refusing it (whoever can "
                             f"write it could enroll). Re-enroll with the key: facelatch enroll --force --key-file KEY")


def check_against_card(t: Template, card, path) -> None:
    """The template's embedding size and metric must be the encoder card's."""
    emb = card.data.get("embedding", {})
    dim, metric = emb.get("dim"), emb.get("metric")
    if t.embeddings.shape[-1] != dim or t.metric != metric:
        raise FacelatchError(f"template {path} holds {t.embeddings.shape[-1]}-D {t.metric} embeddings, but encoder "
                             f"{card.data.get('name', card.path.name)} makes {dim}-D {metric} ones: re-enroll")
