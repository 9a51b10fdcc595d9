"""``facelatch-convert``: the workstation tool (needs TensorFlow: pip install '.[convert]')."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.errors import FacelatchError

from .dlib_format import DlibFormatError
from .sface import SFaceFormatError


def cmd_import_dlib(args) -> None:
    from .dlib_format import read_network_file
    from .dlib_keras import build_keras_model

    net = read_network_file(args.dat)
    model = build_keras_model(net)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out}: {model.count_params():,} parameters, input {model.input_shape}, output {model.output_shape}")


def cmd_import_sface(args) -> None:
    from .sface import activation_ranges, build_keras_model, equalize, read_sface_onnx

    weights = read_sface_onnx(Path(args.onnx))
    if args.equalize_on:
        from edge.align import Aligner
        from .quantize import calibration_chips, list_images

        if not args.alignment:
            raise SystemExit("--equalize-on needs --alignment (alignment JSON or encoder card)")
        a = _alignment(args.alignment)
        chips = calibration_chips(list_images(args.equalize_on), Aligner(a["landmarks"], a["template"], a["chip_size"]),
                                  args.count, seed=2)
        weights = equalize(weights, activation_ranges(weights, chips))
        print(f"ranges equalized on {len(chips)} chips")
    model = build_keras_model(weights, prelu=args.prelu)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out}: {model.count_params():,} parameters, input {model.input_shape}, output {model.output_shape}")


def cmd_fit_alignment(args) -> None:
    from .card import write_json_atomic
    from .fit_alignment import arcface_reference, fit, fit_to_reference, lfw_images_outside_protocols

    images = lfw_images_outside_protocols(Path(args.lfw), args.count)
    if args.reference == "dlib":
        if not args.shape_predictor:
            raise SystemExit("--reference dlib needs --shape-predictor")
        result = fit(images, Path(args.shape_predictor))
        frame = "dlib's 150x150/0.25 chip frame, of FaceMesh points mapped through dlib's own chip transform (HOG + 5-point predictor)"
    else:
        if not args.yunet:
            raise SystemExit("--reference arcface needs --yunet")
        result = fit_to_reference(images, arcface_reference(Path(args.yunet)), 112)
        frame = ("the ArcFace 112x112 five-point crop, of FaceMesh points mapped through the similarity from OpenCV's "
                 "YuNet five points to the ArcFace template (what cv2.FaceRecognizerSF.alignCrop cuts)")
    result["method"] = (f"mean position, in {frame}, over {result['fitted_on']} LFW images of people in no LFW pair "
                        f"list; warp = least-squares similarity (Umeyama)")
    write_json_atomic(Path(args.out), result)
    print(f"wrote {args.out}")


def cmd_quantize(args) -> int:
    import random
    import tempfile

    import keras

    import convert.layers  # noqa: F401  (registers custom layers)
    from edge.align import Aligner
    from edge.modelcard import load_card
    from .card import encoder_card, write_json_atomic
    from .quantize import calibration_chips, list_images, parity_report, to_tflite

    alignment = _alignment(args.alignment)
    model = keras.models.load_model(args.model)
    if model.input_shape[0] != 1:
        from .train import with_batch

        model = with_batch(model, 1)
    images = list_images(args.calibration)
    chips = calibration_chips(images, Aligner(alignment["landmarks"], alignment["template"], alignment["chip_size"]),
                              args.count)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    embedding = {"dim": int(model.output_shape[-1]), "metric": args.metric, "normalize": args.metric == "cosine",
                 "flip_average": not args.no_flip}
    provenance = json.loads(Path(args.provenance).read_text()) if args.provenance else {}
    provenance.setdefault("calibration", f"{len(chips)} aligned chips from {', '.join(map(str, args.calibration))}")
    tmp = tempfile.TemporaryDirectory()
    float_path = (out.with_name(out.stem.replace("_int8", "") + "_float.tflite") if args.float_too
                  else Path(tmp.name) / (out.stem + "_float.tflite"))
    for quant, path in (("int8", out), ("float32", float_path)):
        path.write_bytes(to_tflite(model, chips if quant == "int8" else None))
        write_json_atomic(path.with_suffix(".json"), encoder_card(path, path.stem, alignment, embedding, provenance, quant))
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {quant}) and its card")
    heldout = random.Random(1).sample(images, min(200, len(images)))
    ok, lines, result = parity_report(out.with_suffix(".json"), float_path.with_suffix(".json"),
                                      Path(args.lfw) if args.lfw else None, heldout, args.threads)
    print("parity gate: " + ("passed" if ok else "FAILED"))
    for line in lines:
        print("  " + line)
    if result is not None:  # thresholds are always re-derived on the int8 model
        write_card_figures(load_card(out.with_suffix(".json")), result, args.metric)
        print(f"  thresholds re-derived on the int8 model and written to {out.with_suffix('.json')}")
    tmp.cleanup()
    if not ok and not args.force:
        for p in (out, out.with_suffix(".json")):
            p.unlink(missing_ok=True)
        print(f"quantize: the int8 model fails the parity gate; {out.name} not kept (--force keeps it)", file=sys.stderr)
        return 1
    return 0


def cmd_evaluate(args) -> None:
    from edge.modelcard import load_card
    from .card import write_json_atomic
    from .evaluate import (embed_images, evaluate_lfw, json_ready, keras_embeddings, load_embeddings, plot,
                           summary_lines)
    from .quantize import list_images

    lfw = Path(args.lfw)
    model = Path(args.model)
    card = None
    if model.suffix == ".keras":
        if not args.alignment:
            raise SystemExit("evaluating a .keras model needs --alignment (alignment JSON or encoder card)")
        emb = keras_embeddings(model, _alignment(args.alignment), list_images([lfw / "images"]), Path(args.cache))
        metric = args.metric or "cosine"
    else:
        card = load_card(model, kind="encoder")
        if args.embeddings:
            emb = load_embeddings(Path(args.embeddings))
        else:
            emb = embed_images(card.path, list_images([lfw / "images"]), threads=args.threads)
        metric = args.metric or card.data["embedding"]["metric"]
    result = evaluate_lfw(emb, lfw, metric)
    for line in summary_lines(result):
        print(line)
    if args.plots:
        for f in plot(result, Path(args.plots), model.stem):
            print(f"wrote {f}")
    if args.out:
        write_json_atomic(Path(args.out), json_ready(result))
    if args.write_card:
        if card is None:
            raise SystemExit("--write-card needs a TFLite model with a card")
        write_card_figures(card, result, metric)
        print(f"updated {card.path}")


def write_card_figures(card, result: dict, metric: str) -> None:
    """Store the {FMR -> distance} table and the LFW figures in the card."""
    from .card import write_json_atomic
    from .evaluate import json_ready
    from .metrics import THRESHOLDS_METHOD

    data = dict(card.data)
    if metric != data["embedding"]["metric"]:
        raise SystemExit("writing the card needs the card's own metric")
    data["thresholds"] = [{k: t[k] for k in ("fmr", "distance", "impostor_pairs", "impostors_at_or_below",
                                             "binding_source")} for t in result["thresholds"]]
    data["thresholds_method"] = THRESHOLDS_METHOD
    data["thresholds_measured_on"] = (
        f"{result['calibration_impostor_pairs']:,} impostor pairs among {result['calibration_people_images']:,} LFW "
        f"images of people not in pairs.txt (disjoint from the scored people), embedded by this model through "
        f"the device pipeline")
    data.setdefault("evaluation", {})["lfw"] = {k: v for k, v in json_ready(result).items() if k != "thresholds"}
    data["evaluation"]["lfw"]["threshold_checks"] = result["thresholds"]
    write_json_atomic(card.path, data)


def cmd_fuse(args) -> int:
    from edge.modelcard import load_card

    from .card import fused_card, write_json_atomic

    if len(args.cards) < 2 or len(args.weights) != len(args.cards):
        raise FacelatchError("fuse needs at least two encoder cards and one weight per card")
    if not all(0 < w < 1 for w in args.weights) or abs(sum(args.weights) - 1) > 1e-9:
        raise FacelatchError(f"weights {args.weights} must be in (0, 1) and sum to 1")
    members = [(load_card(c, kind="encoder"), w) for c, w in zip(args.cards, args.weights)]
    out = Path(args.out)
    if any(c.path.parent.resolve() != out.parent.resolve() for c, _ in members):
        raise FacelatchError(f"the member cards must be in the fused card's folder ({out.parent})")
    data = fused_card(out.stem, members, args.weight_chosen_on)
    if out.exists():  # keep what was measured for exactly this fusion (thresholds, evaluation, quality, band)
        old = json.loads(out.read_text())
        if old.get("sha256") == data["sha256"]:
            data.update({k: v for k, v in old.items() if k not in data or k == "thresholds"})
            data["embedding"] = {**old.get("embedding", {}), **data["embedding"]}
    write_json_atomic(out, data)
    terms = " + ".join(f"{w:g} x {c.data['name']}" for c, w in members)
    print(f"wrote {out}: {terms} (sha256 {data['sha256'][:12]}…)")
    return 0


def _alignment(path) -> dict:
    """An alignment block from an alignment JSON or from an encoder card."""
    d = json.loads(Path(path).read_text())
    return d.get("alignment", d)


def cmd_train(args) -> None:
    import numpy as np

    import convert.layers  # noqa: F401
    from edge.align import Aligner
    from .data import Chips, cached_chips, celeba, identity_folders
    from .train import small_encoder, train, view1_accuracy, view1_pairs, with_batch

    a = _alignment(args.alignment)
    aligner = Aligner(a["landmarks"], a["template"], a["chip_size"])
    cache = Path(args.cache)
    parts, offset = [], 0
    for spec in args.data:
        kind, _, root = spec.partition(":")
        images = {"celeba": celeba, "folders": identity_folders}[kind](root)
        ch = cached_chips(images, aligner, cache, f"{kind}-{Path(root).name}")
        parts.append(Chips(ch.chips, ch.labels + offset, ch.paths))
        offset = int(parts[-1].labels.max()) + 1
    chips = Chips(np.concatenate([c.chips for c in parts]), np.concatenate([c.labels for c in parts]),
                  sum((c.paths for c in parts), []))
    print(f"training chips: {len(chips.labels)} of {len(np.unique(chips.labels))} identities")
    if args.init:
        import keras

        model = with_batch(keras.models.load_model(args.init), None)
    else:
        model = small_encoder(a["chip_size"], args.dim, args.width)
    validate = None
    if args.validate_lfw:
        dev_train, dev_test = view1_pairs(Path(args.validate_lfw), aligner, cache)
        validate = lambda m: view1_accuracy(m, dev_train, dev_test)  # noqa: E731
    out = Path(args.out)
    state = train(model, chips, out, loss=args.loss, margin=args.margin, epochs=args.epochs, steps=args.steps,
                  p=args.p, k=args.k, lr=args.lr, freeze=args.freeze, augment=not args.no_augment,
                  validate=validate, seed=args.seed)
    best = out / ("best.keras" if validate else "last.keras")
    import keras

    export = with_batch(keras.models.load_model(best), 1)
    export.save(out / "export.keras")
    print(f"wrote {out / 'export.keras'} (batch 1, from {best.name}); best validation {state['best']}")


def cmd_pad_data(args) -> int:
    from .pad_data import build, scan

    manifest = build(Path(args.mirrors), Path(args.nuaa) if args.nuaa else None, Path(args.out))
    if not manifest:
        raise FacelatchError("no PAD source found: fetch the repositories named in convert/pad_data.py first")
    z = scan(manifest, Path(args.out) / "scan.npz", workers=args.workers)
    print(f"wrote {Path(args.out) / 'scan.npz'}: {len(manifest)} images, a face found in {int(z['found'].sum())}")
    return 0


def _scale_arg(value: str):
    """--scales: a number, or 'frame' (a member that sees the whole frame)."""
    from edge.liveness import parse_scale

    try:
        return parse_scale(value)
    except FacelatchError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("liveness card: ")) from None


def _load_scan(path):
    import numpy as np

    if not Path(path).is_file():
        raise FacelatchError(f"PAD scan not found: {path} (make it with facelatch-convert pad-data)")
    return LazyScan(np.load(path, allow_pickle=False))


class LazyScan(dict):
    """A PAD scan's arrays, each read from the .npz the first time it is asked for (the
    scan holds gigabytes of thumbnails and patches a command mostly does not need)."""

    def __init__(self, npz):
        super().__init__()
        self.npz = npz

    def __missing__(self, key):
        if key not in self.npz.files:
            raise KeyError(key)
        self[key] = self.npz[key]
        return self[key]

    def __contains__(self, key):
        return key in self.npz.files


def cmd_import_minifasnet(args) -> int:
    import numpy as np

    from .liveness import SCAN_PATCHES, import_minifasnet, scan_patches
    from .minifasnet import crop_scale

    calibration = None
    if args.int8:
        scan = _load_scan(args.calibration)
        scales = args.scales or [crop_scale(p) for p in args.pth]
        pool = np.flatnonzero(scan["found"])
        if args.calibration_judged:  # only faces the door judges, of door-like sources (no tight crops)
            from .liveness import DOOR_KINDS, source_kinds

            q = np.load(args.calibration_judged, allow_pickle=False)
            if not np.array_equal(q["index"], pool):
                raise FacelatchError(f"{args.calibration_judged} was not made from {args.calibration}")
            kinds = source_kinds(sorted(set(scan["source"][pool])))
            pool = pool[q["judged"] & np.isin(scan["source"][pool], [s for s, k in kinds.items() if k in DOOR_KINDS])]
        pick = np.sort(np.random.default_rng(0).choice(pool, min(args.count, len(pool)), replace=False))
        calibration = scan_patches({k: scan[k][pick] for k in SCAN_PATCHES.values() if k in scan}, scales)
    command = " ".join(["facelatch-convert import-minifasnet", *map(str, args.pth),
                        *(["--scales", *map(str, args.scales)] if args.scales else []),
                        *(["--int8", "--calibration", str(args.calibration), "--count", str(args.count)] if args.int8 else []),
                        *(["--calibration-judged", str(args.calibration_judged)] if args.int8 and args.calibration_judged
                          else []),
                        "-o", str(args.out)])
    command += " --features" if args.features else ""
    import_minifasnet(args.pth, Path(args.out), args.scales, args.int8, calibration, command, features=args.features)
    return 0


def cmd_evaluate_liveness(args) -> int:
    import numpy as np

    from edge.modelcard import load_card

    from .card import write_json_atomic
    from .liveness import loso_report, model_scores, print_report, scan_digest, scan_patches

    card = load_card(args.card, kind="liveness")
    scan = _load_scan(args.scan)
    found = scan["found"]
    patches = scan_patches(scan, card.data["crop"]["scales"])[found]
    scores = model_scores(card.model_path, patches, args.threads)
    live, source = scan["live"][found], scan["source"][found]
    rep = loso_report(scores, live, source, args.bpcer)
    print_report(card.data["name"], rep)
    if args.scores:
        np.savez(args.scores, scores=scores, live=live, source=source, index=np.flatnonzero(found))
    if args.write_card:
        data = dict(card.data)
        data["threshold"] = {"live_score": round(rep["shipped_threshold"], 4),
                             "chosen_for": f"BPCER <= {args.bpcer:.0%} on the live frames of every door-like source "
                                           f"({', '.join(rep['door_sources'])}); attacks never looked at"}
        data["evaluation"] = {
            "protocol": "leave one source out: for each door-like source the threshold is fixed on the other door-like "
                        "sources' live frames (same rule), then APCER/BPCER are measured on it; tight-crop sources "
                        "are measured at the threshold fixed on all door-like sources",
            "scan": f"{args.scan} (sha256 {scan_digest(args.scan)}…); faces found by the device's own detector",
            "per_source": {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                           for k, v in rep["per_source"].items()},
            "pooled_door_loso": {k: (round(v, 4) if isinstance(v, float) else v)
                                 for k, v in rep["pooled_door_loso"].items()},
            "command": f"facelatch-convert evaluate-liveness {args.card} --scan {args.scan} --bpcer {args.bpcer} "
                       "--write-card"}
        write_json_atomic(card.path, data)
        print(f"wrote the threshold and the figures into {card.path}")
    return 0


def cmd_fit_liveness_head(args) -> int:
    import numpy as np

    from edge.modelcard import load_card

    from .card import write_json_atomic
    from .liveness import fit_head, scan_digest
    from .pad_stack import K, N

    card = load_card(args.card, kind="liveness")
    scan = _load_scan(args.scan)
    judged = None
    if args.quality:
        q = np.load(args.quality, allow_pickle=False)
        if not np.array_equal(q["index"], np.flatnonzero(scan["found"])):
            raise FacelatchError(f"{args.quality} was not made from {args.scan} (python benchmarks/pad_stack.py quality)")
        judged = q["judged"]
    res = fit_head(card, scan, judged, args.rule, args.bpcer, args.cap, args.threads, inputs=args.inputs,
                   train_crops=args.train_crops)

    def r4(d):
        return {k: (round(v, 4) if isinstance(v, float) else r4(v) if isinstance(v, dict) else v) for k, v in d.items()}

    pooled = {}
    for which in ("plain", "calibrated"):
        rows = [r[which] for r in res["per_source"].values()]
        na, nl = sum(r["attack"] for r in rows), sum(r["live"] for r in rows)
        pooled[which] = {"apcer": sum(r["apcer"] * r["attack"] for r in rows) / na,
                         "bpcer": sum(r["bpcer"] * r["live"] for r in rows) / nl,
                         "worst_apcer": max(r["apcer"] for r in rows), "worst_bpcer": max(r["bpcer"] for r in rows)}
    print(f"head w {np.round(res['head']['w'], 3).tolist()} b {res['head']['b']:.3f}; shipped threshold "
          f"{res['threshold']:.4f} ({args.rule} {args.bpcer:.0%})")
    for s, r in res["per_source"].items():
        p, c = r["plain"], r["calibrated"]
        print(f"{s:15s} thr {p['threshold']:.3f} APCER {p['apcer']:7.2%} BPCER {p['bpcer']:6.2%} windows "
              f"{p['windows']:6.2%} | calibrated thr {c['threshold']:.3f} APCER {c['apcer']:7.2%} BPCER "
              f"{c['bpcer']:6.2%} windows {c['windows']:6.2%}")
        print(f"{'':15s} door windows, attack / live passing: " + ", ".join(
            f"{k} {w['attack']:.1%} / {w['live']:.1%}" for k, w in p["windows_by_k"].items()))
    for which, p in pooled.items():
        print(f"pooled {which}: APCER {p['apcer']:.2%} (worst {p['worst_apcer']:.2%}), BPCER {p['bpcer']:.2%} "
              f"(worst {p['worst_bpcer']:.2%})")
    if args.write_card:
        data = dict(card.data)
        data["head"] = res["head"]
        data["output"] = data["output"].split("; P(live)")[0] + (
            f"; P(live) = sigmoid(head.w . (x - head.mean) / head.std + head.b), x = the members' "
            f"{'features' if args.inputs == 'features' else 'log-odds log(p_live / (1 - p_live))'}")
        data["threshold"] = {"live_score": round(res["threshold"], 4),
                             "chosen_for": f"{args.rule} rule: rejects {args.bpcer:.0%} of the live frames of the "
                                           f"door-like sources ({', '.join(res['door_sources'])}), each source "
                                           "weighted equally and each scored by a head trained without it; attacks "
                                           "never looked at"}
        data["evaluation"] = {
            "protocol": "nested leave one source out over the door-like sources: the head scoring source S never saw "
                        "S; S's threshold comes by the same rule from heads trained without S and T, scored on each "
                        "other T's live frames; calibrated: edge.calibration's rule on the first half of S's live "
                        f"frames in capture order, judged on the second half and every attack; windows: share of "
                        f"windows of {N} consecutive attack frames in which {K} pass",
            "frames": "faces the door would judge (quality gate, min_face_px)" if judged is not None else "every found face",
            "scan": f"{args.scan} (sha256 {scan_digest(args.scan)}…)",
            "per_source": r4(res["per_source"]), "pooled": r4(pooled),
            "command": f"facelatch-convert fit-liveness-head {args.card} --scan {args.scan}"
                       + (f" --quality {args.quality}" if args.quality else "")
                       + f" --inputs {args.inputs} --rule {args.rule} --bpcer {args.bpcer} --cap {args.cap}"
                       + (" --train-crops" if args.train_crops else "") + " --write-card"}
        write_json_atomic(card.path, data)
        print(f"wrote the head, the threshold and the figures into {card.path}")
    if args.held_out:
        _write_held_out_cards(card, res, Path(args.held_out))
    return 0


def _write_held_out_cards(card, res: dict, out: Path) -> None:
    """Per door-like source S: a copy of the card whose head never saw S, at the threshold
    the nested rule set without S (a benchmark's card, never a door's: its evaluation and
    calibration figures are dropped, its name says so)."""
    from .card import write_json_atomic

    out.mkdir(parents=True, exist_ok=True)
    for s, held in res["held_out"].items():
        data = {k: v for k, v in card.data.items() if k != "evaluation"}
        data["name"] = f"{card.data['name']}_without_{s}"
        data["description"] = (f"benchmark card, not for a door: {card.data['name']}'s head trained without the "
                               f"source {s!r}, at the threshold the nested rule set without it")
        data["head"] = held["head"]
        data["threshold"] = {"live_score": round(held["threshold"], 6),
                             "chosen_for": f"nested {res['rule']} rule without {s}"}
        write_json_atomic(out / f"{s}.json", data)
        link = out / f"{s}.tflite"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(card.model_path.resolve())
    print(f"wrote {len(res['held_out'])} held-out cards into {out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="facelatch-convert", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import-dlib", help="read dlib_face_recognition_resnet_model_v1.dat into a Keras model")
    s.add_argument("dat")
    s.add_argument("out", help="output .keras file")
    s.set_defaults(func=cmd_import_dlib)

    s = sub.add_parser("import-sface", help="read OpenCV Zoo's face_recognition_sface_2021dec.onnx into a Keras model")
    s.add_argument("onnx")
    s.add_argument("out", help="output .keras file")
    s.add_argument("--prelu", choices=["dwrelu", "prelu"], default="dwrelu",
                   help="how PReLU is written: z + relu((a-1) z) (default; fast in int8) or the PRELU op")
    s.add_argument("--equalize-on", nargs="+", help="images (files or folders) to measure activation ranges on for "
                   "cross-layer equalization (exact in float; needed for int8)")
    s.add_argument("--alignment", help="alignment JSON for --equalize-on")
    s.add_argument("--count", type=int, default=64, help="chips for --equalize-on (default 64)")
    s.set_defaults(func=cmd_import_sface)

    s = sub.add_parser("fit-alignment", help="fit the chip template to dlib's chip (needs dlib-bin) or the ArcFace crop")
    s.add_argument("--lfw", required=True, help="LFW root (images/ and the pair files)")
    s.add_argument("--reference", choices=["dlib", "arcface"], default="dlib")
    s.add_argument("--shape-predictor", help="shape_predictor_5_face_landmarks.dat (--reference dlib)")
    s.add_argument("--yunet", help="YuNet ONNX for the five reference points (--reference arcface)")
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
    s.add_argument("--float-too", action="store_true", help="keep NAME_float.tflite next to the int8 model")
    s.add_argument("--lfw", help="LFW root: gate on LFW 10-fold accuracy and re-derive the card's thresholds")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--force", action="store_true", help="keep an int8 model that fails the parity gate")
    s.add_argument("-o", "--out", required=True, help="output .tflite (card written next to it)")
    s.set_defaults(func=cmd_quantize)

    s = sub.add_parser("train", help="train or fine-tune an encoder with a metric loss")
    s.add_argument("--data", action="append", required=True,
                   help="celeba:ROOT (images/ + identity.txt) or folders:ROOT (ROOT/<person>/*.jpg); repeatable")
    s.add_argument("--alignment", required=True, help="alignment JSON or an encoder card (chip geometry)")
    s.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, best.keras, export.keras")
    s.add_argument("--init", help="start from this .keras encoder (fine-tune); default: a small encoder from scratch")
    s.add_argument("--loss", default="triplet-semihard",
                   choices=["triplet-semihard", "triplet-hard", "triplet-all", "contrastive"])
    s.add_argument("--margin", type=float, help="default 0.2 (triplet, on L2-normalized embeddings) / 1.0 (contrastive)")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--steps", type=int, help="steps per epoch (default: one pass over the chips)")
    s.add_argument("--p", type=int, default=16, help="identities per batch")
    s.add_argument("--k", type=int, default=4, help="images per identity")
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--freeze", type=int, default=0, help="freeze the first N convolutions")
    s.add_argument("--no-augment", action="store_true")
    s.add_argument("--validate-lfw", help="LFW root: View 1 (pairsDevTrain threshold, pairsDevTest accuracy) each epoch")
    s.add_argument("--cache", default="build/chips", help="aligned-chip cache folder")
    s.add_argument("--dim", type=int, default=128)
    s.add_argument("--width", type=int, default=16, help="from-scratch encoder width")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("pad-data", help="unpack the fetched PAD repositories (+ NUAA) and scan them with the device's detector")
    s.add_argument("--mirrors", default="/work/.mirror", help="folder of fetched snapshots (<owner>+<name>/repo)")
    s.add_argument("--nuaa", help="NUAA root with real/ and attack/")
    s.add_argument("--out", default="build/pad", help="output folder (images, manifest.json, scan.npz)")
    s.add_argument("--workers", type=int, default=1, help="scan with this many processes")
    s.set_defaults(func=cmd_pad_data)

    s = sub.add_parser("import-minifasnet", help="MiniFASNet .pth file(s) -> one liveness TFLite model + card")
    s.add_argument("pth", nargs="+", help="Silent-Face .pth state dicts (members, in order)")
    s.add_argument("--scales", type=_scale_arg, nargs="+",
                   help="crop scale per member, or 'frame' for a member that sees the whole frame (default: from the "
                        "file names)")
    s.add_argument("--int8", action="store_true", help="full int8 (default: float32)")
    s.add_argument("--features", action="store_true", help="output the members' 128-D features too (for a head)")
    s.add_argument("--calibration", help="--int8: PAD scan (scan.npz from pad-data) for calibration patches")
    s.add_argument("--count", type=int, default=300, help="calibration patches (default 300)")
    s.add_argument("--calibration-judged", metavar="QUALITY_NPZ",
                   help="--int8: calibrate on faces the door judges (benchmarks/pad_stack.py quality) of door-like "
                        "sources only")
    s.add_argument("-o", "--out", required=True, help="output .tflite (card next to it)")
    s.set_defaults(func=cmd_import_minifasnet)

    s = sub.add_parser("evaluate-liveness", help="leave-one-source-out APCER/BPCER per PAD source; the card's threshold")
    s.add_argument("card", help="liveness card (.json)")
    s.add_argument("--scan", default="build/pad/scan.npz", help="PAD scan from pad-data")
    s.add_argument("--bpcer", type=float, default=0.01,
                   help="the threshold keeps BPCER at most this on every tuning source (default 0.01)")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--scores", help="save the per-frame scores (.npz)")
    s.add_argument("--write-card", action="store_true", help="store the threshold and figures in the card")
    s.set_defaults(func=cmd_evaluate_liveness)

    s = sub.add_parser("fit-liveness-head", help="learn the liveness card's head over its members, threshold and "
                                                 "figures leave one source out (nested)")
    s.add_argument("card", help="liveness card (.json) of a model with 2+ members")
    s.add_argument("--scan", default="build/pad/scan.npz", help="PAD scan from pad-data")
    s.add_argument("--quality", help="which faces the door judges (benchmarks/pad_stack.py quality)")
    s.add_argument("--rule", choices=["pooled", "min"], default="pooled")
    s.add_argument("--inputs", choices=["features", "log_odds"], default="features",
                   help="what the head reads: the members' 128-D features (a model imported with --features) or "
                        "their log-odds")
    s.add_argument("--bpcer", type=float, default=0.05, help="the live share the threshold rule may reject")
    s.add_argument("--cap", type=int, default=600, help="training frames per (source, label) at most")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--train-crops", action="store_true", help="the tight-crop sources join every head's training "
                   "set (never a test or tuning source)")
    s.add_argument("--write-card", action="store_true")
    s.add_argument("--held-out", metavar="DIR",
                   help="also write DIR/SOURCE.json per door-like source: the card with the head trained without "
                        "SOURCE at its nested threshold (for door benchmarks on a camera the head never saw; "
                        "benchmarks/door_sequences.py --held-out DIR), beside a link to the model")
    s.set_defaults(func=cmd_fit_liveness_head)

    s = sub.add_parser("fuse", help="a fused encoder card (score-level fusion of encoder cards; no new model)")
    s.add_argument("cards", nargs="+", help="member encoder cards (.json), in order, all in the output's folder")
    s.add_argument("--weights", type=float, nargs="+", required=True, help="one per member, summing to 1")
    s.add_argument("--weight-chosen-on", required=True, help="what data the weights were chosen on (for the card)")
    s.add_argument("-o", "--out", required=True, help="output card, e.g. models/facelatch_fusion_int8.json")
    s.set_defaults(func=cmd_fuse)

    s = sub.add_parser("evaluate", help="LFW 10-fold through the device pipeline; FMR thresholds for the card")
    s.add_argument("model", help="encoder card (.json, for its .tflite) or a .keras model")
    s.add_argument("--lfw", required=True, help="LFW root with images/ and pairs.txt")
    s.add_argument("--alignment", help="for .keras: alignment JSON or encoder card")
    s.add_argument("--plots", help="folder for roc.png, det.png, histogram.png")
    s.add_argument("--cache", default="build/chips", help="aligned-chip cache folder (.keras)")
    s.add_argument("--embeddings", help="reuse `facelatch embed --json` output instead of embedding again")
    s.add_argument("--metric", choices=["euclidean", "cosine"], help="default: the card's")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--out", help="write the full result as JSON")
    s.add_argument("--write-card", action="store_true", help="store thresholds and figures in the card")
    s.set_defaults(func=cmd_evaluate)

    args = p.parse_args(argv)
    try:
        return args.func(args) or 0
    except ModuleNotFoundError as e:
        hint = {"tensorflow": "pip install 'facelatch[convert]'", "keras": "pip install 'facelatch[convert]'",
                "matplotlib": "pip install 'facelatch[convert]'", "dlib": "pip install dlib-bin",
                "torch": "pip install torch", "onnx": "pip install onnx"}.get((e.name or "").split(".")[0], f"pip install {e.name}")
        print(f"facelatch-convert: error: this command needs {e.name} ({hint})", file=sys.stderr)
        return 2
    except (FacelatchError, DlibFormatError, SFaceFormatError) as e:
        print(f"facelatch-convert: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"facelatch-convert: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
