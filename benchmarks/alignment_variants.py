"""Which FaceMesh points to align with: fit each variant's template (as
`facelatch-convert fit-alignment` does) and score the shipped int8 encoder on LFW
pairs.txt 10-fold through the device pipeline with that alignment.

    python benchmarks/alignment_variants.py --lfw ../shared/data/lfw --shape-predictor SP.dat
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convert.evaluate import embed_images, lfw_accuracy, pair_images  # noqa: E402
from convert.fit_alignment import fit, lfw_images_outside_protocols  # noqa: E402
from edge.modelcard import models_dir  # noqa: E402

VARIANTS = {
    "facemesh7 (shipped): eye corners, nose tip, mouth corners": [33, 133, 362, 263, 1, 61, 291],
    "facemesh5: eye corners, nose tip": [33, 133, 362, 263, 1],
    "facemesh13: + nose base, lip centres, chin, inner brows": [33, 133, 362, 263, 1, 2, 61, 291, 0, 17, 152, 55, 285],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--shape-predictor", type=Path, required=True)
    args = ap.parse_args()
    fit_images = lfw_images_outside_protocols(args.lfw, 600)
    images = pair_images(args.lfw)
    card = json.loads((models_dir() / "facelatch_dlib_resnet_int8.json").read_text())
    results = {}
    for name, points in VARIANTS.items():
        a = fit(fit_images, args.shape_predictor, landmarks=points)
        tmp = Path(tempfile.mkdtemp())
        shutil.copy(models_dir() / "facelatch_dlib_resnet_int8.tflite", tmp / "variant.tflite")
        (tmp / "variant.json").write_text(json.dumps({**card, "alignment": {**card["alignment"], **a}}))
        emb = embed_images(tmp / "variant.json", images)
        results[name] = {m: lfw_accuracy(emb, args.lfw, m) for m in ("cosine", "euclidean")}
        results[name]["rms_px"] = a["rms_px"]
        print(name, json.dumps(results[name]), flush=True)
    print("| landmarks | LFW cosine | LFW euclidean | template RMS (px) |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {100 * r['cosine']:.2f} % | {100 * r['euclidean']:.2f} % | {r['rms_px']:.1f} |")


if __name__ == "__main__":
    main()
