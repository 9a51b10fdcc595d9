"""Presentation-attack (PAD) data from several sources, for leave-one-source-out work.

A *source* is one camera and one person (or, for NUAA, one site and webcam): live
frames and attack frames (printed photos for NUAA; phone/monitor/TV screen replays
for the webcam recordings).  The fetched repositories are unpacked from their git
snapshots (``fetch`` puts them under ``/work/.mirror/<owner>+<name>``); labels come
from the folder name (``frames`` / ``crops``) or from the YOLO label file checked
against the folder (``yolo``; the rules below), and an image whose git blob was
already taken (by this or an earlier source) is dropped.

    facelatch-convert pad-data --mirrors /work/.mirror --nuaa ../shared/data/nuaa-train --out build/pad

writes ``build/pad/<source>/{live,attack}/<name>`` and ``build/pad/manifest.json``
(source, label, file, git blob, order key).  Nothing of it is committed.

Label rules per kind of source:

- ``frames`` / ``crops``: the folder (``live_dir`` / ``attack_dir``) at HEAD.
- ``yolo`` (the YOLOv8 "anti-spoofing" tutorial layout): the class in the YOLO
  ``.txt`` beside the frame (class 0 = fake, 1 = real, as each repository's
  ``data.yaml`` says), cross-checked with a ``Real``/``Fake`` folder where the frame
  lies in one.  A frame whose label file is missing, empty or mixes classes, or that
  disagrees with its folder, is dropped; so is a git blob that was labelled both ways
  anywhere in the history.  Every commit's tree is read (several repositories deleted
  their frames later) unless ``history`` is False (HEAD only)."""

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
    history: bool = True  # yolo: read every commit's tree (False: HEAD only)


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
    # added 2026-12-02 (../shared/README.md): YOLO-labelled whole webcam frames ...
    Source("ramkumarkh", "Ramkumarkh/yolo_model_faceliveness", "yolo", "", "", "phone replay of the person's own face"),
    Source("sumanadhikari", "sumanadhikari0625/Liveliness-Detection", "yolo", "", "", "screen replay"),
    Source("kalyanipatil", "kalyanipatil0515/AntiSpoofing", "yolo", "", "", "screen replay"),
    Source("shravanshriram", "shravanshriram2007/Face-Recognition-Model", "yolo", "", "", "prints and phone replay",
           history=False),  # older frames have boxes drawn on them
    Source("soorajofficial", "SoorajOfficial2023/Anti-spoofing-face-recognition-system", "yolo", "", "",
           "TV/monitor replay"),
    Source("piiyushjoshi", "piiyushJoshi/Liveliness-Detector-for-Face-Recognition-System", "yolo", "", "",
           "TV/monitor video replay, several people and rooms"),
    # ... and tight face crops, label from the folder name
    Source("krzysiek", "Krzysiek354/Python_Face_Detection", "crops", "dataset/real", "dataset/fake",
           "screen replay (tight face crops)"),
    Source("shubhamlala", "ShubhamLala/Liveliness-Detection_CNN", "crops", "dataset/real", "dataset/fake",
           "screen replay (tight face crops)"),
    Source("draashishjani", "draashishjani/face-recognition-with-liveliness", "crops", "dataset_live/real",
           "dataset_live/fake", "screen replay (tight face crops)"),
    Source("huynhnguyen", "huynhnguyen2017/LivenessFaceDetection", "crops", "dataset/real", "dataset/fake",
           "screen replay (tight face crops)"),
    Source("lestari", "lestari15/CNN-face-detection", "crops", "dataset/real", "dataset/fake",
           "screen replay (tight face crops)"),
]
BY_NAME = {s.name: s for s in SOURCES}


EPOCH_DIGITS = re.compile(r"1\d{9}\d{1,9}")  # str(time.time()) with the point removed: 10 + 1..9 digits


def order_key(name: str) -> tuple:
    """Capture order: NUAA ``ID_glasses_pos_session_picNo`` -> (session part, picNo);
    webcam recordings are named by timestamp; crops by frame number.

    The YOLO recordings name a frame ``str(time.time())`` without its point
    (``1710696075.7851448`` -> ``17106960757851448``), so the number of fraction digits
    varies (Python drops trailing zeros): such a name orders as nanoseconds since the
    epoch, not as the integer of its digits (which would put every frame with fewer
    fraction digits before all the others)."""
    stem = Path(name).stem
    parts = stem.split("_")
    if len(parts) == 5 and all(p.isdigit() for p in parts):
        return ("_".join(parts[:4]), int(parts[4]))
    digits = re.sub(r"\D", "", stem)
    if EPOCH_DIGITS.fullmatch(digits):
        return ("", int(digits[:10]) * 10**9 + int(digits[10:].ljust(9, "0")), stem)
    return ("", int(digits) if digits else 0, stem)


def sequence_id(source: str, name: str) -> str:
    """Frames of one recording session (NUAA: subject/glasses/position/session)."""
    key = order_key(name)
    return f"{source}:{key[0]}" if key[0] else source


def _git_dir(mirrors: Path, repo: str) -> Path:
    base = mirrors / repo.replace("/", "+") / "repo"
    return base / ".git" if (base / ".git").is_dir() else base


def _ls_tree(git_dir: Path, commit: str = "HEAD") -> list[tuple[str, str]]:
    out = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", commit], capture_output=True, text=True,
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


YOLO_CLASSES = {0: "attack", 1: "live"}  # data.yaml: names ['fake', 'real']
FOLDER_LABELS = {"real": "live", "fake": "attack"}


def yolo_label(text: bytes) -> str | None:
    """The one label of a YOLO label file's boxes, or None (empty, unreadable, mixed)."""
    try:
        classes = {int(line.split()[0]) for line in text.decode("ascii").splitlines() if line.strip()}
    except (UnicodeDecodeError, ValueError):
        return None
    labels = {YOLO_CLASSES.get(c) for c in classes}
    return labels.pop() if len(labels) == 1 and None not in labels else None


def folder_label(path: str) -> str | None:
    """``live``/``attack`` where a folder of the path is named Real/Fake (any case)."""
    found = {FOLDER_LABELS[part.lower()] for part in Path(path).parts[:-1] if part.lower() in FOLDER_LABELS}
    return found.pop() if len(found) == 1 else None


def label_paths(path: str) -> list[str]:
    """Where a frame's YOLO label file may lie: beside it, or in the ``labels`` folder
    next to its ``images`` folder (``SplitData/train/images/x.jpg`` -> ``.../labels/x.txt``)."""
    p = Path(path).with_suffix(".txt")
    out = [str(p)]
    if p.parent.name == "images":
        out.append(str(p.parent.parent / "labels" / p.name))
    return out


def _yolo_frames(git_dir: Path, history: bool) -> tuple[list[tuple[str, str, str]], dict]:
    """(label, path, blob) of every frame the yolo rules keep, in capture order, and counts of what was dropped."""
    commits = ["HEAD"]
    if history:
        commits = subprocess.run(["git", "--git-dir", str(git_dir), "rev-list", "--all"], capture_output=True,
                                 text=True, check=True).stdout.split()
    trees = [dict(_ls_tree(git_dir, c)) for c in commits]
    texts = sorted({b for t in trees for p, b in t.items() if p.endswith(".txt")})
    label_of_text = {b: yolo_label(data) for b, data in zip(texts, _cat_blobs(git_dir, texts))}
    labels: dict[str, set] = {}  # image blob -> labels seen anywhere in the history
    path_of: dict[str, str] = {}
    for tree in trees:
        for path, blob in tree.items():
            if not IMAGE_RE.search(path):
                continue
            txt = next((tree[t] for t in label_paths(path) if t in tree), None)
            label = label_of_text.get(txt) if txt else None
            folder = folder_label(path)
            if txt is None and folder is not None:
                label = folder
            elif folder is not None and label != folder:
                label = None  # the folder and the label file disagree
            labels.setdefault(blob, set()).add(label)
            path_of.setdefault(blob, path)
    kept = [(next(iter(ls)), path_of[b], b) for b, ls in labels.items() if len(ls) == 1 and None not in ls]
    dropped = {"unlabelled_or_disagreeing": sum(1 for ls in labels.values() if len(ls) != 1 or None in ls)}
    return sorted(kept, key=lambda r: (r[0] != "live", order_key(r[1]))), dropped


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
        if src.kind == "yolo":
            candidates, rejected = _yolo_frames(git_dir, src.history)
        else:
            rows = [(path, blob) for path, blob in _ls_tree(git_dir) if IMAGE_RE.search(path)]
            candidates = [(label, path, blob) for label, d in (("live", src.live_dir), ("attack", src.attack_dir))
                          for path, blob in sorted(rows, key=lambda r: order_key(r[0])) if str(Path(path).parent) == d]
            rejected = {}
        picked, dropped = [], 0
        for label, path, blob in candidates:
            if blob in seen:
                dropped += 1
                continue
            seen.add(blob)
            picked.append((label, path, blob))
        contents = _cat_blobs(git_dir, [b for _, _, b in picked])
        for (label, path, blob), data in zip(picked, contents):
            dest = out / src.name / label / f"{blob[:10]}_{Path(path).name}" if src.kind == "yolo" else \
                out / src.name / label / Path(path).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            manifest.append({"source": src.name, "label": label, "file": str(dest.resolve()), "blob": blob,
                             "subject": src.name, "sequence": f"{src.name}:{label}", "order": order_key(path)[1]})
        n_live = sum(1 for label, _, _ in picked if label == "live")
        extra = "".join(f", {n} {why.replace('_', ' ')} dropped" for why, n in rejected.items())
        log(f"{src.name}: {n_live} live, {len(picked) - n_live} attack, {dropped} exact duplicates dropped{extra}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=0))
    return manifest


# MiniFASNetV2 / V1SE patches, a wide context patch and the whole frame (edge.liveness.FRAME)
CROP_SCALES = {"v2": 2.7, "v1se": 4.0, "wide": 8.0, "frame": "frame"}
CROP_SIZE = 80
THUMB = (160, 120)  # the whole frame, downscaled (width, height), for whole-frame cues


def _scan_chunk(items: list[tuple[int, str]]) -> list[dict]:
    """Scan a few images (one worker's share): what ``scan`` stores, per image."""
    import hashlib

    import cv2

    from edge.errors import FacelatchError
    from edge.liveness import stacked_patches
    from edge.pipeline import FaceFinder, read_image

    finder = _scan_chunk.finder = getattr(_scan_chunk, "finder", None) or FaceFinder(aligner=None)
    rows = []
    for i, path in items:
        row = {"i": i}
        try:
            rgb = read_image(path)
        except FacelatchError:
            rows.append(row)
            continue
        row["shape"] = rgb.shape[:2]
        row["sha1"] = hashlib.sha1(rgb.tobytes()).hexdigest()
        row["thumb"] = cv2.resize(rgb, THUMB, interpolation=cv2.INTER_AREA)
        faces = finder.find(rgb, chips="none")
        if faces:
            face = faces[0].face
            row["box"] = face.box
            row["marks"] = finder.mesh.landmarks(rgb, face)[0]
            row["crops"] = {k: stacked_patches(rgb, face.box, CROP_SIZE, [sc]) for k, sc in CROP_SCALES.items()}
        rows.append(row)
    return rows


def scan(manifest: list[dict], cache: Path, log=print, workers: int = 1) -> dict:
    """Every image through the device's detector and FaceMesh: largest-face box,
    468 landmarks, a hash of the decoded pixels, the MiniFASNet patches and a
    thumbnail of the whole frame (cached in ``cache``; ``found`` is False where no
    face was detected)."""
    import numpy as np

    cache = Path(cache)
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return {k: z[k] for k in z.files}
    n = len(manifest)
    found, unreadable = np.zeros(n, bool), np.zeros(n, bool)
    boxes, marks = np.zeros((n, 4), np.float32), np.zeros((n, 468, 2), np.float32)
    shapes = np.zeros((n, 2), np.int32)
    thumbs = np.zeros((n, THUMB[1], THUMB[0], 3), np.uint8)
    hashes = [""] * n
    crops = {k: np.zeros((n, CROP_SIZE, CROP_SIZE, 3), np.uint8) for k in CROP_SCALES}
    chunks = [[(i, manifest[i]["file"]) for i in range(a, min(a + 200, n))] for a in range(0, n, 200)]
    if workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap(_scan_chunk, chunks)
    else:
        pool, results = None, map(_scan_chunk, chunks)
    done = 0
    for rows in results:
        for row in rows:
            i = row["i"]
            if "shape" not in row:
                unreadable[i] = True
                continue
            shapes[i], hashes[i], thumbs[i] = row["shape"], row["sha1"], row["thumb"]
            if "box" in row:
                found[i], boxes[i], marks[i] = True, row["box"], row["marks"]
                for k in CROP_SCALES:
                    crops[k][i] = row["crops"][k]
        done += len(rows)
        if done % 2000 < 200:
            log(f"scanned {done}/{n}")
    if pool is not None:
        pool.close()
    log(f"{int(unreadable.sum())} files could not be decoded (skipped)")
    out = {"found": found, "unreadable": unreadable, "boxes": boxes, "landmarks": marks, "shapes": shapes,
           "pixels_sha1": np.array(hashes), "thumbs": thumbs,
           "source": np.array([m["source"] for m in manifest]), "live": np.array([m["label"] == "live" for m in manifest]),
           "sequence": np.array([m["sequence"] for m in manifest]), "order": np.array([m["order"] for m in manifest]),
           "subject": np.array([m["subject"] for m in manifest]), "path": np.array([m["file"] for m in manifest]),
           **{f"crops_{k}": v for k, v in crops.items()}}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out
