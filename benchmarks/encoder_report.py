"""Encoders compared on cached embeddings (benchmarks/embed_cache.py): LFW 10-fold and
TAR at FMR 1e-3/1e-4/1e-5 through our pipeline, thresholds fitted on impostors from
two sources and checked on people and sources the fit never saw.

    python benchmarks/encoder_report.py --cache build/emb --lfw ../shared/data/lfw [--json build/emb/report.json]

Sources and splits (by identity, fixed):
- LFW eval people: everyone in pairs.txt (scored: pairs.txt 10-fold, all their pairs);
- LFW fit people: everyone else (mostly one image each): impostor pairs for the fit;
- CelebA fit identities: even CelebA identity numbers; CelebA held-out: odd ones.
The card's thresholds come from LFW fit + CelebA fit impostors, each row the strictest of
the per-source thresholds at which the source's 95 % upper confidence bound on FMR is at
or below the row (convert.metrics.strictest_threshold); the earlier fit (pooled point
estimate) is measured alongside for comparison.  Each row's FMR on the unseen sets comes
with the impostor pairs behind it (how many identity pairs and people, the kinds of pair)
and two 95 % intervals: pairs independent (exact Poisson) and a bootstrap over people.
The fusion weight comes from CelebA fit identities only.

A fused card (kind "fusion", edge.fusion) is scored like any encoder: its embedding
is built from its members' cached raw outputs with the card's own weights, exactly as
edge.fusion.FusedEmbedder builds it on the device.  The weight search:

    python benchmarks/encoder_report.py --lfw ../shared/data/lfw --fusion-weight
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convert.lfw import people, read_pairs  # noqa: E402
from convert.metrics import (cross_identity_distances, fmr_interval, fmr_upper_bound, kfold_accuracy,  # noqa: E402
                             rate_at_or_below, strictest_threshold, threshold_at_fmr, THRESHOLDS_METHOD)

FMRS = (1e-2, 1e-3, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6)  # the lower rows serve households (FMR / N)
DLIB, SFACE = "facelatch_dlib_resnet_int8", "facelatch_sface_int8"
CONFIDENCE = 0.95
LFW_IMAGE_CENTRE = np.array([125.0, 125.0])  # LFW images are 250 x 250, centred on the labelled face
CENTRE_OFFSET_MAX = 50.0  # px: a chosen face further out is another person in the photo (see BENCHMARKS)
BOOTSTRAP = 1000


def unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class FaceSet:
    """One cached set: keys, identity labels, found mask, quality, embeddings per encoder."""

    def __init__(self, cache: Path, name: str):
        z = np.load(cache / f"{name}__faces.npz")
        self.keys, self.labels, self.found = z["keys"], z["labels"], z["found"]
        self.quality = dict(zip(z["quality_names"], z["quality"].T))
        self.landmarks = z["landmarks"]
        self.raw = {f.name.split("__")[1][:-4]: np.load(f)["raw"] for f in sorted(cache.glob(f"{name}__*.npz"))
                    if not f.name.endswith(("__faces.npz", "__chipq.npz"))}
        chipq = cache / f"{name}__chipq.npz"  # per encoder (benchmarks/embed_cache.py CHIP_QUALITY)
        self.chip_quality = {}
        if chipq.exists():
            z = np.load(chipq)
            self.chip_quality = {enc: dict(zip(z["names"], z[enc].T)) for enc in z.files if enc != "names"}

    def quality_for(self, encoder: str) -> dict:
        """The face measures and ``encoder``'s chip measures (a fused card: the least chip coverage of
        its members and its first member's light asymmetry, as edge.fusion.FusedAligner measures them)."""
        members = fusion_members(encoder)
        if members:
            per = [self.chip_quality.get(m, {}) for m, _ in members]
            chip = ({"chip_coverage": np.minimum.reduce([p["chip_coverage"] for p in per]),
                     "light_asymmetry": per[0]["light_asymmetry"]} if all(per) else {})
        else:
            chip = self.chip_quality.get(encoder, {})
        return {**self.quality, **chip}

    def embeddings(self, encoder: str, flip: bool = True) -> np.ndarray:
        """L2-normalized (N, dim).  A fused card's members (or "fusion:W" = W dlib + (1 - W) SFace):
        [sqrt(w_1) e_1, sqrt(w_2) e_2, ...], whose cosine distance is sum_i w_i d_i (edge.fusion)."""
        members = fusion_members(encoder)
        if members:
            return np.concatenate([np.sqrt(w) * self.embeddings(m, flip) for m, w in members], axis=1)
        r = self.raw[encoder]
        return unit(r[:, 0] + r[:, 1]) if flip else unit(r[:, 0])  # as edge.embed.Embedder


def fusion_members(encoder: str) -> list[tuple[str, float]]:
    """[(member name, weight)] of a fused encoder ("fusion:W", or a fused card's name), else []."""
    if encoder.startswith("fusion:"):
        w = float(encoder.split(":")[1])
        return [(DLIB, w), (SFACE, 1 - w)]
    from edge.modelcard import load_card, models_dir

    path = models_dir() / f"{encoder}.json"
    if not path.is_file():
        return []
    card = load_card(path)
    return [(m.data["name"], w) for m, w in card.members]


def impostor_pair_count(labels: np.ndarray) -> int:
    m = np.unique(labels, return_counts=True)[1].astype(np.int64)
    return int((m.sum() ** 2 - np.sum(m ** 2)) // 2)


class TailPairs:
    """The impostor pairs of a labelled set at or below ``t_max``, with who they are, to
    count how many people and identity pairs a measured false-match rate rests on and to
    give it a confidence interval that treats people, not pairs, as the independent units."""

    def __init__(self, e: np.ndarray, labels: np.ndarray, t_max: float, off_centre: np.ndarray | None = None,
                 chunk: int = 2048):
        self.off_centre = off_centre  # per image: the chosen face is not the photo's labelled (centred) one
        self.names, self.person = np.unique(labels, return_inverse=True)
        self.images = np.bincount(self.person).astype(np.float64)
        d, a, b = [], [], []
        for s in range(0, len(e), chunk):
            dist = 1 - e[s:s + chunk] @ e.T
            i, j = np.nonzero(dist <= t_max)
            keep = (j > i + s) & (self.person[i + s] != self.person[j])
            d.append(dist[i[keep], j[keep]])
            a.append(i[keep] + s)
            b.append(j[keep])
        self.d, self.a, self.b = np.concatenate(d), np.concatenate(a), np.concatenate(b)

    def clustered_interval(self, t: float, confidence: float = 0.95, reps: int = BOOTSTRAP, seed: int = 0):
        """Percentile interval of the FMR over a bootstrap of PEOPLE (each resampled person
        brings all their images and all their pairs)."""
        hit = self.d <= t
        p, q = self.person[self.a[hit]], self.person[self.b[hit]]
        rng = np.random.default_rng(seed)
        n = len(self.images)
        rates = []
        for _ in range(reps):
            w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
            wm = w * self.images
            rates.append(np.sum(w[p] * w[q]) / ((wm.sum() ** 2 - np.sum(wm ** 2)) / 2))
        a = (1 - confidence) / 2
        return float(np.quantile(rates, a)), float(np.quantile(rates, 1 - a))

    def measured(self, t: float, pairs: int, top: int = 5) -> dict:
        hit = self.d <= t
        k = int(hit.sum())
        who = Counter(tuple(sorted((str(self.names[x]), str(self.names[y]))))
                      for x, y in zip(self.person[self.a[hit]], self.person[self.b[hit]]))
        a, b = self.a[hit], self.b[hit]
        kinds = {}
        if self.off_centre is not None:  # LFW: names are First_Last
            wrong = self.off_centre[a] | self.off_centre[b]
            surname = np.array([self.names[x].split("_")[-1] == self.names[y].split("_")[-1]
                                for x, y in zip(self.person[a], self.person[b])], bool)
            kinds = {"a_face_off_centre": int(wrong.sum()), "same_surname": int(np.sum(surname & ~wrong)),
                     "other": int(np.sum(~surname & ~wrong))}
        return {"impostor_pairs": pairs, "impostors_at_or_below": k, "fmr": k / pairs, "kinds": kinds,
                "interval95_pairs_independent": fmr_interval(k, pairs, 0.95),
                "interval95_people_bootstrap": self.clustered_interval(t),
                "identity_pairs": len(who),
                "people": int(len(np.unique(np.concatenate([self.person[self.a[hit]], self.person[self.b[hit]]])))),
                "images": int(len(np.unique(np.concatenate([self.a[hit], self.b[hit]])))),
                "top_identity_pairs": [[" / ".join(ids), c] for ids, c in who.most_common(top)]}


def measured(imp: np.ndarray, tail: TailPairs, t: float) -> dict:
    return tail.measured(t, len(imp))


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
        fit_sources = {"lfw_fit": lfw_fit_imp, "celeba_fit": cel_fit_imp}
        # the card's rows, and the earlier fit (pooled point estimate) for comparison
        fits = {f: (*strictest_threshold(fit_sources, f, CONFIDENCE), threshold_at_fmr(fit_imp, f)) for f in FMRS}
        t_max = max(max(t, tp) for t, _, tp in fits.values())
        centred = CENTRE_OFFSET_MAX >= np.linalg.norm(
            (lfw_set.landmarks.min(1) + lfw_set.landmarks.max(1)) / 2 - LFW_IMAGE_CENTRE, axis=1)
        unseen = {"lfw_eval_people": (ev_imp, TailPairs(E[ok & is_eval], lfw_set.labels[ok & is_eval], t_max,
                                                        ~centred[ok & is_eval])),
                  "celeba_heldout": (ho_imp, TailPairs(C[okc & ~celeba_fit], celeba.labels[okc & ~celeba_fit],
                                                       t_max))}
        ev_centred = TailPairs(E[ok & is_eval & centred], lfw_set.labels[ok & is_eval & centred], t_max,
                               ~centred[ok & is_eval & centred])
        ev_centred_pairs = impostor_pair_count(lfw_set.labels[ok & is_eval & centred])
        rows = []
        for f in FMRS:
            t, binding, t_point = fits[f]
            t_lfw_only, t_celeba_only = threshold_at_fmr(lfw_fit_imp, f), threshold_at_fmr(cel_fit_imp, f)
            rows.append({
                "fmr": f, "distance": round(float(t), 4), "impostor_pairs": int(len(fit_imp)),
                "impostors_at_or_below": int(np.sum(fit_imp <= t)),
                "method": THRESHOLDS_METHOD, "binding_source": binding,
                "per_source": {k: {"impostor_pairs": int(len(d)), "impostors_at_or_below": int(np.sum(d <= t)),
                                   "upper_bound": fmr_upper_bound(int(np.sum(d <= t)), len(d), CONFIDENCE)}
                               for k, d in fit_sources.items()},
                "measured": {k: measured(imp, tail, t) for k, (imp, tail) in unseen.items()},
                "measured_lfw_eval_centred_faces": ev_centred.measured(t, ev_centred_pairs),
                "fmr_lfw_eval_people": rate_at_or_below(ev_imp, t),
                "fmr_celeba_heldout": rate_at_or_below(ho_imp, t),
                "tar_pairs_txt": rate_at_or_below(dist[same], t),
                "tar_lfw_all_genuine": rate_at_or_below(ev_gen, t),
                "tar_celeba_heldout": rate_at_or_below(ho_gen, t),
                "pooled_point_estimate": {
                    "distance": round(float(t_point), 4), "impostors_at_or_below": int(np.sum(fit_imp <= t_point)),
                    "measured": {k: measured(imp, tail, t_point) for k, (imp, tail) in unseen.items()},
                    "measured_lfw_eval_centred_faces": ev_centred.measured(t_point, ev_centred_pairs),
                    "tar_pairs_txt": rate_at_or_below(dist[same], t_point),
                    "tar_lfw_all_genuine": rate_at_or_below(ev_gen, t_point),
                    "tar_celeba_heldout": rate_at_or_below(ho_gen, t_point)},
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


def paired_tar(cache: Path, lfw: Path, encoders: list[str], fmr: float = 1e-4) -> dict:
    """Two encoders on the SAME genuine pairs, each at its own card's ``fmr`` row: how many
    pairs only one of them accepts, and the two-sided exact sign-test (McNemar) p-value."""
    from math import comb

    from edge.modelcard import load_card, models_dir

    t = [load_card(models_dir() / f"{e}.json").threshold(fmr, exact=True) for e in encoders]
    celeba, lfw_set = FaceSet(cache, "celeba"), FaceSet(cache, "lfw")
    held = (np.array([int(lab[6:]) for lab in celeba.labels]) % 2 == 1) & celeba.found
    index = {k: i for i, k in enumerate(lfw_set.keys)}
    same = [p for p in read_pairs(lfw / "pairs.txt") if p.same]
    ia, ib = np.array([index[p.a] for p in same]), np.array([index[p.b] for p in same])
    out = {}
    for name, accepted in (
            ("pairs_txt", [np.sum(E[ia] * E[ib], axis=1) >= 1 - th
                           for E, th in ((lfw_set.embeddings(e), th) for e, th in zip(encoders, t))]),
            ("celeba_heldout", [cosine_pairs(celeba.embeddings(e)[held], celeba.labels[held])[0] <= th
                                for e, th in zip(encoders, t)])):
        a, b = accepted
        only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
        n, k = only_a + only_b, min(only_a, only_b)
        p = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
        out[name] = {"pairs": int(len(a)), "tar": [float(a.mean()), float(b.mean())], "only": [only_a, only_b], "p": p}
        print(f"{name}: {len(a):,} genuine pairs at the {fmr:g} rows; TAR {100 * a.mean():.2f} % ({encoders[0]}) vs "
              f"{100 * b.mean():.2f} % ({encoders[1]}); accepted only by the first {only_a}, only by the second "
              f"{only_b}; sign test p = {p:.2g}")
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
    ap.add_argument("--paired", nargs=2, metavar=("A", "B"),
                    help="only: TAR of two encoder cards on the same genuine pairs at their 1e-4 rows, sign test")
    ap.add_argument("--fusion-weight", action="store_true",
                    help="only the fusion weight search (TAR at FMR 1e-4 on CelebA fit ids), then exit")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--dark", action="store_true", help="dark probes: FMR with and without the quality gate")
    ap.add_argument("--dark-limits", type=int, nargs=2, metavar=("BRIGHTNESS", "CONTRAST"),
                    help="--dark: also the FMR at these limits (e.g. another card's), for comparison")
    ap.add_argument("--from-json", type=Path, help="reuse an earlier --json result instead of recomputing the tables")
    ap.add_argument("--write-card", action="store_true",
                    help="write the fitted thresholds (and, with --dark, the quality limits) into the encoders' cards")
    args = ap.parse_args()
    encoders = list(args.encoders)
    if args.paired:
        paired_tar(args.cache, args.lfw, list(args.paired))
        return
    if args.fusion_weight:
        w, grid = fusion_weight(args.cache, not args.no_flip)
        print("fusion weight search (dlib weight: TAR@1e-4 on CelebA fit ids): "
              + ", ".join(f"{a:.1f}: {100 * b:.2f} %" for a, b in grid) + f"\nchosen dlib weight {w:.1f}")
        return
    if args.fusion and not args.from_json:
        w, grid = fusion_weight(args.cache, not args.no_flip)
        print("fusion weight search (dlib weight, TAR@1e-4 on CelebA fit ids): "
              + ", ".join(f"{a:.1f}:{100 * b:.2f}" for a, b in grid))
        encoders.append(f"fusion:{w:.1f}")
    if args.from_json:
        res = {k: v for k, v in json.loads(args.from_json.read_text()).items() if k in encoders}
    else:
        res = report(args.cache, args.lfw, encoders, not args.no_flip)
        if args.json:  # written again below with the dark-face results
            args.json.write_text(json.dumps(res, indent=1, default=float))
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
        print_transfer(r["thresholds"])
    flip = not args.no_flip
    for enc in encoders if args.dark else []:
        if enc.startswith("fusion:"):
            continue
        t = next(r["distance"] for r in res[enc]["thresholds"] if r["fmr"] == 1e-4)
        q = dark_quality(args.cache, enc, t, flip, other_limits=args.dark_limits)
        res[enc]["dark"] = q
        print(f"\n{enc} dark probes vs normal gallery at the 1e-4 threshold {t:.4f}; gate limits {q['limits']} "
              f"(chosen on darktune)")
        for k in ("darktune", "darkeval"):
            a, b = q["no_gate"]["dark_vs_dark"][k], q["gate"]["dark_vs_dark"][k]
            print(f"  {k}, dark vs dark: no gate FMR {a['fmr']:.2e} TAR {100 * a['tar']:.2f} % ({a['faces']} faces, "
                  f"{a['impostor_pairs']:,} impostor pairs) | gate: judged {b['judged']}/{b['faces']}, FMR "
                  f"{b['fmr']:.2e} ({b['impostor_pairs']:,} impostor pairs), TAR {100 * b['tar']:.2f} %")
        a, b = q["no_gate"]["dark_vs_normal"], q["gate"]["dark_vs_normal"]
        print(f"  darkeval probes vs normal references: no gate FMR {a['fmr']:.2e} TAR {100 * a['tar']:.2f} % "
              f"({a['impostor_pairs']:,} impostor pairs) | gate: FMR {b['fmr']:.2e} TAR {100 * b['tar']:.2f} %")
        for k, v in q["normal_faces"].items():
            print(f"  normal faces refused ({k}): {v['refused']} of {v['faces']}")
        for k, v in q.get("other_limits", {}).get("dark_vs_dark", {}).items():
            print(f"  at --dark-limits {q['other_limits']['limits']}: {k}, dark vs dark: judged {v['judged']}/{v['faces']}, "
                  f"FMR {v['fmr']:.2e} ({v['impostor_pairs']:,} impostor pairs), TAR {100 * v['tar']:.2f} %")
    if args.write_card:
        write_cards(res, args)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float))


def print_transfer(rows: list[dict]) -> None:
    """Each row's measured FMR on the unseen sets with its intervals, for the card's fit and
    for the earlier pooled point-estimate fit."""
    def cell(m):
        lo, hi = m["interval95_pairs_independent"]
        clo, chi = m["interval95_people_bootstrap"]
        kinds = "; " + ", ".join(f"{k} {v}" for k, v in m["kinds"].items()) if m["kinds"] else ""
        return (f"{m['fmr']:.2e} ({m['impostors_at_or_below']:,}; {m['identity_pairs']} id pairs, {m['people']} people"
                f"{kinds}) [{lo:.1e}, {hi:.1e}] / [{clo:.1e}, {chi:.1e}]")

    print("  measured FMR (impostors ≤ t; identity pairs, people) [95 % interval, pairs independent] / "
          "[95 % bootstrap over people]; 'centred' = LFW eval without chosen faces off the image centre")
    for fit, get in (("card (strictest per source, 95 % bound)", lambda t: t),
                     ("earlier fit (pooled point estimate)", lambda t: t["pooled_point_estimate"])):
        print(f"  {fit}:")
        print("  | FMR row | distance | LFW eval people | CelebA held-out | LFW eval, centred faces | TAR pairs.txt |")
        for t in rows:
            g = get(t)
            print(f"  | {t['fmr']:g} | {g['distance']:.4f} | {cell(g['measured']['lfw_eval_people'])} "
                  f"| {cell(g['measured']['celeba_heldout'])} | {cell(g['measured_lfw_eval_centred_faces'])} "
                  f"| {100 * g['tar_pairs_txt']:.2f} % |")


def write_cards(res: dict, args) -> None:
    from convert.card import write_json_atomic
    from edge.modelcard import load_card, models_dir

    for enc, r in res.items():
        if enc.startswith("fusion:"):
            continue
        card = load_card(models_dir() / f"{enc}.json")
        data = dict(card.data)
        ip = r["impostor_pairs"]
        data["thresholds"] = significant([{k: t[k] for k in ("fmr", "distance", "impostor_pairs",
                                                             "impostors_at_or_below", "binding_source", "per_source")}
                                          for t in r["thresholds"]])
        data["thresholds_method"] = THRESHOLDS_METHOD
        data["thresholds_measured_on"] = (
            f"{ip['lfw_fit'] + ip['celeba_fit']:,} impostor pairs from two sources: lfw_fit = {ip['lfw_fit']:,} among "
            f"LFW images of people not in pairs.txt and celeba_fit = {ip['celeba_fit']:,} among CelebA-subset images "
            f"of even-numbered identities; embedded by this model through the device pipeline "
            f"(benchmarks/embed_cache.py, benchmarks/encoder_report.py)")
        ev = data.setdefault("evaluation", {})

        def lean(m):  # the card keeps counts and intervals, not the names behind them
            return {k: v for k, v in m.items() if k != "top_identity_pairs"}

        ev["threshold_transfer"] = {
            "checked_on": f"LFW pairs.txt people ({ip['lfw_eval']:,} impostor pairs) and CelebA odd-numbered "
                          f"identities ({ip['celeba_heldout']:,} impostor pairs), neither in the fit; intervals: "
                          f"exact Poisson (pairs independent) and a bootstrap over people",
            "rows": [{"fmr": t["fmr"], "distance": t["distance"],
                      "measured": {k: lean(m) for k, m in t["measured"].items()},
                      "measured_lfw_eval_centred_faces": lean(t["measured_lfw_eval_centred_faces"]),
                      **{k: t[k] for k in ("tar_pairs_txt", "tar_lfw_all_genuine", "tar_celeba_heldout")},
                      "earlier_pooled_point_estimate": {
                          "distance": t["pooled_point_estimate"]["distance"],
                          "measured": {k: lean(m) for k, m in t["pooled_point_estimate"]["measured"].items()},
                          "tar_pairs_txt": t["pooled_point_estimate"]["tar_pairs_txt"]}}
                     for t in significant(r["thresholds"])]}
        ev["lfw_pipeline_10fold"] = {"accuracy": round(r["lfw_accuracy"], 5), "std": round(r["lfw_accuracy_std"], 5),
                                     "flip_average": not args.no_flip}
        if "dark" in r and r["dark"]["limits"]["brightness"] is not None:
            q = r["dark"]
            data["quality"] = {
                "limits": {"brightness": [q["limits"]["brightness"], None], "contrast": [q["limits"]["contrast"], None]},
                "chosen_on": "synthetic low-light copies (benchmarks/dark_faces.py) of LFW people in no pair list, "
                             "dark against dark: the limits that judge the most faces while keeping FMR at the 1e-4 "
                             "row's threshold at or below 1e-4",
                "measured_on_eval_people": {"gate": q["gate"], "no_gate": q["no_gate"]},
                "normal_faces_refused": q["normal_faces"],
                "not_limited": "sharpness, yaw, pitch and face_px are measured and reported (edge.quality) but have "
                               "no limits: none was fitted on data",
            }
            kept = card.data.get("quality") or {}
            if kept.get("limit_basis"):  # limits measured by benchmarks/quality_limits.py stay (re-run it after this)
                data["quality"]["limits"].update({k: v for k, v in kept["limits"].items() if k in kept["limit_basis"]})
                data["quality"].pop("not_limited")
                data["quality"].update({k: kept[k] for k in ("limit_basis", "full_gate_on_eval_people") if k in kept})
        write_json_atomic(card.path, data)
        print(f"updated {card.path}")


def significant(x, digits: int = 4):
    """Floats rounded to ``digits`` significant digits, all through a JSON-like value (the
    card keeps measured rates, not their binary noise; distances have 4 decimals already)."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: significant(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [significant(v, digits) for v in x]
    return x


def cross_distances(a: np.ndarray, la: np.ndarray, b: np.ndarray, lb: np.ndarray, chunk: int = 1024):
    """(genuine, impostor) cosine distances between every probe in a and every image in b
    (pairs of the same image file are the caller's to exclude: a and b are different renderings)."""
    gen, imp = [], []
    for s in range(0, len(a), chunk):
        d = 1 - a[s:s + chunk] @ b.T
        same = la[s:s + chunk, None] == lb[None, :]
        gen.append(d[same])
        imp.append(d[~same])
    return np.concatenate(gen), np.concatenate(imp)


def dark_quality(cache: Path, encoder: str, threshold: float, flip: bool, fmr: float = 1e-4,
                 other_limits: tuple[int, int] | None = None) -> dict:
    """Dark faces (benchmarks/dark_faces.py): FMR at the card's ``fmr`` threshold without and
    with a brightness/contrast gate, for dark probes against dark references (enrolled and
    seen in the dark: the hard case) and against normal references.  The limits are chosen
    on the tune people (LFW people in no pair list, dark vs dark) and measured on the eval
    people (pairs.txt people)."""
    lfw = FaceSet(cache, "lfw")
    sets = {name: FaceSet(cache, name) for name in ("darktune", "darkeval")}

    def judged(dk, b_min, c_min):
        return dk.found & (dk.quality["brightness"] >= b_min) & (dk.quality["contrast"] >= c_min)

    def vs_dark(name, b_min, c_min):
        dk = sets[name]
        j = judged(dk, b_min, c_min)
        if j.sum() < 2:
            return {"faces": int(dk.found.sum()), "judged": int(j.sum()), "impostor_pairs": 0, "fmr": None, "tar": None}
        gen, imp = cosine_pairs(dk.embeddings(encoder, flip)[j], dk.labels[j])
        return {"faces": int(dk.found.sum()), "judged": int(j.sum()), "impostor_pairs": int(len(imp)),
                "fmr": rate_at_or_below(imp, threshold) if len(imp) else None,
                "tar": rate_at_or_below(gen, threshold) if len(gen) else None}

    def vs_normal(name, b_min, c_min):
        dk = sets[name]
        g = lfw.found & np.isin(lfw.labels, dk.labels)
        G, lg, gk = lfw.embeddings(encoder, flip)[g], lfw.labels[g], lfw.keys[g]
        P = dk.embeddings(encoder, flip)
        imp, gen = [], []
        for i in np.flatnonzero(judged(dk, b_min, c_min)):
            d = 1 - G @ P[i]
            imp.append(d[lg != dk.labels[i]])
            gen.append(d[(lg == dk.labels[i]) & (gk != dk.keys[i])])
        imp, gen = np.concatenate(imp), np.concatenate(gen)
        return {"impostor_pairs": int(len(imp)), "fmr": rate_at_or_below(imp, threshold),
                "tar": rate_at_or_below(gen, threshold)}

    grid = [(b, c) for b in range(0, 81, 4) for c in range(0, 41, 2)]
    tune = {bc: vs_dark("darktune", *bc) for bc in grid}
    ok = [bc for bc, r in tune.items() if r["fmr"] is not None and r["fmr"] <= fmr and r["impostor_pairs"] * fmr >= 10]
    b, c = max(ok, key=lambda bc: (tune[bc]["judged"], -bc[0], -bc[1])) if ok else (0, 0)
    normal = {}
    for name in ("lfw", "celeba"):
        s = FaceSet(cache, name)
        normal[name] = {"faces": int(s.found.sum()),
                        "refused": int(np.sum(s.found & ((s.quality["brightness"] < b) | (s.quality["contrast"] < c))))}
    return {"encoder": encoder, "threshold": threshold, "fmr_row": fmr,
            "limits": {"brightness": b, "contrast": c} if ok else {"brightness": None, "contrast": None},
            "no_gate": {"dark_vs_dark": {k: vs_dark(k, 0, 0) for k in sets}, "dark_vs_normal": vs_normal("darkeval", 0, 0)},
            "gate": {"dark_vs_dark": {k: vs_dark(k, b, c) for k in sets}, "dark_vs_normal": vs_normal("darkeval", b, c)},
            "normal_faces": normal,
            **({"other_limits": {"limits": dict(zip(("brightness", "contrast"), other_limits)),
                                 "dark_vs_dark": {k: vs_dark(k, *other_limits) for k in sets}}} if other_limits else {})}

if __name__ == "__main__":
    main()
