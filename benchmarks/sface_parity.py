"""Our SFace import against onnxruntime and cv2.FaceRecognizerSF on real aligned chips
(cut by the device pipeline with the SFace card's alignment), and the shipped int8
model against the float import.

    python benchmarks/sface_parity.py .ci-cache/models/face_recognition_sface_2021dec.onnx ../shared/data/lfw/images --count 40
"""

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convert.sface import build_keras_model, read_sface_onnx  # noqa: E402
from edge.align import Aligner  # noqa: E402
from edge.embed import Embedder, l2_normalize  # noqa: E402
from edge.modelcard import load_card, models_dir  # noqa: E402
from edge.pipeline import FaceFinder, read_image  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("--count", type=int, default=40)
    args = ap.parse_args()
    import onnxruntime as ort

    card = load_card(models_dir() / "facelatch_sface_int8.json")
    finder = FaceFinder(Aligner.from_card(card))
    paths = sorted(args.images.glob("*/*.jpg"))
    random.Random(3).shuffle(paths)
    chips = []
    for p in paths:
        found = finder.find(read_image(p))
        if found:
            chips.append(found[0].chip)
        if len(chips) >= args.count:
            break
    model = build_keras_model(read_sface_onnx(args.onnx))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(args.onnx), opts)
    rec = cv2.FaceRecognizerSF.create(str(args.onnx), "")
    emb = Embedder(card)
    d_ort, d_cv, cos = [], [], []
    for c in chips:
        ours = model(c[None].astype(np.float32)).numpy()[0]
        d_ort.append(np.abs(ours - sess.run(None, {"data": c[None].astype(np.float32).transpose(0, 3, 1, 2)})[0][0]).max())
        d_cv.append(np.abs(ours - rec.feature(cv2.cvtColor(c, cv2.COLOR_RGB2BGR)).reshape(-1)).max())
        ref = ours + model(c[None, :, ::-1].astype(np.float32)).numpy()[0]
        cos.append(float(emb.embed(c) @ l2_normalize(ref)))
    print(f"{len(chips)} chips: max |ours - onnxruntime| {max(d_ort):.2e}; max |ours - cv2.FaceRecognizerSF| "
          f"{max(d_cv):.2e}; int8 (shipped) vs float import cosine median {np.median(cos):.5f}, min {min(cos):.5f}")


if __name__ == "__main__":
    main()
