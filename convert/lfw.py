"""LFW protocol files: pairs, folds and the people they use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    a: str  # relative image path "Name/Name_0001.jpg"
    b: str
    same: bool
    fold: int


def image_path(name: str, number: int | str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_pairs(path) -> list[Pair]:
    """Read pairs.txt (10 folds x (n same + n different)) or a View 1 file (one fold)."""
    lines = Path(path).read_text().split("\n")
    header = lines[0].split()
    folds, per = (int(header[0]), int(header[1])) if len(header) == 2 else (1, int(header[0]))
    body = [l.split() for l in lines[1:] if l.strip()]
    pairs = []
    for i, f in enumerate(body):
        fold = i // (2 * per) if len(header) == 2 else 0
        if len(f) == 3:
            pairs.append(Pair(image_path(f[0], f[1]), image_path(f[0], f[2]), True, fold))
        elif len(f) == 4:
            pairs.append(Pair(image_path(f[0], f[1]), image_path(f[2], f[3]), False, fold))
        else:
            raise ValueError(f"{path}: bad line {i + 2}: {' '.join(f)}")
    if len(pairs) != folds * 2 * per:
        raise ValueError(f"{path}: {len(pairs)} pairs, header says {folds} x 2 x {per}")
    return pairs


def people(pairs: list[Pair]) -> set[str]:
    return {p.split("/")[0] for pair in pairs for p in (pair.a, pair.b)}
