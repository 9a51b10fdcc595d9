"""Full-int8 TFLite conversion of a Keras encoder, calibrated on real aligned chips."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from edge.align import Aligner
from edge.images import list_images  # noqa: F401  (re-exported for the CLI)
from edge.pipeline import FaceFinder, read_image


def calibration_chips(images: list[Path], aligner: Aligner, count: int, seed: int = 0, log=print) -> np.ndarray:
    """``count`` aligned chips (uint8) from a shuffled list of images, one face each."""
    finder = FaceFinder(aligner)
    images = list(images)
    random.Random(seed).shuffle(images)
    chips = []
    for path in images:
        found = finder.find(read_image(path))
        if len(found) == 1:
            chips.append(found[0].chip)
        if len(chips) >= count:
            break
    log(f"calibration: {len(chips)} chips from {len(images)} candidate images")
    if len(chips) < min(count, 50):
        raise SystemExit(f"only {len(chips)} calibration chips found; need at least {min(count, 50)}")
    return np.stack(chips)


def to_tflite(model, chips: np.ndarray | None) -> bytes:
    """Float TFLite when ``chips`` is None, else full-int8 (int8 weights and
    activations, uint8 input, int8 output) calibrated on ``chips`` (any one-input
    model: encoders and the liveness net)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if chips is not None:
        def representative():
            for c in chips:
                yield [c[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.int8
    return converter.convert()


MAX_ACCURACY_DROP = 0.003  # 0.3 pp
MIN_MEDIAN_COSINE = 0.99


def parity_report(int8_card: Path, float_card: Path, lfw_root: Path | None, heldout: list[Path],
                  threads: int = 1) -> tuple[bool, list[str], dict | None]:
    """Compare the int8 model with its float parent on real faces, through the device
    pipeline.  Returns (passed, report lines, int8 LFW evaluation or None)."""
    from .evaluate import embed_images, evaluate_lfw, lfw_accuracy, median_cosine, pair_images

    lines, ok, result = [], True, None
    if lfw_root is not None:
        from edge.modelcard import load_card

        metric = load_card(int8_card).data["embedding"]["metric"]
        all_images = list_images([lfw_root / "images"])
        q = embed_images(int8_card, all_images, threads)
        f = embed_images(float_card, pair_images(lfw_root), threads)
        result = evaluate_lfw(q, lfw_root, metric)
        acc_q, acc_f = result["accuracy_mean"], lfw_accuracy(f, lfw_root, metric)
        cos = median_cosine(f, q)
        drop = acc_f - acc_q
        lines.append(f"LFW 10-fold: float {100 * acc_f:.2f} %, int8 {100 * acc_q:.2f} % (drop {100 * drop:+.2f} pp; "
                     f"limit {100 * MAX_ACCURACY_DROP:.1f} pp)")
        ok &= drop <= MAX_ACCURACY_DROP
    else:
        q = embed_images(int8_card, heldout, threads)
        f = embed_images(float_card, heldout, threads)
        cos = median_cosine(f, q)
        lines.append(f"LFW gate skipped (no --lfw); cosine measured on {len(heldout)} held-out images")
    lines.append(f"median float-vs-int8 cosine {cos:.5f} (limit {MIN_MEDIAN_COSINE})")
    ok &= cos >= MIN_MEDIAN_COSINE
    return ok, lines, result
