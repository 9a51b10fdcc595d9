"""The liveness model: MiniFASNet members converted to one TFLite model with its
card, then measured leave-one-source-out on the PAD sources (``convert.pad_data``)
and given its threshold there.

    facelatch-convert import-minifasnet ../shared/weights/minifasnet/2.7_80x80_MiniFASNetV2.pth \\
        ../shared/weights/minifasnet/4_0_0_80x80_MiniFASNetV1SE.pth -o models/facelatch_liveness.tflite
    facelatch-convert evaluate-liveness models/facelatch_liveness.json --scan build/pad/scan.npz --write-card
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from edge.liveness import FRAME, live_probability, parse_scale
from edge.runtime import TFLiteModel, sha256_file

from .card import write_json_atomic
from .minifasnet import crop_scale, load, stack
from .pad_data import BY_NAME, CROP_SIZE
from .pad_eval import apcer_bpcer, leave_one_source_out, multi_source_threshold, pooled, roc_auc

NOTICE = ("MiniFASNet weights from Silent-Face-Anti-Spoofing by minivision-ai "
          "(https://github.com/minivision-ai/Silent-Face-Anti-Spoofing), Apache-2.0; converted to TFLite by "
          "facelatch-convert import-minifasnet (own model definition and weight transfer); see "
          "models/LICENSE-Apache-2.0.txt and models/NOTICE")
SCAN_PATCHES = {2.7: "crops_v2", 4.0: "crops_v1se", 8.0: "crops_wide", FRAME: "crops_frame"}  # scale -> scan key
DOOR_KINDS = ("nuaa", "frames", "yolo")  # sources that look like a door camera (whole webcam frames)


def scan_patches(scan: dict, scales) -> np.ndarray:
    """The scan's cached patches for these crop scales, stacked as the model takes them."""
    try:
        return np.concatenate([scan[SCAN_PATCHES[parse_scale(s)]] for s in scales], axis=3)
    except KeyError:
        raise SystemExit(f"the scan has patches for scales {list(SCAN_PATCHES)} only, not {scales} (a scan made "
                         f"before the whole-frame patch has no crops_frame: run facelatch-convert pad-data again "
                         f"into a new --out)") from None


def import_minifasnet(pths, out: Path, scales=None, int8: bool = False, calibration: np.ndarray | None = None,
                      command: str = "", log=print, features: bool = False) -> dict:
    import keras

    from .quantize import to_tflite

    scales = [parse_scale(s) for s in scales] if scales else [crop_scale(p) for p in pths]
    if len(scales) != len(pths):
        raise SystemExit("give one --scales value per .pth")
    if int8 and calibration is None:
        raise SystemExit("--int8 needs --calibration (a PAD scan, see facelatch-convert pad-data)")
    # int8: PReLU written as z + relu((a - 1) z), which XNNPACK runs in int8, and each member's
    # weights range-equalized on its own calibration patches (convert.minifasnet.build, equalize)
    members = [load(p, CROP_SIZE, "dwrelu", calibration[..., 3 * i:3 * i + 3]) if int8 else load(p, CROP_SIZE)
               for i, p in enumerate(pths)]
    model = stack(members, CROP_SIZE, features=features)
    inp = keras.Input((CROP_SIZE, CROP_SIZE, 3 * len(members)), batch_size=1)
    single = keras.Model(inp, model(inp))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_tflite(single, calibration if int8 else None))
    # the converted model must give the Keras model's numbers
    probe = np.random.default_rng(0).integers(0, 256, (4, CROP_SIZE, CROP_SIZE, 3 * len(members)), dtype=np.uint8)
    tfl = TFLiteModel(out)
    got = np.stack([tfl.run(tfl.pixels(x))[0].reshape(-1) for x in probe])
    want = model(probe.astype(np.float32)).numpy()
    dlogit = float(np.abs(got - want).max())
    log(f"TFLite vs Keras on 4 random inputs: max |d logit| {dlogit:.2e} (logits up to {np.abs(want).max():.1f})")
    card = {
        "kind": "liveness", "name": out.stem, "sha256": sha256_file(out),
        "description": "Presentation-attack detector: MiniFASNet " + " + ".join(m.name for m in members)
                       + " (Silent-Face-Anti-Spoofing), converted by facelatch",
        "quantization": "int8" if int8 else "float32",
        "input": {"size": CROP_SIZE, "channels": 3 * len(members), "colour": "RGB", "dtype": "uint8" if int8 else "float32",
                  "normalization": "none: pixels 0..255 (upstream takes BGR; the first convolution's input channels "
                                   "are reversed instead)"},
        "crop": {"size": CROP_SIZE, "scales": scales,
                 "definition": "per member: the detector's box scaled about its centre (less if the frame is too "
                               "small), shifted inside the frame, resampled to size x size at its sub-pixel position, "
                               "bilinear; a member of scale "
                               "'frame': the whole frame resized to size x size, area interpolation; members' patches "
                               "stacked on the channel axis (edge.liveness.shifted_crop / frame_patch / "
                               "stacked_patches)"},
        "output": ("one vector: every member's 128-D feature (its 'linear' + 'bn' output), then every member's "
                   "3 logits (index 1 = live)" if features else "3 logits per member (index 1 = live)")
                  + "; P(live) = mean over members of softmax[1] unless the card has a head",
        "outputs": {"features": 128 * len(members) if features else 0, "logits": 3 * len(members)},
        "members": [{"network": m.name, "crop_scale": s, "source": Path(p).name, "source_sha256": sha256_file(p)}
                    for m, s, p in zip(members, scales, pths)],
        "threshold": None,
        "conversion": {"command": command, "tflite_vs_keras_max_abs_logit": dlogit,
                       "prelu": "z + relu((a - 1) z) (depthwise 1x1, ReLU, ADD)" if int8 else "PRELU",
                       "equalized": "cross-layer range equalization on the calibration patches (exact in float)"
                                    if int8 else None,
                       "calibration": f"{len(calibration)} patches from the PAD scan" if int8 else None},
        "provenance": {"weights": NOTICE, "licence": "Apache-2.0 (the weights' licence; models/LICENSE-Apache-2.0.txt)",
                       "training_data": "upstream's (Silent-Face-Anti-Spoofing does not publish its training set); "
                                        "no fine-tuning by facelatch"},
    }
    write_json_atomic(out.with_suffix(".json"), card)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and its card (threshold: run evaluate-liveness)")
    return card


def model_scores(model_path, patches: np.ndarray, threads: int = 1) -> np.ndarray:
    """P(live) of each stacked patch through the TFLite model (batch of one, as on the device)."""
    tfl = TFLiteModel(model_path, threads)
    logits = 3 * (patches.shape[-1] // 3)  # a model imported with --features gives its features first
    return np.array([float(live_probability(tfl.run(tfl.pixels(p))[0].reshape(-1)[-logits:])) for p in patches])


def source_kinds(sources) -> dict:
    return {s: BY_NAME[s].kind if s in BY_NAME else "?" for s in sources}


def loso_report(scores, live, source, bpcer: float) -> dict:
    """Leave-one-source-out on the door-like sources (whole frames), plus the crop
    sources measured at the threshold fixed on all door-like sources."""
    kinds = source_kinds(sorted(set(source)))
    door = [s for s, k in kinds.items() if k in DOOR_KINDS]
    crops = [s for s, k in kinds.items() if k == "crops"]
    table = leave_one_source_out(scores, live, source, door, bpcer, door)
    shipped = multi_source_threshold(scores, live, source, door, bpcer)
    for s in crops:  # never used for the threshold: measured at the one fixed on all door-like sources
        here = source == s
        apcer, bp = apcer_bpcer(scores[here & live], scores[here & ~live], shipped)
        table[s] = {"threshold": shipped, "apcer": apcer, "bpcer": bp, "live": int((here & live).sum()),
                    "attack": int((here & ~live).sum()), "auc": roc_auc(scores[here & live], scores[here & ~live])}
    return {"bpcer_rule": bpcer, "door_sources": door, "crop_sources": crops, "per_source": table,
            "pooled_door_loso": pooled(table, door), "shipped_threshold": shipped}


def print_report(name: str, rep: dict, out=sys.stdout) -> None:
    print(f"\n{name}: threshold rule BPCER <= {rep['bpcer_rule']:.0%} on every tuning source", file=out)
    print(f"{'source':15s} {'kind':7s} {'live':>5s} {'attack':>6s} {'AUC':>6s} {'thr':>7s} {'APCER':>7s} {'BPCER':>7s}",
          file=out)
    kinds = source_kinds(rep["per_source"])
    for s, r in rep["per_source"].items():
        print(f"{s:15s} {kinds[s]:7s} {r['live']:5d} {r['attack']:6d} {r['auc']:6.3f} {r['threshold']:7.4f} "
              f"{r['apcer']:7.2%} {r['bpcer']:7.2%}", file=out)
    p = rep["pooled_door_loso"]
    print(f"pooled (door sources, each at its held-out threshold): APCER {p['apcer']:.2%}, BPCER {p['bpcer']:.2%}, "
          f"worst source BPCER {p['max_bpcer']:.2%}; threshold from all door sources: {rep['shipped_threshold']:.4f}",
          file=out)


def scan_digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def model_logits(model_path, patches: np.ndarray, threads: int = 1) -> np.ndarray:
    """The liveness model's output (features where it has them, then 3 logits per member) of
    each stacked patch, batch of one as on the device."""
    tfl = TFLiteModel(model_path, threads)
    return np.stack([tfl.run(tfl.pixels(p))[0].reshape(-1) for p in patches])


def fit_head(card, scan: dict, judged: np.ndarray | None, how: str = "pooled", bpcer: float = 0.05,
             cap: int | None = 600, threads: int = 1, log=print, inputs: str = "log_odds",
             train_crops: bool = False) -> dict:
    """The card's head (a logistic regression over the members' log-odds or their 128-D
    features (``inputs``), every
    (source, label) cell weighted equally) trained on every door-like source, its
    threshold and the per-source figures, all leave one source out:

    - the shipped threshold: for every source T, the head trained without T scores T's
      live frames; the rule (``how``: ``pooled`` = ``bpcer`` of all of them with each
      source weighted equally, ``min`` = no source above ``bpcer``) on those scores;
    - per source S: the head trained without S, at the threshold the same rule gives
      from heads trained without S and T on every other T (nested), with and without
      the installation calibration (edge.calibration; first half of S's live frames).

    ``judged``: which found faces the door would judge (quality gate, size), or None.
    ``train_crops``: the tight-crop sources join every head's training set (they are never
    a test or tuning source: no door sees a tight crop, so no threshold comes from them)."""
    from edge.liveness import member_log_odds

    from .pad_stack import capped, capture_order, cell_weights, fit_logistic, judge, nested_loso, rule, \
        thresholds_nested

    found = np.flatnonzero(scan["found"])
    keep = found if judged is None else found[judged]
    kinds = source_kinds(sorted(set(scan["source"][keep])))
    door = sorted(s for s, k in kinds.items() if k in DOOR_KINDS)
    crops = sorted(s for s, k in kinds.items() if k == "crops") if train_crops else []
    keep = keep[np.isin(scan["source"][keep], door + crops)]
    log(f"scoring {len(keep)} faces ({', '.join(door + crops)}) through {card.model_path.name}")
    out = model_logits(card.model_path, scan_patches(scan, card.data["crop"]["scales"])[keep], threads)
    n_logits = 3 * len(card.data["crop"]["scales"])
    if inputs == "features" and out.shape[1] == n_logits:
        raise SystemExit(f"{card.model_path.name} has no feature output: import it with --features")
    x = out[:, :-n_logits] if inputs == "features" else member_log_odds(out[:, -n_logits:])
    live, source = scan["live"][keep], scan["source"][keep]
    order = capture_order(scan["sequence"][keep], scan["order"][keep])
    m = capped(np.ones(len(live), bool), live, source, cap)
    head = fit_logistic(x[m], live[m].astype(float), cell_weights(live[m], source[m]))
    nest = nested_loso(x, live, source, door, train_extra=np.isin(source, crops), cap=cap)
    # the shipped threshold: each source's live frames under the head trained without it (nested_loso's test heads)
    shipped = rule({t: nest["test"][t][live[source == t]] for t in door}, bpcer, how)
    thr = thresholds_nested(nest, live, source, door, bpcer, how)
    per = {}
    for s in door:
        ms = source == s
        per[s] = {"plain": judge(nest["test"][s], live[ms], source[ms], order[ms], thr[s]),
                  "calibrated": judge(nest["test"][s], live[ms], source[ms], order[ms], thr[s], calibrate=True)}
    def as_card(h):
        return {"inputs": inputs, "mean": h["mean"].tolist(), "std": h["std"].tolist(), "w": h["w"].tolist(),
                "b": h["b"]}

    return {"head": as_card(head), "held_out": {s: {"head": as_card(nest["heads"][s]), "threshold": thr[s]}
                                                for s in door},
            "threshold": shipped, "door_sources": door, "crop_sources_trained": crops, "per_source": per, "rule": how,
            "bpcer": bpcer, "cap": cap}
