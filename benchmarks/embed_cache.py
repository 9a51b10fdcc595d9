"""Embed a face set once per encoder, through the device pipeline, into a cache.

Each image is detected and landmarked once; every encoder then cuts its own chip
(its card's alignment) and embeds it and its mirror image; the raw outputs of both
are kept, so flip-averaging can be decided afterwards.  The quality measures
(edge.quality) of the face are kept too.  Output: ``OUT/<set>__faces.npz`` (found, landmarks,\nquality; reused by later runs) and ``OUT/<set>__<encoder>.npz`` (raw outputs).

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
from edge.quality import measure  # noqa: E402

QUALITY = ("face_px", "brightness", "contrast", "sharpness", "yaw", "pitch")


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
            rgb = read_image(p)
            faces = finder.detect(rgb)
            if faces:
                found[i] = True
                landmarks[i], _ = finder.mesh.landmarks(rgb, faces[0])
                q = measure(rgb, faces[0].box, landmarks[i])
                quality[i] = [q[k] for k in QUALITY]
            if i % 1000 == 0:
                print(f"faces: {i}/{n} images, {time.time() - t0:.0f} s", flush=True)
        np.savez_compressed(faces_file, keys=np.array([f"{p.parent.name}/{p.name}" for p in paths]),
                            labels=np.array(labels), found=found, quality=quality, quality_names=np.array(QUALITY),
                            landmarks=landmarks)
        print(f"wrote {faces_file}: {found.sum()} of {n} faces found, {time.time() - t0:.0f} s", flush=True)
    for card in cards:
        aligner, embedder = Aligner.from_card(card), Embedder(card)
        raw = np.zeros((n, 2, embedder.dim), np.float32)
        for i in np.flatnonzero(found):
            chip = aligner.chip(read_image(paths[i]), landmarks[i])
            raw[i, 0] = embedder._once(chip)
            raw[i, 1] = embedder._once(np.ascontiguousarray(chip[:, ::-1]))
            if i % 1000 == 0:
                print(f"{card.data['name']}: {i}/{n} images, {time.time() - t0:.0f} s", flush=True)
        out = args.out / f"{name}__{card.data['name']}.npz"
        np.savez_compressed(out, raw=raw, sha256=card.sha256)
        print(f"wrote {out}, {time.time() - t0:.0f} s", flush=True)

if __name__ == "__main__":
    main()
