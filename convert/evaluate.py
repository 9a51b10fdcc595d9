"""LFW evaluation of an encoder through the device pipeline, and the FMR -> distance
threshold table for its model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .lfw import people, read_pairs
from .metrics import (cross_identity_distances, kfold_accuracy, pairwise_distances, rate_at_or_below,
                      strictest_threshold, threshold_at_fmr)

FMRS = (1e-2, 1e-3, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6)  # the small ones: households (edge.decision.household_fmr)


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


def pair_images(lfw_root: Path) -> list[Path]:
    return [lfw_root / "images" / p for p in sorted({p for pair in read_pairs(lfw_root / "pairs.txt")
                                                      for p in (pair.a, pair.b)})]


def lfw_accuracy(emb: dict, lfw_root: Path, metric: str) -> float:
    """Mean 10-fold accuracy on pairs.txt (a face not found never matches)."""
    pairs = read_pairs(lfw_root / "pairs.txt")
    dim = next(v for v in emb.values() if v is not None).shape[0]
    far = np.full(dim, 1e3, np.float32)
    vec = lambda p: emb.get(p) if emb.get(p) is not None else far  # noqa: E731
    dist = np.array([pairwise_distances(vec(p.a)[None], vec(p.b)[None], metric)[0, 0] for p in pairs])
    accs, _ = kfold_accuracy(dist, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]))
    return float(accs.mean())


def median_cosine(a: dict, b: dict) -> float:
    c = [x @ b[k] / (np.linalg.norm(x) * np.linalg.norm(b[k])) for k, x in a.items()
         if x is not None and b.get(k) is not None]
    return float(np.median(c))


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
        t, source = strictest_threshold({"lfw_fit": calib_imp}, f)  # one source here; see THRESHOLDS_METHOD
        table.append({
            "fmr": f, "distance": round(t, 4),
            "impostor_pairs": int(len(calib_imp)),
            "impostors_at_or_below": int(np.sum(calib_imp <= t)),
            "binding_source": source,
            "check_fmr_eval_people": rate_at_or_below(ev_imp, t),
            "check_fmr_pairs_txt": rate_at_or_below(imp_pairs, t),
            "tar_pairs_txt": rate_at_or_below(gen_pairs, t),
            "tar_all_genuine_eval_people": rate_at_or_below(ev_gen, t),
        })
    # TAR at FAR from pairs.txt alone (as usually reported; 3,000 impostor pairs) and from all eval pairs
    tar_pairs_1e3 = rate_at_or_below(gen_pairs, threshold_at_fmr(imp_pairs, 1e-3))
    tar_at_far = []
    for f in FMRS:
        tar_at_far.append({
            "far": f,
            "pairs_txt": {"tar": rate_at_or_below(gen_pairs, threshold_at_fmr(imp_pairs, f)),
                          "impostor_pairs": int(len(imp_pairs)), "resolvable": bool(len(imp_pairs) * f >= 10)},
            "all_eval_pairs": {"tar": rate_at_or_below(ev_gen, threshold_at_fmr(ev_imp, f)),
                               "impostor_pairs": int(len(ev_imp)), "genuine_pairs": int(len(ev_gen)),
                               "resolvable": bool(len(ev_imp) * f >= 10)},
        })
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
        "thresholds": table, "tar_at_far": tar_at_far,
        # arrays, for plots; dropped from JSON
        "genuine_pairs_txt": gen_pairs, "impostor_pairs_txt": imp_pairs, "genuine_eval": ev_gen, "impostor_eval": ev_imp,
    }


def summary_lines(r: dict) -> list[str]:
    lines = [f"LFW 10-fold ({r['metric']}): {100 * r['accuracy_mean']:.2f} % ± {100 * r['accuracy_std']:.2f}",
             f"TAR at FAR 1e-3 (pairs.txt, {r['pairs_txt_impostor_pairs']} impostor pairs): "
             f"{100 * r['tar_at_far_1e-3_pairs_txt']:.1f} %",
             f"images with no face found: {r['images_no_face']} of {r['images_in_pairs']}"]
    for t in r["tar_at_far"]:
        pt, ev = t["pairs_txt"], t["all_eval_pairs"]
        txt = (f"{100 * pt['tar']:.2f} %" if pt["resolvable"] else
               f"not resolvable ({pt['impostor_pairs']:,} impostor pairs give {pt['impostor_pairs'] * t['far']:.1f} "
               f"impostors at this FAR)")
        lines.append(f"TAR at FAR {t['far']:g}: pairs.txt {txt}; all eval pairs {100 * ev['tar']:.2f} % "
                     f"({ev['impostor_pairs']:,} impostor, {ev['genuine_pairs']:,} genuine pairs)")
    for t in r["thresholds"]:
        lines.append(f"FMR {t['fmr']:g}: distance {t['distance']:.4f} (from {t['impostor_pairs']:,} impostor pairs); "
                     f"TAR {100 * t['tar_pairs_txt']:.2f} % on pairs.txt, {100 * t['tar_all_genuine_eval_people']:.2f} % on "
                     f"all {r['eval_genuine_pairs']:,} genuine pairs; FMR check on {r['eval_impostor_pairs']:,} eval "
                     f"impostor pairs {t['check_fmr_eval_people']:.2e}")
    return lines


def json_ready(r: dict) -> dict:
    return {k: v for k, v in r.items() if not isinstance(v, np.ndarray)}


def keras_embeddings(model_path: Path, alignment: dict, paths: list[Path], cache_dir: Path,
                     flip: bool = True) -> dict[str, np.ndarray | None]:
    """Embed images with a Keras encoder on chips cut by the device's own finder
    (largest face), L2-normalized; cached chips."""
    import keras

    import convert.layers  # noqa: F401
    from edge.align import Aligner
    from .data import LabelledImages, cached_chips
    from .train import embed_chips, with_batch

    aligner = Aligner(alignment["landmarks"], alignment["template"], alignment["chip_size"])
    ch = cached_chips(LabelledImages(paths, np.zeros(len(paths), np.int64)), aligner, cache_dir,
                      f"eval-{paths[0].parent.parent.name}-{len(paths)}", largest=True)
    model = with_batch(keras.models.load_model(model_path), None)
    emb = embed_chips(model, ch.chips, flip=flip)
    out = {f"{p.parent.name}/{p.name}": None for p in paths}
    for p, e in zip(ch.paths, emb):
        p = Path(p)
        out[f"{p.parent.name}/{p.name}"] = e
    return out


def plot(r: dict, out_dir: Path, title: str) -> list[Path]:
    """ROC, DET and score-histogram PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    gen, imp = np.sort(r["genuine_eval"]), np.sort(r["impostor_eval"])
    thresholds = np.quantile(imp, np.logspace(-6, 0, 200))
    far = np.searchsorted(imp, thresholds, side="right") / len(imp)
    tar = np.searchsorted(gen, thresholds, side="right") / len(gen)
    files = []
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.semilogx(far, tar)
    ax.set(xlabel="false accept rate (FAR = FMR)", ylabel="true accept rate", title=f"ROC — {title}",
           xlim=(1e-6, 1), ylim=(0.5, 1.0))
    ax.grid(True, which="both", alpha=0.3)
    files.append(out_dir / "roc.png")
    fig.savefig(files[-1], dpi=120, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.loglog(far, 1 - tar)
    ax.set(xlabel="false match rate (FMR)", ylabel="false non-match rate (FNMR)", title=f"DET — {title}",
           xlim=(1e-6, 1))
    ax.grid(True, which="both", alpha=0.3)
    files.append(out_dir / "det.png")
    fig.savefig(files[-1], dpi=120, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = np.linspace(0, max(float(np.percentile(imp, 99.9)), float(gen.max())), 80)
    ax.hist(gen, bins, density=True, alpha=0.6, label=f"genuine ({len(gen):,})")
    ax.hist(imp[:: max(1, len(imp) // 2_000_000)], bins, density=True, alpha=0.6, label=f"impostor ({len(imp):,})")
    for t in r["thresholds"]:
        ax.axvline(t["distance"], color="k", ls=":", lw=1)
        ax.text(t["distance"], ax.get_ylim()[1] * 0.9, f"FMR {t['fmr']:g}", rotation=90, fontsize=7, ha="right")
    ax.set(xlabel=f"{r['metric']} distance", ylabel="density", title=f"Scores — {title}")
    ax.legend()
    files.append(out_dir / "histogram.png")
    fig.savefig(files[-1], dpi=120, bbox_inches="tight")
    plt.close(fig)
    return files
