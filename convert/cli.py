"""``facelatch-convert``: the workstation tool (needs TensorFlow: pip install '.[convert]')."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_import_dlib(args) -> None:
    from .dlib_format import read_network_file
    from .dlib_keras import build_keras_model

    net = read_network_file(args.dat)
    model = build_keras_model(net)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out}: {model.count_params():,} parameters, input {model.input_shape}, output {model.output_shape}")


def cmd_fit_alignment(args) -> None:
    from .card import write_json_atomic
    from .fit_alignment import fit, lfw_images_outside_protocols

    images = lfw_images_outside_protocols(Path(args.lfw), args.count)
    result = fit(images, Path(args.shape_predictor))
    result["method"] = (f"mean position, in dlib's 150x150/0.25 chip frame, of FaceMesh points mapped through dlib's own "
                        f"chip transform (HOG + 5-point predictor), over {result['fitted_on']} LFW images of people in "
                        f"no LFW pair list; warp = least-squares similarity (Umeyama)")
    write_json_atomic(Path(args.out), result)
    print(f"wrote {args.out}")


def cmd_quantize(args) -> None:
    import keras

    import convert.layers  # noqa: F401  (registers custom layers)
    from edge.align import Aligner
    from .card import encoder_card, write_json_atomic
    from .quantize import calibration_chips, list_images, to_tflite

    alignment = json.loads(Path(args.alignment).read_text())
    model = keras.models.load_model(args.model)
    chips = calibration_chips(list_images(args.calibration), Aligner(alignment["landmarks"], alignment["template"],
                                                                     alignment["chip_size"]), args.count)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    embedding = {"dim": int(model.output_shape[-1]), "metric": args.metric, "normalize": args.metric == "cosine",
                 "flip_average": not args.no_flip}
    provenance = json.loads(Path(args.provenance).read_text()) if args.provenance else {}
    provenance.setdefault("calibration", f"{len(chips)} aligned chips from {', '.join(map(str, args.calibration))}")
    for quant, path in (("int8", out), ("float32", out.with_name(out.stem.replace("_int8", "") + "_float.tflite"))):
        if quant == "float32" and not args.float_too:
            continue
        path.write_bytes(to_tflite(model, chips if quant == "int8" else None))
        card = encoder_card(path, path.stem, alignment, embedding, provenance, quant)
        write_json_atomic(path.with_suffix(".json"), card)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {quant}) and its card")


def cmd_evaluate(args) -> None:
    from edge.modelcard import load_card
    from .card import write_json_atomic
    from .evaluate import embed_images, evaluate_lfw, json_ready, load_embeddings, summary_lines
    from .quantize import list_images

    card = load_card(args.card, kind="encoder")
    lfw = Path(args.lfw)
    if args.embeddings:
        emb = load_embeddings(Path(args.embeddings))
    else:
        emb = embed_images(card.path, list_images([lfw / "images"]), threads=args.threads)
    metric = args.metric or card.data["embedding"]["metric"]
    result = evaluate_lfw(emb, lfw, metric)
    for line in summary_lines(result):
        print(line)
    if args.out:
        write_json_atomic(Path(args.out), json_ready(result))
    if args.write_card:
        data = dict(card.data)
        if metric != data["embedding"]["metric"]:
            raise SystemExit("--write-card needs the card's own metric")
        data["thresholds"] = [{k: t[k] for k in ("fmr", "distance", "impostor_pairs", "impostors_at_or_below")}
                              for t in result["thresholds"]]
        data["thresholds_measured_on"] = (
            f"{result['calibration_impostor_pairs']:,} impostor pairs among {result['calibration_people_images']:,} LFW "
            f"images of people not in pairs.txt (disjoint from the scored people), embedded by this int8 model through the device pipeline")
        data.setdefault("evaluation", {})["lfw"] = {k: v for k, v in json_ready(result).items() if k != "thresholds"}
        data["evaluation"]["lfw"]["threshold_checks"] = result["thresholds"]
        write_json_atomic(card.path, data)
        print(f"updated {card.path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="facelatch-convert", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import-dlib", help="read dlib_face_recognition_resnet_model_v1.dat into a Keras model")
    s.add_argument("dat")
    s.add_argument("out", help="output .keras file")
    s.set_defaults(func=cmd_import_dlib)

    s = sub.add_parser("fit-alignment", help="fit the chip template to dlib's chip geometry (needs dlib-bin)")
    s.add_argument("--lfw", required=True, help="LFW root (images/ and the pair files)")
    s.add_argument("--shape-predictor", required=True, help="shape_predictor_5_face_landmarks.dat")
    s.add_argument("--count", type=int, default=600)
    s.add_argument("-o", "--out", required=True)
    s.set_defaults(func=cmd_fit_alignment)

    s = sub.add_parser("quantize", help="full-int8 TFLite from a Keras encoder, calibrated on real chips")
    s.add_argument("model", help=".keras model")
    s.add_argument("--alignment", required=True, help="alignment JSON (from fit-alignment)")
    s.add_argument("--calibration", nargs="+", required=True, help="image files or folders")
    s.add_argument("--count", type=int, default=300, help="calibration chips (default 300)")
    s.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean")
    s.add_argument("--no-flip", action="store_true", help="do not average with the mirrored chip")
    s.add_argument("--provenance", help="JSON file with the provenance block for the card")
    s.add_argument("--float-too", action="store_true", help="also write NAME_float.tflite (for parity checks)")
    s.add_argument("-o", "--out", required=True, help="output .tflite (card written next to it)")
    s.set_defaults(func=cmd_quantize)

    s = sub.add_parser("evaluate", help="LFW 10-fold through the device pipeline; FMR thresholds for the card")
    s.add_argument("card", help="encoder card (.json)")
    s.add_argument("--lfw", required=True, help="LFW root with images/ and pairs.txt")
    s.add_argument("--embeddings", help="reuse `facelatch embed --json` output instead of embedding again")
    s.add_argument("--metric", choices=["euclidean", "cosine"], help="default: the card's")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--out", help="write the full result as JSON")
    s.add_argument("--write-card", action="store_true", help="store thresholds and figures in the card")
    s.set_defaults(func=cmd_evaluate)

    args = p.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
