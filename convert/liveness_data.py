"""NUAA (and similar) liveness data: wide face crops through the device's own
detector and crop, cached; subject ids kept for subject-disjoint splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.liveness import liveness_crop
from edge.pipeline import FaceFinder, read_image

SIZE, CONTEXT = 80, 2.7


@dataclass
class LiveSet:
    crops: np.ndarray  # (N, SIZE, SIZE, 3) uint8 RGB
    live: np.ndarray  # (N,) 1 live, 0 attack
    subject: np.ndarray  # (N,) int
    paths: list[str]
    boxes: np.ndarray  # (N, 4) detector boxes in the source image

    def select(self, mask) -> "LiveSet":
        idx = np.flatnonzero(mask)
        return LiveSet(self.crops[idx], self.live[idx], self.subject[idx], [self.paths[i] for i in idx], self.boxes[idx])


def nuaa(root, cache: Path, size: int = SIZE, context: float = CONTEXT, log=print) -> LiveSet:
    """``root/{real,attack}/<subject>/*.jpg`` -> crops of the largest face (cached)."""
    cache = Path(cache) / f"nuaa-{size}-{context}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return LiveSet(z["crops"], z["live"], z["subject"], [str(p) for p in z["paths"]], z["boxes"])
    finder = FaceFinder(aligner=None)
    crops, live, subject, paths, boxes = [], [], [], [], []
    missed = 0
    for label, kind in ((1, "real"), (0, "attack")):
        for p in sorted((Path(root) / kind).glob("*/*.jpg")):
            rgb = read_image(p)
            found = finder.find(rgb, chips="none")
            if not found:
                missed += 1
                continue
            box = found[0].face.box
            crops.append(liveness_crop(rgb, box, size, context))
            live.append(label)
            subject.append(int(p.parent.name))
            paths.append(str(p))
            boxes.append(box)
    log(f"NUAA: {len(crops)} crops, no face in {missed} images")
    out = LiveSet(np.stack(crops), np.array(live), np.array(subject), paths, np.array(boxes))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, crops=out.crops, live=out.live, subject=out.subject, paths=np.array(paths), boxes=out.boxes)
    return out
