"""LFW evaluation of an encoder through the device pipeline, and the FMR -> distance
threshold table for its model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .lfw import people, read_pairs
from .metrics import (cross_identity_distances, kfold_accuracy, pairwise_distances, rate_at_or_below,
                      threshold_at_fmr)

FMRS = (1e-2, 1e-3, 1e-4)


def load_embeddings(jsonl: Path, root: Path | None = None) -> dict[str, np.ndarray | None]:
    """``facelatch embed --json`` output -> {"Name/Name_0001.jpg": embedding or None}."""
    out = {}
    for line in Path(jsonl).read_text().splitlines():
        rec = json.loads(line)
        p = Path(rec["path"])
        key = f"{p.parent.name}/{p.name}"
        e = rec.get("embedding")
        out[key] = None if e is None else np.asarray(e, np.float32)
    return out


def embed_images(card: Path, paths: list[Path], threads: int = 1) -> dict[str, np.ndarray | None]:
    """Embed in-process with exactly the device pipeline."""
    from edge.pipeline import FacePipeline, read_image

    pipe = FacePipeline(card, threads=threads)
    out = {}
    for p in paths:
        found = pipe.analyze(read_image(p))
        out[f"{p.parent.name}/{p.name}"] = found[0].embedding if found else None
    return out


def evaluate_lfw(emb: dict, lfw_root: Path, metric: str) -> dict:
    """10-fold accuracy on pairs.txt, TAR at fixed FAR, and the threshold table.

    Thresholds come from impostor pairs of LFW people who are not in pairs.txt
    (disjoint from the scored people); the TAR/FMR they give are then measured on
    the evaluation people: pairs.txt, and all same-/cross-identity pairs of the
    pairs.txt images."""
    pairs = read_pairs(lfw_root / "pairs.txt")
    no_face = sorted({p for pair in pairs for p in (pair.a, pair.b) if emb.get(p) is None})
    missing = [p for p in no_face if p not in emb]
    if missing:
        raise SystemExit(f"{len(missing)} pair images were not embedded (e.g. {missing[0]})")
    dim = next(v for v in emb.values() if v is not None).shape[0]
    far = np.full(dim, 1e3, np.float32)  # a face that was not found never matches

    def vec(p):
        return emb[p] if emb[p] is not None else far

    dist = np.array([pairwise_distances(vec(p.a)[None], vec(p.b)[None], metric)[0, 0] for p in pairs])
    same = np.array([p.same for p in pairs])
    fold = np.array([p.fold for p in pairs])
    accs, fold_thr = kfold_accuracy(dist, same, fold)

    # Calibration set: people not in pairs.txt (mostly one image each).
    eval_people = people(pairs)
    calib = [k for k, v in emb.items() if v is not None and k.split("/")[0] not in eval_people]
    _, calib_imp = cross_identity_distances(np.stack([emb[k] for k in calib]),
                                            np.array([k.split("/")[0] for k in calib]), metric)
    # Evaluation set: every image of a pairs.txt person.
    ev = [k for k, v in emb.items() if v is not None and k.split("/")[0] in eval_people]
    ev_gen, ev_imp = cross_identity_distances(np.stack([emb[k] for k in ev]),
                                              np.array([k.split("/")[0] for k in ev]), metric)
    gen_pairs, imp_pairs = dist[same], dist[~same]
    table = []
    for f in FMRS:
        t = threshold_at_fmr(calib_imp, f)
        table.append({
            "fmr": f, "distance": round(t, 4),
            "impostor_pairs": int(len(calib_imp)),
            "impostors_at_or_below": int(np.sum(calib_imp <= t)),
            "check_fmr_eval_people": rate_at_or_below(ev_imp, t),
            "check_fmr_pairs_txt": rate_at_or_below(imp_pairs, t),
            "tar_pairs_txt": rate_at_or_below(gen_pairs, t),
            "tar_all_genuine_eval_people": rate_at_or_below(ev_gen, t),
        })
    # TAR at FAR from pairs.txt alone (as usually reported; 3,000 impostor pairs)
    tar_pairs_1e3 = rate_at_or_below(gen_pairs, threshold_at_fmr(imp_pairs, 1e-3))
    return {
        "metric": metric,
        "accuracy_mean": float(accs.mean()), "accuracy_std": float(accs.std()),
        "fold_accuracies": [round(float(a), 4) for a in accs],
        "fold_thresholds": [round(float(t), 4) for t in fold_thr],
        "tar_at_far_1e-3_pairs_txt": tar_pairs_1e3,
        "pairs_txt_impostor_pairs": int((~same).sum()),
        "images_no_face": len(no_face), "no_face_examples": no_face[:10],
        "images_in_pairs": len({p for pair in pairs for p in (pair.a, pair.b)}),
        "calibration_people_images": len(calib), "calibration_impostor_pairs": int(len(calib_imp)),
        "eval_people_images": len(ev), "eval_genuine_pairs": int(len(ev_gen)), "eval_impostor_pairs": int(len(ev_imp)),
        "thresholds": table,
        "genuine_pairs_txt": gen_pairs, "impostor_pairs_txt": imp_pairs,  # arrays, for plots; dropped from JSON
    }


def summary_lines(r: dict) -> list[str]:
    lines = [f"LFW 10-fold ({r['metric']}): {100 * r['accuracy_mean']:.2f} % ± {100 * r['accuracy_std']:.2f}",
             f"TAR at FAR 1e-3 (pairs.txt, {r['pairs_txt_impostor_pairs']} impostor pairs): "
             f"{100 * r['tar_at_far_1e-3_pairs_txt']:.1f} %",
             f"images with no face found: {r['images_no_face']} of {r['images_in_pairs']}"]
    for t in r["thresholds"]:
        lines.append(f"FMR {t['fmr']:g}: distance {t['distance']:.4f} (from {t['impostor_pairs']:,} impostor pairs); "
                     f"TAR {100 * t['tar_pairs_txt']:.2f} % on pairs.txt, {100 * t['tar_all_genuine_eval_people']:.2f} % on "
                     f"all {r['eval_genuine_pairs']:,} genuine pairs; FMR check on {r['eval_impostor_pairs']:,} eval "
                     f"impostor pairs {t['check_fmr_eval_people']:.2e}")
    return lines


def json_ready(r: dict) -> dict:
    return {k: v for k, v in r.items() if not isinstance(v, np.ndarray)}
