"""Encoders compared on cached embeddings (benchmarks/embed_cache.py): LFW 10-fold and
TAR at FMR 1e-3/1e-4/1e-5 through our pipeline, thresholds fitted on impostors from
two sources and checked on people and sources the fit never saw.

    python benchmarks/encoder_report.py --cache build/emb --lfw ../shared/data/lfw [--json build/emb/report.json]

Sources and splits (by identity, fixed):
- LFW eval people: everyone in pairs.txt (scored: pairs.txt 10-fold, all their pairs);
- LFW fit people: everyone else (mostly one image each): impostor pairs for the fit;
- CelebA fit identities: even CelebA identity numbers; CelebA held-out: odd ones.
The card's thresholds come from LFW fit + CelebA fit impostors; the fusion weight
from CelebA fit identities only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convert.lfw import people, read_pairs  # noqa: E402
from convert.metrics import cross_identity_distances, kfold_accuracy, rate_at_or_below, threshold_at_fmr  # noqa: E402

FMRS = (1e-3, 1e-4, 1e-5)
DLIB, SFACE = "facelatch_dlib_resnet_int8", "facelatch_sface_int8"


def unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class FaceSet:
    """One cached set: keys, identity labels, found mask, quality, embeddings per encoder."""

    def __init__(self, cache: Path, name: str):
        z = np.load(cache / f"{name}__faces.npz")
        self.keys, self.labels, self.found = z["keys"], z["labels"], z["found"]
        self.quality = dict(zip(z["quality_names"], z["quality"].T))
        self.raw = {f.name.split("__")[1][:-4]: np.load(f)["raw"] for f in sorted(cache.glob(f"{name}__*.npz"))
                    if not f.name.endswith("__faces.npz")}

    def embeddings(self, encoder: str, flip: bool = True) -> np.ndarray:
        """L2-normalized (N, dim); encoder "fusion:W" = sqrt(W) * dlib ++ sqrt(1-W) * sface, whose cosine
        distance is W * d_dlib + (1 - W) * d_sface."""
        if encoder.startswith("fusion:"):
            w = float(encoder.split(":")[1])
            return np.concatenate([np.sqrt(w) * self.embeddings(DLIB, flip),
                                   np.sqrt(1 - w) * self.embeddings(SFACE, flip)], axis=1)
        r = self.raw[encoder]
        return unit(r[:, 0] + r[:, 1]) if flip else unit(r[:, 0])  # as edge.embed.Embedder


def cosine_pairs(e: np.ndarray, labels: np.ndarray):
    """(genuine, impostor) cosine distances of all pairs."""
    return cross_identity_distances(e, labels, "cosine")


def report(cache: Path, lfw: Path, encoders: list[str], flip: bool) -> dict:
    lfw_set, celeba = FaceSet(cache, "lfw"), FaceSet(cache, "celeba")
    pairs = read_pairs(lfw / "pairs.txt")
    eval_people = people(pairs)
    index = {k: i for i, k in enumerate(lfw_set.keys)}
    is_eval = np.array([lab in eval_people for lab in lfw_set.labels])
    celeba_id = np.array([int(lab[6:]) for lab in celeba.labels])
    celeba_fit = celeba_id % 2 == 0
    out = {}
    for enc in encoders:
        E = lfw_set.embeddings(enc, flip)
        C = celeba.embeddings(enc, flip)
        far = np.zeros(E.shape[1], np.float32)  # a face not found never matches (cosine distance 1)

        def vec(k):
            i = index[k]
            return E[i] if lfw_set.found[i] else far

        dist = np.array([1 - float(vec(p.a) @ vec(p.b)) for p in pairs])
        same = np.array([p.same for p in pairs])
        accs, _ = kfold_accuracy(dist, same, np.array([p.fold for p in pairs]))
        ok = lfw_set.found
        _, lfw_fit_imp = cosine_pairs(E[ok & ~is_eval], lfw_set.labels[ok & ~is_eval])
        ev_gen, ev_imp = cosine_pairs(E[ok & is_eval], lfw_set.labels[ok & is_eval])
        okc = celeba.found
        _, cel_fit_imp = cosine_pairs(C[okc & celeba_fit], celeba.labels[okc & celeba_fit])
        ho_gen, ho_imp = cosine_pairs(C[okc & ~celeba_fit], celeba.labels[okc & ~celeba_fit])
        fit_imp = np.concatenate([lfw_fit_imp, cel_fit_imp])
        rows = []
        for f in FMRS:
            t = threshold_at_fmr(fit_imp, f)
            t_lfw_only, t_celeba_only = threshold_at_fmr(lfw_fit_imp, f), threshold_at_fmr(cel_fit_imp, f)
            rows.append({
                "fmr": f, "distance": round(float(t), 4), "impostor_pairs": int(len(fit_imp)),
                "impostors_at_or_below": int(np.sum(fit_imp <= t)),
                "fmr_lfw_eval_people": rate_at_or_below(ev_imp, t),
                "fmr_celeba_heldout": rate_at_or_below(ho_imp, t),
                "tar_pairs_txt": rate_at_or_below(dist[same], t),
                "tar_lfw_all_genuine": rate_at_or_below(ev_gen, t),
                "tar_celeba_heldout": rate_at_or_below(ho_gen, t),
                "cross_source": {"fit_lfw_only": {"distance": round(float(t_lfw_only), 4),
                                                  "fmr_celeba_heldout": rate_at_or_below(ho_imp, t_lfw_only)},
                                 "fit_celeba_only": {"distance": round(float(t_celeba_only), 4),
                                                     "fmr_lfw_eval_people": rate_at_or_below(ev_imp, t_celeba_only)}},
            })
        out[enc] = {
            "lfw_accuracy": float(accs.mean()), "lfw_accuracy_std": float(accs.std()),
            "lfw_no_face_in_pairs": int(sum(not lfw_set.found[index[k]] for k in {x for p in pairs for x in (p.a, p.b)})),
            "impostor_pairs": {"lfw_fit": int(len(lfw_fit_imp)), "celeba_fit": int(len(cel_fit_imp)),
                               "lfw_eval": int(len(ev_imp)), "celeba_heldout": int(len(ho_imp))},
            "genuine_pairs": {"pairs_txt": int(same.sum()), "lfw_eval": int(len(ev_gen)),
                              "celeba_heldout": int(len(ho_gen))},
            "thresholds": rows,
            # oracle operating points (threshold from the scored impostors themselves)
            "tar_at_fmr_oracle": {f"{f:g}": {"lfw_eval": rate_at_or_below(ev_gen, threshold_at_fmr(ev_imp, f)),
                                             "celeba_heldout": rate_at_or_below(ho_gen, threshold_at_fmr(ho_imp, f))}
                                  for f in FMRS},
        }
    return out


def fusion_weight(cache: Path, flip: bool, grid=np.linspace(0, 1, 11)) -> tuple[float, list]:
    """The dlib weight maximising TAR at FMR 1e-4 on CelebA FIT identities only."""
    celeba = FaceSet(cache, "celeba")
    fit = (np.array([int(lab[6:]) for lab in celeba.labels]) % 2 == 0) & celeba.found
    d = {e: cosine_pairs(celeba.embeddings(e, flip)[fit], celeba.labels[fit]) for e in (DLIB, SFACE)}
    scores = []
    for w in grid:
        gen = w * d[DLIB][0] + (1 - w) * d[SFACE][0]
        imp = w * d[DLIB][1] + (1 - w) * d[SFACE][1]
        scores.append((float(w), rate_at_or_below(gen, threshold_at_fmr(imp, 1e-4))))
    return max(scores, key=lambda s: s[1])[0], scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=Path("build/emb"))
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--encoders", nargs="+", default=[DLIB, SFACE])
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--fusion", action="store_true", help="add score-level fusion (weight fitted on CelebA fit ids)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    encoders = list(args.encoders)
    if args.fusion:
        w, grid = fusion_weight(args.cache, not args.no_flip)
        print("fusion weight search (dlib weight, TAR@1e-4 on CelebA fit ids): "
              + ", ".join(f"{a:.1f}:{100 * b:.2f}" for a, b in grid))
        encoders.append(f"fusion:{w:.1f}")
    res = report(args.cache, args.lfw, encoders, not args.no_flip)
    for enc, r in res.items():
        ip = r["impostor_pairs"]
        print(f"\n{enc} (flip {'on' if not args.no_flip else 'off'}): LFW 10-fold {100 * r['lfw_accuracy']:.2f} % "
              f"± {100 * r['lfw_accuracy_std']:.2f}; no face in {r['lfw_no_face_in_pairs']} pair images")
        print(f"  fit impostors: LFW {ip['lfw_fit']:,} + CelebA {ip['celeba_fit']:,}; checked on LFW eval "
              f"{ip['lfw_eval']:,} and CelebA held-out {ip['celeba_heldout']:,} impostor pairs")
        print("  | FMR | distance | fit impostors ≤ t | FMR LFW eval people | FMR CelebA held-out | TAR pairs.txt "
              "| TAR LFW all genuine | TAR CelebA held-out | fit on LFW only → FMR CelebA | fit on CelebA only → FMR LFW |")
        for t in r["thresholds"]:
            cs = t["cross_source"]
            print(f"  | {t['fmr']:g} | {t['distance']:.4f} | {t['impostors_at_or_below']:,} of {t['impostor_pairs']:,} "
                  f"| {t['fmr_lfw_eval_people']:.2e} | {t['fmr_celeba_heldout']:.2e} | {100 * t['tar_pairs_txt']:.2f} % "
                  f"| {100 * t['tar_lfw_all_genuine']:.2f} % | {100 * t['tar_celeba_heldout']:.2f} % "
                  f"| {cs['fit_lfw_only']['fmr_celeba_heldout']:.2e} | {cs['fit_celeba_only']['fmr_lfw_eval_people']:.2e} |")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
