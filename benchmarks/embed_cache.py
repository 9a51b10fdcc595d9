"""Embed a face set once per encoder, through the device pipeline, into a cache.

Each image is detected and landmarked once; every encoder then cuts its own chip
(its card's alignment) and embeds it and its mirror image; the raw outputs of both
are kept, so flip-averaging can be decided afterwards.  The quality measures
(edge.quality) of the face are kept too.  Output: ``OUT/<set>__faces.npz`` (found, landmarks,\nquality; reused by later runs), ``OUT/<set>__<encoder>.npz`` (raw outputs) and
``OUT/<set>__chipq.npz`` (per encoder: the chip measures of edge.quality.chip_measures,
CHIP_QUALITY order; ``--chip-quality-only`` adds them to an existing cache).

    nice -n 10 python benchmarks/embed_cache.py lfw ../shared/data/lfw \
        --encoders facelatch_dlib_resnet_int8 facelatch_sface_int8 --out build/emb

Sets: ``lfw`` (every image, identity = folder), ``lfwpairs`` (only the pairs.txt
images), ``celeba`` (images/ + identity.txt).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.align import Aligner  # noqa: E402
from edge.embed import Embedder  # noqa: E402
from edge.modelcard import load_card, models_dir  # noqa: E402
from edge.pipeline import FaceFinder, _card_path, read_image  # noqa: E402
from edge.quality import chip_measures, measure  # noqa: E402

QUALITY = ("face_px", "brightness", "contrast", "sharpness", "yaw", "pitch")
CHIP_QUALITY = ("chip_coverage", "light_asymmetry")  # per encoder: they depend on its chip


def find_face(finder: FaceFinder, rgb: np.ndarray):
    """(landmarks, quality row in QUALITY order) of the largest face, or None."""
    faces = finder.detect(rgb)
    if not faces:
        return None
    landmarks, _ = finder.mesh.landmarks(rgb, faces[0])
    q = measure(rgb, faces[0].box, landmarks)
    return landmarks, [q[k] for k in QUALITY]


def embed_chip_and_mirror(aligner: Aligner, embedder: Embedder, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(2, dim): the encoder's raw output for the face's chip and for its mirror image."""
    chip = aligner.chip(rgb, landmarks)
    return np.stack([embedder._once(chip), embedder._once(np.ascontiguousarray(chip[:, ::-1]))])


def chip_quality(aligner: Aligner, rgb: np.ndarray, landmarks: np.ndarray) -> tuple:
    """The encoder's chip measures (CHIP_QUALITY order) of one face."""
    m = chip_measures(aligner.chip(rgb, landmarks), aligner, landmarks, rgb.shape)
    return tuple(m[k] for k in CHIP_QUALITY)


def save_chip_quality(out: Path, name: str, per_encoder: dict) -> Path:
    """Write the set's chip measures for these encoders; another encoder's measures already in
    the file are kept (a run with ``--encoders`` naming one card must not erase the others')
    when they are for as many faces."""
    path = out / f"{name}__chipq.npz"
    arrays = {enc: np.array(v, np.float32).reshape(-1, len(CHIP_QUALITY)) for enc, v in per_encoder.items()}
    rows = {len(a) for a in arrays.values()}
    if path.exists():
        with np.load(path) as old:
            arrays = {**{enc: old[enc] for enc in old.files if enc != "names" and {len(old[enc])} == rows}, **arrays}
    np.savez_compressed(path, names=np.array(CHIP_QUALITY), **arrays)
    return path


def save_faces(path: Path, keys, labels, found, quality, landmarks, **extra) -> None:
    np.savez_compressed(path, keys=np.array(keys), labels=np.array(labels), found=found, quality=quality,
                        quality_names=np.array(QUALITY), landmarks=landmarks, **extra)


def save_raw(out: Path, name: str, card, raw: np.ndarray) -> Path:
    path = out / f"{name}__{card.data['name']}.npz"
    np.savez_compressed(path, raw=raw, sha256=card.sha256)
    return path


def images(kind: str, root: Path) -> tuple[list[Path], list[str]]:
    if kind == "celeba":
        from convert.data import celeba

        li = celeba(root)
        return li.paths, [f"celeba{int(x)}" for x in li.labels]
    if kind == "lfwpairs":
        from convert.evaluate import pair_images

        paths = pair_images(root)
    else:
        paths = sorted((root / "images").glob("*/*.jpg"))
    return paths, [p.parent.name for p in paths]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["lfw", "lfwpairs", "celeba"])
    ap.add_argument("root", type=Path)
    ap.add_argument("--encoders", nargs="+", required=True, help="card names in models/ or card paths")
    ap.add_argument("--out", type=Path, default=Path("build/emb"))
    ap.add_argument("--name", help="set name in the cache (default: kind)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--chip-quality-only", action="store_true",
                    help="add the chip measures (CHIP_QUALITY) of every encoder to an existing set; no embedding")
    args = ap.parse_args()
    paths, labels = images(args.kind, args.root)
    if args.limit:
        paths, labels = paths[:args.limit], labels[:args.limit]
    name = args.name or args.kind
    args.out.mkdir(parents=True, exist_ok=True)
    faces_file = args.out / f"{name}__faces.npz"
    cards = [load_card(_card_path(e, models_dir()), kind="encoder") for e in args.encoders]
    n = len(paths)
    t0 = time.time()
    if faces_file.exists():  # detection and landmarks once per set
        z = np.load(faces_file)
        found, landmarks = z["found"], z["landmarks"]
        print(f"reusing {faces_file}")
    else:
        finder = FaceFinder(Aligner.from_card(cards[0]))
        found = np.zeros(n, bool)
        quality = np.zeros((n, len(QUALITY)), np.float32)
        landmarks = np.zeros((n, 468, 2), np.float32)
        for i, p in enumerate(paths):
            face = find_face(finder, read_image(p))
            if face is not None:
                found[i] = True
                landmarks[i], quality[i] = face
            if i % 1000 == 0:
                print(f"faces: {i}/{n} images, {time.time() - t0:.0f} s", flush=True)
        save_faces(faces_file, [f"{p.parent.name}/{p.name}" for p in paths], labels, found, quality, landmarks)
        print(f"wrote {faces_file}: {found.sum()} of {n} faces found, {time.time() - t0:.0f} s", flush=True)
    aligners = {card.data["name"]: Aligner.from_card(card) for card in cards}
    chipq = {enc: np.zeros((n, len(CHIP_QUALITY)), np.float32) for enc in aligners}
    if args.chip_quality_only:
        for i in np.flatnonzero(found):
            rgb = read_image(paths[i])
            for enc, aligner in aligners.items():
                chipq[enc][i] = chip_quality(aligner, rgb, landmarks[i])
    for card in [] if args.chip_quality_only else cards:
        aligner, embedder = aligners[card.data["name"]], Embedder(card)
        raw = np.zeros((n, 2, embedder.dim), np.float32)
        for i in np.flatnonzero(found):
            rgb = read_image(paths[i])
            raw[i] = embed_chip_and_mirror(aligner, embedder, rgb, landmarks[i])
            chipq[card.data["name"]][i] = chip_quality(aligner, rgb, landmarks[i])
            if i % 1000 == 0:
                print(f"{card.data['name']}: {i}/{n} images, {time.time() - t0:.0f} s", flush=True)
        out = save_raw(args.out, name, card, raw)
        print(f"wrote {out}, {time.time() - t0:.0f} s", flush=True)
    print(f"wrote {save_chip_quality(args.out, name, chipq)}, {time.time() - t0:.0f} s", flush=True)

if __name__ == "__main__":
    main()
