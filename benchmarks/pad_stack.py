"""Which liveness stack? Every candidate measured leave one source out on all door-like
PAD sources (issue 19), per source, with and without per-installation calibration,
per frame and per door window (k of n consecutive attack frames live).

    facelatch-convert pad-data --mirrors /work/.mirror --nuaa ../shared/data/nuaa-train --out build/pad --workers 2
    python benchmarks/pad_stack.py features            # members' features -> build/pad/features.npz
    python benchmarks/pad_stack.py features --model build/liveness_int8.json --features build/features_int8.npz
    python benchmarks/pad_stack.py report [--only NAME] [--json build/pad_stack.json]

Candidates: the members alone (MiniFASNetV2 on the 2.7x patch, V1SE on 4.0x, each
also on the wide 8x patch: the context members), zero-shot fusions (mean P(live)),
and linear heads (convert/pad_stack.py) over the members' log-odds or 128-D
features, trained without the source under test.  Thresholds: fixed before the
source is looked at — zero-shot candidates on the other door-like sources' live
frames; heads by nested leave one source out.  Calibration (edge/calibration.py's
rule): the first half of the source's live frames in capture order set
max(threshold, the 2 %-quantile); judged on the second half and every attack.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convert.liveness import DOOR_KINDS  # noqa: E402
from convert.pad_data import BY_NAME  # noqa: E402
from convert.liveness import SCAN_PATCHES  # noqa: E402
from edge.liveness import FRAME, member_log_odds, parse_scale  # noqa: E402
from convert.pad_stack import capture_order, judge, nested_loso, thresholds_nested, thresholds_zero_shot  # noqa: E402

WEIGHTS = ROOT.parent / "shared" / "weights" / "minifasnet"
MEMBERS = {"v2": ("2.7_80x80_MiniFASNetV2.pth", "crops_v2"), "v1se": ("4_0_0_80x80_MiniFASNetV1SE.pth", "crops_v1se"),
           "v2wide": ("2.7_80x80_MiniFASNetV2.pth", "crops_wide"),
           "v1sewide": ("4_0_0_80x80_MiniFASNetV1SE.pth", "crops_wide"),
           "v1seframe": ("4_0_0_80x80_MiniFASNetV1SE.pth", "crops_frame")}  # the whole frame (edge.liveness.FRAME)


def features(scan_path, out, model=None):
    """Every member's features and logits on every found face: through per-member float
    conversions of the .pth weights, or (``model``: a liveness card) through that stacked
    TFLite model itself, e.g. an int8 one (its members named as in MEMBERS)."""
    z = np.load(scan_path, allow_pickle=False)  # lazy: each key is read when asked for
    found = z["found"]
    res = {"index": np.flatnonzero(found)}
    if model:
        res.update(stack_outputs(model, z, found))
    else:
        from convert.pad_stack import member_outputs

        for name, (pth, crops) in MEMBERS.items():
            f, logit = member_outputs(WEIGHTS / pth, z[crops][found])
            res[f"{name}_feat"], res[f"{name}_logits"] = f.astype(np.float32), logit.astype(np.float32)
            print(name, f.shape, flush=True)
    np.savez(out, **res)


def member_names(card) -> list[str]:
    """MEMBERS' names of a stacked card's members: v2 / v1se, "wide" on the 8x patch."""
    names = []
    for m in card.data["members"]:
        net = {"minifasnet_v2": "v2", "minifasnet_v1se": "v1se"}.get(m["network"])
        scale = parse_scale(m["crop_scale"])
        name = f"{net}frame" if scale == FRAME else f"{net}wide" if scale == 8.0 else net
        if name not in MEMBERS or MEMBERS[name][1] != SCAN_PATCHES.get(scale):
            raise SystemExit(f"{card.path.name}: member {m['network']} at {m['crop_scale']}x is none of "
                             f"{list(MEMBERS)}")
        names.append(name)
    return names


def stack_outputs(card_path, z, found) -> dict:
    """{name_feat, name_logits} of each member, through the stacked model (batch of one,
    as on the device), its output split as the card says: features, then logits."""
    from convert.liveness import model_logits, scan_patches
    from edge.modelcard import load_card

    card = load_card(card_path, kind="liveness")
    names = member_names(card)
    if int(card.data.get("outputs", {}).get("features", 0)) != 128 * len(names):
        raise SystemExit(f"{card.path.name} has no feature output: import it with --features")
    patches = scan_patches({k: z[k] for k in SCAN_PATCHES.values() if k in z.files}, card.data["crop"]["scales"])
    out = model_logits(card.model_path, patches[found])
    feats, logits = out[:, :-3 * len(names)], out[:, -3 * len(names):]
    res = {}
    for i, name in enumerate(names):
        res[f"{name}_feat"] = feats[:, 128 * i:128 * (i + 1)].astype(np.float32)
        res[f"{name}_logits"] = logits[:, 3 * i:3 * (i + 1)].astype(np.float32)
    print(f"{card.model_path.name}: {', '.join(names)} on {len(out)} faces", flush=True)
    return res


def quality(scan_path, out):
    """Would the door judge this face at all?  ``judged``: the device's quality gate (the
    default encoder card's limits, the chip measures included) and ``min_face_px`` on every
    found face -- the frames the liveness heads train and are measured on.  ``door_judged``:
    also as the daemon with its default config sees the whole frame -- its detector finds a
    face, and not several big enough (``multiple_faces = "deny"``: a crowd is denied before
    any liveness or identity; ``door-frames`` measures on these).  Every measure is stored
    too (``gate-cost`` reads them)."""
    from edge.config import Config
    from edge.fusion import encoder_stages
    from edge.images import read_image
    from edge.modelcard import load_card, models_dir
    from edge.pipeline import DEFAULT_ENCODER, FaceFinder
    from edge.policy import DoorPolicy
    from edge.quality import QualityGate

    z = np.load(scan_path, allow_pickle=False)
    card = load_card(models_dir() / f"{DEFAULT_ENCODER}.json")
    gate = QualityGate.from_card(card)
    aligner, _ = encoder_stages(card, 1)  # the chip measures (coverage, light asymmetry) need the chip
    cfg = Config()
    min_px = cfg.policy.min_face_px
    finder = FaceFinder(aligner=None, full_range_fallback=cfg.model.full_range_fallback)  # the daemon's detector
    door = DoorPolicy(cfg.policy)  # a fresh policy at time 0: only its size and crowd rules apply
    idx = np.flatnonzero(z["found"])
    paths, boxes, marks = z["path"], z["boxes"], z["landmarks"]  # read once (an npz re-reads on every z[key])
    ok, at_door, reasons, door_reasons, values, names = (np.zeros(len(idx), bool), np.zeros(len(idx), bool),
                                                         [], [], [], None)
    for j, i in enumerate(idx):
        rgb = read_image(paths[i])
        q = gate.check(rgb, boxes[i], marks[i], aligner.chip(rgb, marks[i]), aligner)
        names = names or sorted(q.measures)
        values.append([q.measures[k] for k in names])
        big = max(boxes[i][2:]) >= min_px
        ok[j] = q.ok and big
        reasons.append("" if ok[j] else q.reason if not q.ok else "small")
        seen = [f.box for f in finder.detect(rgb)]
        picked, why = door.judging(0.0, 0.0, seen)  # (None, None) without faces
        at_door[j] = ok[j] and picked is not None
        door_reasons.append(reasons[-1] or ("" if at_door[j] else why.kind if why else
                                            "no face (the daemon's detector)"))
    np.savez(out, index=idx, judged=ok, reason=np.array(reasons), door_judged=at_door,
             door_reason=np.array(door_reasons), measure_names=np.array(names),
             measures=np.array(values, np.float64), min_face_px=min_px)
    print(f"{ok.mean():.1%} of {len(idx)} found faces pass the door's gate; {at_door.mean():.1%} are judged by the "
          f"door (crowds and faces its detector misses left out)")


SHIPPED_CAP, SHIPPED_BPCER = 400, 0.05  # the shipped head's recipe (models/facelatch_liveness.json)


def held_out(scan_path, features_path, quality_path) -> dict:
    """The shipped recipe's nested leave-one-source-out heads (``fit-liveness-head --inputs
    features --rule pooled --bpcer 0.05 --cap 400 --train-crops``) on the ``judged`` faces:
    every door-like source's scores from the head trained without it (``nest["test"]``) and
    its threshold set without it (``thr``); per judged face its scan row (``index``),
    source, label and whether the default door judges it (``door_judged``)."""
    z, f, q = (np.load(p, allow_pickle=False) for p in (scan_path, features_path, quality_path))
    assert np.array_equal(f["index"], q["index"])
    judged = q["judged"]  # the heads train and are tuned on these; door_judged is a subset of them
    x = np.hstack([f[f"{m}_feat"][judged] for m in ("v2", "v1se", "v1sewide")]).astype(np.float64)
    index = f["index"][judged]
    source, live = z["source"][index], z["live"][index]
    door = sorted(s for s in set(source) if BY_NAME[s].kind in DOOR_KINDS)
    crops = np.array([BY_NAME[s].kind == "crops" for s in source])
    nest = nested_loso(x, live, source, door, train_extra=crops, cap=SHIPPED_CAP)
    return {"index": index, "source": source, "live": live, "door_judged": q["door_judged"][judged], "door": door,
            "nest": nest, "thr": thresholds_nested(nest, live, source, door, SHIPPED_BPCER, "pooled")}


def door_frames(args):
    """The shipped recipe (the nested leave-one-source-out heads and thresholds of
    ``fit-liveness-head --inputs features --rule pooled --bpcer 0.05 --cap 400 --train-crops``,
    trained and tuned on ``judged`` faces), measured on the frames the default door judges
    (``door_judged``: no crowd, the daemon's detector) against ``judged``."""
    h = held_out(args.scan, args.features, args.quality)
    source, live, at_door, nest, thr, door = (h[k] for k in ("source", "live", "door_judged", "nest", "thr", "door"))
    rows = {}
    for s in door:
        ms = source == s
        rows[s] = {"threshold": thr[s]}
        for name, mask in (("judged", np.ones(ms.sum(), bool)), ("door", at_door[ms])):
            sc, lv = nest["test"][s][mask], live[ms][mask]
            rows[s][name] = {"apcer": float(np.mean(sc[~lv] >= thr[s])) if (~lv).any() else 0.0,  # weighted by 0
                             "bpcer": float(np.mean(sc[lv] < thr[s])) if lv.any() else 0.0,
                             "attack": int((~lv).sum()), "live": int(lv.sum())}
    print("| source | threshold | judged faces (live / attack) | APCER | BPCER | frames the door judges | APCER | BPCER |")
    print("|---|---|---|---|---|---|---|---|")
    for s, r in rows.items():
        a, b = r["judged"], r["door"]
        print(f"| {s} | {r['threshold']:.3f} | {a['live']} / {a['attack']} | {a['apcer']:.2%} | {a['bpcer']:.2%} | "
              f"{b['live']} / {b['attack']} | {b['apcer']:.2%} | {b['bpcer']:.2%} |")
    for name in ("judged", "door"):
        v = [r[name] for r in rows.values()]
        ap = sum(r["apcer"] * r["attack"] for r in v) / sum(r["attack"] for r in v)
        bp = sum(r["bpcer"] * r["live"] for r in v) / sum(r["live"] for r in v)
        print(f"{name}: pooled APCER {ap:.2%} (worst {max(r['apcer'] for r in v):.2%}), pooled BPCER {bp:.2%} "
              f"(worst {max(r['bpcer'] for r in v):.2%}), BPCER <= 5 % on {sum(r['bpcer'] <= 0.05 for r in v)} of {len(v)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def gate_cost(scan_path, quality_path, before=None):
    """Per door-like source, the share of its live faces the door's gate judges (and
    enrolment's, and ``before``: an encoder card of an earlier gate) — what the quality
    gate costs on real webcams (the stored measures of ``quality``)."""
    import json

    from edge.modelcard import load_card, models_dir
    from edge.pipeline import DEFAULT_ENCODER
    from edge.quality import QualityGate

    z, q = np.load(scan_path, allow_pickle=False), np.load(quality_path, allow_pickle=False)
    if "measures" not in q.files:
        raise SystemExit(f"{quality_path} holds no measures: run `pad_stack.py quality` again")
    names = [str(n) for n in q["measure_names"]]
    rows = [dict(zip(names, v)) for v in q["measures"]]
    boxes = z["boxes"][q["index"]]  # the size rule as `quality` and the policy apply it: the box's larger side
    big = np.maximum(boxes[:, 2], boxes[:, 3]) >= float(q["min_face_px"])
    card = load_card(models_dir() / f"{DEFAULT_ENCODER}.json")
    gates = {"door": QualityGate.from_card(card), "enrolment": QualityGate.from_card(card, enrolment=True)}
    if before:
        gates = {"before": QualityGate(json.loads(Path(before).read_text())["quality"]["limits"]), **gates}
    ok = {k: big & np.array([g.judge(r).ok for r in rows]) for k, g in gates.items()}
    src, live = z["source"][q["index"]], z["live"][q["index"]]
    door = sorted(s for s in set(src) if BY_NAME[s].kind in DOOR_KINDS)
    print(f"| source | live faces | {' | '.join(f'judged: {k}' for k in gates)} |")
    print("|---|---|" + "---|" * len(gates))
    for s in door + ["all"]:
        m = live & (np.isin(src, door) if s == "all" else src == s)
        print(f"| {s} | {m.sum():,} | " + " | ".join(f"{ok[k][m].mean():.1%}" for k in gates) + " |")


def log_odds(logits):
    """log P(live) / P(not live) of one member's 3 logits (N, 3) -> (N,)."""
    return member_log_odds(logits)[:, 0]


def p_live(logits):
    return 1 / (1 + np.exp(-log_odds(logits)))


def report(args):
    z = np.load(args.scan, allow_pickle=False)
    f = np.load(args.features, allow_pickle=False)
    idx = f["index"]
    keep = np.ones(len(idx), bool)
    if args.judged_only:
        qz = np.load(args.quality, allow_pickle=False)
        assert np.array_equal(qz["index"], idx)
        keep = qz["judged"]
    f = {k: f[k][keep] for k in f.files}
    idx = f["index"]
    source, live = z["source"][idx], z["live"][idx]
    # capture order: (sequence, frame number) as one sortable key
    order = capture_order(z["sequence"][idx], z["order"][idx])
    kinds = {s: BY_NAME[s].kind for s in set(source)}
    door = sorted(s for s, k in kinds.items() if k in DOOR_KINDS)
    crops = sorted(s for s, k in kinds.items() if k == "crops")
    have = [m for m in MEMBERS if f"{m}_logits" in f]  # a stacked model's features hold its own members only
    lo = {m: log_odds(f[f"{m}_logits"]) for m in have}
    cands = {
        "v2 (shipped)": ("zero", p_live(f["v2_logits"])),
        "v1se": ("zero", p_live(f["v1se_logits"])),
        "v2wide": ("zero", p_live(f["v2wide_logits"])),
        "v1sewide": ("zero", p_live(f["v1sewide_logits"])),
        "mean v2+v1se": ("zero", (p_live(f["v2_logits"]) + p_live(f["v1se_logits"])) / 2),
        "mean v2+v1se+v1sewide": ("zero", (p_live(f["v2_logits"]) + p_live(f["v1se_logits"]) +
                                           p_live(f["v1sewide_logits"])) / 3),
        "head: log-odds v2,v1se": ("head", np.stack([lo["v2"], lo["v1se"]], 1)),
        "head: log-odds v2,v1se,v1sewide": ("head", np.stack([lo["v2"], lo["v1se"], lo["v1sewide"]], 1)),
        "head: log-odds all 4": ("head", np.stack([lo[m] for m in MEMBERS], 1)),
        "head: features v2+v1se": ("head", np.hstack([f["v2_feat"], f["v1se_feat"]])),
        "head: features v2+v1se+v1sewide": ("head", np.hstack([f["v2_feat"], f["v1se_feat"], f["v1sewide_feat"]])),
    } if set(have) == set(MEMBERS) else {
        "head: features " + "+".join(have): ("head", np.hstack([f[f"{m}_feat"] for m in have])),
        "head: log-odds " + ",".join(have): ("head", np.stack([lo[m] for m in have], 1)),
    }
    if args.only:
        cands = {k: v for k, v in cands.items() if any(o in k for o in args.only)}
    results = {}
    for name, (kind, x) in cands.items():
        nest = None
        if kind == "head":  # the heads do not depend on the threshold rule: fitted once per candidate
            extra = np.isin(source, crops) if args.train_crops else None
            nest = nested_loso(x, live, source, door, train_extra=extra, l2=args.l2, cap=args.cap)
        for how, q in ((h, q) for h in args.rule for q in args.q):
            if kind == "zero":
                thr, shipped = thresholds_zero_shot(x, live, source, door, q, how)
                per_scores = {s: x[source == s] for s in door}
                crop_scores = {s: x[source == s] for s in crops}
            else:
                thr = thresholds_nested(nest, live, source, door, q, how)
                per_scores = nest["test"]
                crop_scores = {}
            rows = {}
            for s in door:
                m = source == s
                rows[s] = {"plain": judge(per_scores[s], live[m], source[m], order[m], thr[s]),
                           "calibrated": judge(per_scores[s], live[m], source[m], order[m], thr[s], calibrate=True)}
            for s in crop_scores:
                m = source == s
                rows[s] = {"plain": judge(crop_scores[s], live[m], source[m], order[m], shipped)}
            results[f"{name} @{how} q{q:g}"] = rows
            print_table(f"{name}, threshold rule: {how} {q:.0%} of the tuning sources' live frames", rows, door)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def pooled(rows, door, which):
    na = sum(rows[s][which]["attack"] for s in door)
    nl = sum(rows[s][which]["live"] for s in door)
    ap = sum(rows[s][which]["apcer"] * rows[s][which]["attack"] for s in door) / na
    bp = sum(rows[s][which]["bpcer"] * rows[s][which]["live"] for s in door) / nl
    return ap, bp


def print_table(title, rows, door):
    print(f"\n## {title}")
    print(f"{'source':15s} {'live':>5s} {'att':>5s} {'AUC':>6s} {'thr':>6s} {'APCER':>7s} {'BPCER':>6s} {'win':>6s} |"
          f" {'cal thr':>7s} {'APCER':>7s} {'BPCER':>6s} {'win':>6s}")
    for s, r in rows.items():
        p = r["plain"]
        line = (f"{s:15s} {p['live']:5d} {p['attack']:5d} {p['auc']:6.3f} {p['threshold']:6.3f} {p['apcer']:7.2%} "
                f"{p['bpcer']:6.2%} {p['windows']:6.2%} |")
        if "calibrated" in r:
            c = r["calibrated"]
            line += f" {c['threshold']:7.3f} {c['apcer']:7.2%} {c['bpcer']:6.2%} {c['windows']:6.2%}"
        print(line)
    ap, bp = pooled(rows, door, "plain")
    worst = max(rows[s]["plain"]["apcer"] for s in door)
    worst_b = max(rows[s]["plain"]["bpcer"] for s in door)
    cap, cbp = pooled(rows, door, "calibrated")
    cworst = max(rows[s]["calibrated"]["apcer"] for s in door)
    cworst_b = max(rows[s]["calibrated"]["bpcer"] for s in door)
    print(f"door pooled: APCER {ap:.2%} (worst {worst:.2%}), BPCER {bp:.2%} (worst {worst_b:.2%}) | calibrated: "
          f"APCER {cap:.2%} (worst {cworst:.2%}), BPCER {cbp:.2%} (worst {cworst_b:.2%})", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["features", "quality", "gate-cost", "report", "door-frames"])
    p.add_argument("--scan", default="build/pad/scan.npz")
    p.add_argument("--features", default="build/pad/features.npz")
    p.add_argument("--model", help="features: through this stacked liveness card's model (e.g. an int8 one) "
                                   "instead of float conversions of each member's weights")
    p.add_argument("--quality", default="build/pad/quality.npz", help="which faces the door would judge")
    p.add_argument("--before", help="gate-cost: also an earlier encoder card's door gate (e.g. from git show)")
    p.add_argument("--q", type=float, nargs="+", default=[0.01, 0.02])
    p.add_argument("--rule", nargs="+", default=["min", "pooled"], choices=["min", "pooled"])
    p.add_argument("--judged-only", action="store_true", help="only faces the door would judge (quality gate, size)")
    p.add_argument("--l2", type=float, default=1.0)
    p.add_argument("--cap", type=int, default=600, help="heads: at most this many training frames per (source, label)")
    p.add_argument("--train-crops", action="store_true",
                   help="heads: add the tight-crop sources to every training set (never test or tuning frames)")
    p.add_argument("--only", nargs="+")
    p.add_argument("--json")
    args = p.parse_args()
    if args.what == "features":
        features(args.scan, args.features, args.model)
    elif args.what == "quality":
        quality(args.scan, args.quality)
    elif args.what == "gate-cost":
        gate_cost(args.scan, args.quality, args.before)
    elif args.what == "door-frames":
        door_frames(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
