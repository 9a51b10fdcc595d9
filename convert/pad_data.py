"""Presentation-attack (PAD) data from several sources, for leave-one-source-out work.

A *source* is one camera and one person (or, for NUAA, one site and webcam): live
frames and attack frames (printed photos for NUAA; phone/monitor/TV screen replays
for the webcam recordings).  The fetched repositories are unpacked from their git
snapshots (``fetch`` puts them under ``/work/.mirror/<owner>+<name>``); labels come
from the folder name only, never from the YOLO label files beside the images, and
an image whose git blob was already taken (by this or an earlier source) is dropped.

    facelatch-convert pad-data --mirrors /work/.mirror --nuaa ../shared/data/nuaa-train --out build/pad

writes ``build/pad/<source>/{live,attack}/<name>`` and ``build/pad/manifest.json``
(source, label, file, git blob, order key).  Nothing of it is committed."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

IMAGE_RE = re.compile(r"\.(jpe?g|png)$", re.I)


@dataclass(frozen=True)
class Source:
    name: str
    repo: str  # owner/name on GitHub ("" for NUAA)
    kind: str  # "frames": whole 640x480 webcam frames; "crops": tight face crops; "nuaa"
    live_dir: str
    attack_dir: str
    attack: str  # what the attacks are


SOURCES = [
    Source("nuaa", "", "nuaa", "real", "attack", "printed photos (NUAA training split, 9 subjects)"),
    Source("dracarys", "Dracarys261/SpoofingDetection", "frames", "Dataset/Real", "Dataset/Fake", "screen replay"),
    Source("dangthanhliem", "DangThanhLiem/LVTN_Detected", "frames", "Dataset/Real", "Dataset/Fake", "screen replay"),
    Source("codersworld", "Codersworld-23/Antispoof", "frames", "Dataset/Real", "Dataset/Fake", "screen replay"),
    Source("spp77", "Spp77/Anti-Spoofing", "frames", "Dataset/Real", "Dataset/Fake", "screen replay"),
    Source("aksultan", "AksultanMukhanbet/recognize_with_python", "crops", "dataset/real", "dataset/fake",
           "screen replay (tight face crops)"),
    Source("neonipun", "neonipun/CV_PROJECT", "crops", "dataset/real", "dataset/fake", "screen replay (tight face crops)"),
    Source("jtboing", "jtboing/liveness-web-demo", "crops", "dataset/real", "dataset/fake",
           "screen replay (tight face crops)"),
    Source("apfol", "Apfol/liveness-detection-opencv", "crops", "dataset/real", "dataset/fake",
           "screen replay (tight face crops)"),
]
BY_NAME = {s.name: s for s in SOURCES}


def order_key(name: str) -> tuple:
    """Capture order: NUAA ``ID_glasses_pos_session_picNo`` -> (session part, picNo);
    webcam recordings are named by timestamp; crops by frame number."""
    stem = Path(name).stem
    parts = stem.split("_")
    if len(parts) == 5 and all(p.isdigit() for p in parts):
        return ("_".join(parts[:4]), int(parts[4]))
    digits = re.sub(r"\D", "", stem)
    return ("", int(digits) if digits else 0, stem)


def sequence_id(source: str, name: str) -> str:
    """Frames of one recording session (NUAA: subject/glasses/position/session)."""
    key = order_key(name)
    return f"{source}:{key[0]}" if key[0] else source


def _git_dir(mirrors: Path, repo: str) -> Path:
    base = mirrors / repo.replace("/", "+") / "repo"
    return base / ".git" if (base / ".git").is_dir() else base


def _ls_tree(git_dir: Path) -> list[tuple[str, str]]:
    out = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", "HEAD"], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        meta, path = line.split("\t", 1)
        _, kind, blob = meta.split()
        if kind == "blob":
            rows.append((path, blob))
    return rows


def _cat_blobs(git_dir: Path, blobs: list[str]) -> list[bytes]:
    """Blob contents via one ``git cat-file --batch`` process."""
    p = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch"], input="".join(b + "\n" for b in blobs).encode(),
                       capture_output=True, check=True)
    data, pos, out = p.stdout, 0, []
    for _ in blobs:
        header_end = data.index(b"\n", pos)
        size = int(data[pos:header_end].split()[2])
        out.append(data[header_end + 1:header_end + 1 + size])
        pos = header_end + 1 + size + 1
    return out


def build(mirrors: Path, nuaa: Path | None, out: Path, log=print) -> list[dict]:
    """Unpack every source into ``out``; returns (and writes) the manifest."""
    import hashlib

    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    manifest = []
    for src in SOURCES:
        if src.kind == "nuaa":
            if nuaa is None or not Path(nuaa).is_dir():
                log("nuaa: not given, skipped")
                continue
            files = []
            for label, sub in (("live", src.live_dir), ("attack", src.attack_dir)):
                for p in sorted((Path(nuaa) / sub).glob("*/*.jpg")):
                    blob = hashlib.sha1(b"blob %d\0" % p.stat().st_size + p.read_bytes()).hexdigest()
                    files.append((label, p, blob, p.parent.name))
            for label, p, blob, subject in files:
                if blob in seen:
                    continue
                seen.add(blob)
                manifest.append({"source": src.name, "label": label, "file": str(p.resolve()), "blob": blob,
                                 "subject": subject, "sequence": f"nuaa:{subject}:{label}:{order_key(p.name)[0]}",
                                 "order": order_key(p.name)[1]})
            log(f"nuaa: {sum(m['source'] == 'nuaa' for m in manifest)} images")
            continue
        git_dir = _git_dir(mirrors, src.repo)
        if not git_dir.exists():
            log(f"{src.name}: no snapshot at {git_dir} (fetch github:{src.repo}); skipped")
            continue
        rows = [(path, blob) for path, blob in _ls_tree(git_dir) if IMAGE_RE.search(path)]
        picked, dropped = [], 0
        for label, d in (("live", src.live_dir), ("attack", src.attack_dir)):
            for path, blob in sorted(rows, key=lambda r: order_key(r[0])):
                if str(Path(path).parent) != d:
                    continue
                if blob in seen:
                    dropped += 1
                    continue
                seen.add(blob)
                picked.append((label, path, blob))
        contents = _cat_blobs(git_dir, [b for _, _, b in picked])
        for (label, path, blob), data in zip(picked, contents):
            dest = out / src.name / label / Path(path).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            manifest.append({"source": src.name, "label": label, "file": str(dest.resolve()), "blob": blob,
                             "subject": src.name, "sequence": f"{src.name}:{label}", "order": order_key(path)[1]})
        n_live = sum(1 for label, _, _ in picked if label == "live")
        log(f"{src.name}: {n_live} live, {len(picked) - n_live} attack, {dropped} exact duplicates dropped")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=0))
    return manifest


CROP_SCALES = {"v2": 2.7, "v1se": 4.0}  # MiniFASNetV2 and MiniFASNetV1SE patches
CROP_SIZE = 80


def scan(manifest: list[dict], cache: Path, log=print) -> dict:
    """Every image through the device's detector and FaceMesh: largest-face box,
    468 landmarks, a hash of the decoded pixels and the MiniFASNet patches
    (cached in ``cache``; ``found`` is False where no face was detected)."""
    import hashlib

    import numpy as np

    from edge.errors import FacelatchError
    from edge.liveness import shifted_crop
    from edge.pipeline import FaceFinder, read_image

    cache = Path(cache)
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}
    finder = FaceFinder(aligner=None)
    n = len(manifest)
    found = np.zeros(n, bool)
    boxes = np.zeros((n, 4), np.float32)
    marks = np.zeros((n, 468, 2), np.float32)
    shapes = np.zeros((n, 2), np.int32)
    hashes = []
    crops = {k: np.zeros((n, CROP_SIZE, CROP_SIZE, 3), np.uint8) for k in CROP_SCALES}
    unreadable = np.zeros(n, bool)
    for i, m in enumerate(manifest):
        try:
            rgb = read_image(m["file"])
        except FacelatchError:
            unreadable[i] = True
            hashes.append("")
            continue
        shapes[i] = rgb.shape[:2]
        hashes.append(hashlib.sha1(rgb.tobytes()).hexdigest())
        faces = finder.find(rgb, chips="none")
        if faces:
            face = faces[0].face
            found[i], boxes[i] = True, face.box
            marks[i] = finder.mesh.landmarks(rgb, face)[0]
            for k, s in CROP_SCALES.items():
                crops[k][i] = shifted_crop(rgb, face.box, CROP_SIZE, s)
        if (i + 1) % 1000 == 0:
            log(f"scanned {i + 1}/{n}")
    log(f"{int(unreadable.sum())} files could not be decoded (skipped)")
    out = {"found": found, "unreadable": unreadable, "boxes": boxes, "landmarks": marks, "shapes": shapes, "pixels_sha1": np.array(hashes),
           "source": np.array([m["source"] for m in manifest]), "live": np.array([m["label"] == "live" for m in manifest]),
           "sequence": np.array([m["sequence"] for m in manifest]), "order": np.array([m["order"] for m in manifest]),
           "subject": np.array([m["subject"] for m in manifest]), "path": np.array([m["file"] for m in manifest]),
           **{f"crops_{k}": v for k, v in crops.items()}}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out
