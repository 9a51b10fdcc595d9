"""A household at the door: N enrolled people, strangers, and the shipped identification rule.

Households of N people are drawn from people the thresholds never saw (LFW: only
people in pairs.txt -- the card's thresholds come from LFW people NOT in pairs.txt;
CelebA: with ``--cache`` only the odd identities, since the encoder cards' thresholds
use the even ones; ``--celeba-embeddings`` takes every identity it is given, which is
held out only for a card fitted without CelebA).  Each member is enrolled from
``--enroll`` images; the distance to a member is the mean cosine distance to those
images (``edge.decision.person_reference``, what the door ships); every other image of
a member is a member probe; every image of everyone outside the household is a
stranger probe.  Each probe image stands for one attempt-frame.  The decision is the
shipped one: ``edge.decision.Identifier.decide`` at the threshold the card gives for
``household_fmr(model.fmr, N)`` (default FMR 1e-4); "without /N" is the same rule at
the plain 1e-4 threshold, for comparison.

Embeddings come from ``facelatch embed --json`` (one pass per data set, cached):

    facelatch embed ../shared/data/lfw/images --json > build/lfw_int8.jsonl
    facelatch embed ../shared/data/celeba-aligned-10k/images --json > build/celeba_int8.jsonl
    python benchmarks/household.py --lfw ../shared/data/lfw --lfw-embeddings build/lfw_int8.jsonl \\
        --celeba ../shared/data/celeba-aligned-10k --celeba-embeddings build/celeba_int8.jsonl

Or straight from the embedding cache of benchmarks/embed_cache.py, with only people no
threshold saw (LFW pairs.txt people; odd CelebA identities, since the encoder cards'
thresholds use the even ones):

    python benchmarks/household.py --lfw ../shared/data/lfw --cache build/emb \
        --card models/facelatch_sface_int8.json --sizes 1 2 5 20
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from convert.lfw import people, read_pairs  # noqa: E402
from edge.decision import DEFAULT_FMR, Identifier, household_fmr  # noqa: E402
from edge.modelcard import load_card, models_dir  # noqa: E402


def read_embeddings(jsonl: Path) -> dict[str, np.ndarray]:
    out = {}
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        if r.get("embedding"):
            e = np.asarray(r["embedding"], np.float64)
            out[r["path"]] = e / np.linalg.norm(e)
    return out


def lfw_identities(emb: dict, root: Path) -> dict[str, list[np.ndarray]]:
    held_out = people(read_pairs(root / "pairs.txt"))  # the card's thresholds use the others
    ids = defaultdict(list)
    for path, e in emb.items():
        name = Path(path).parent.name
        if name in held_out:
            ids[name].append(e)
    return ids


def celeba_identities(emb: dict, root: Path) -> dict[str, list[np.ndarray]]:
    who = dict(line.split() for line in (root / "identity.txt").read_text().splitlines() if line.strip())
    ids = defaultdict(list)
    for path, e in emb.items():
        ids[who[Path(path).name]].append(e)
    return ids


def cached_identities(cache: Path, encoder: str, lfw: Path) -> list[tuple[str, dict]]:
    """Households from the embedding cache (benchmarks/embed_cache.py; chip + mirror averaged,
    as the door embeds) of people NO threshold saw: LFW people in pairs.txt, and the odd
    CelebA identities (the card's thresholds use LFW people outside pairs.txt and the even
    CelebA identities, benchmarks/encoder_report.py)."""
    from encoder_report import FaceSet

    held_out = people(read_pairs(lfw / "pairs.txt"))
    out = []
    for source, name, keep in (("LFW (people in pairs.txt)", "lfw", lambda lab: lab in held_out),
                               ("CelebA odd identities", "celeba", lambda lab: int(lab[6:]) % 2 == 1)):
        s = FaceSet(cache, name)
        e = s.embeddings(encoder)
        ids = defaultdict(list)
        for i in np.flatnonzero(s.found):
            if keep(s.labels[i]):
                ids[str(s.labels[i])].append(e[i].astype(np.float64))
        out.append((source, ids))
    return out


def household_trials(ids: dict, n: int, households: int, enroll: int, thresholds: dict, rng,
                     normalize: bool = True) -> dict:
    names = sorted(ids)
    vecs = np.concatenate([np.stack(ids[k]) for k in names])
    owner = np.repeat(np.arange(len(names)), [len(ids[k]) for k in names])
    eligible = np.array([i for i, k in enumerate(names) if len(ids[k]) > enroll])
    tot = defaultdict(int)
    for _ in range(households):
        members = rng.choice(eligible, n, replace=False)
        refs, probe_rows, probe_truth = [], [], []
        for j, m in enumerate(members):
            rows = rng.permutation(np.flatnonzero(owner == m))
            ref = vecs[rows[:enroll]].mean(0)
            refs.append(ref / np.linalg.norm(ref) if normalize else ref)
            probe_rows += list(rows[enroll:])
            probe_truth += [j] * (len(rows) - enroll)
        refs = np.stack(refs)
        strangers = ~np.isin(owner, members)
        d_str = 1.0 - vecs[strangers] @ refs.T
        d_mem = 1.0 - vecs[probe_rows] @ refs.T
        truth = np.array(probe_truth)
        tot["stranger_probes"] += int(strangers.sum())
        tot["member_probes"] += len(truth)
        for label, thr in thresholds.items():
            _, chosen, amb = Identifier.decide(d_str, thr)
            tot[f"{label}_strangers_identified"] += int(np.sum(chosen >= 0))
            nearest, chosen, amb = Identifier.decide(d_mem, thr)
            tot[f"{label}_members_correct"] += int(np.sum(chosen == truth))
            tot[f"{label}_members_wrong_person"] += int(np.sum((chosen >= 0) & (chosen != truth)))
            tot[f"{label}_members_ambiguous"] += int(np.sum(amb))
        tot["members_rank1"] += int(np.sum(np.argmin(d_mem, axis=1) == truth))
    tot["eligible_people"] = len(eligible)
    tot["people"] = len(names)
    tot["images"] = len(vecs)
    return dict(tot)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lfw", type=Path)
    p.add_argument("--lfw-embeddings", type=Path)
    p.add_argument("--celeba", type=Path)
    p.add_argument("--celeba-embeddings", type=Path)
    p.add_argument("--cache", type=Path, help="embedding cache (benchmarks/embed_cache.py) instead of the .jsonl files: "
                   "LFW pairs.txt people and odd CelebA identities, embedded by the card's encoder; needs --lfw")
    p.add_argument("--card", type=Path, default=models_dir() / "facelatch_dlib_resnet_int8.json")
    p.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 20])
    p.add_argument("--households", type=int, default=200)
    p.add_argument("--enroll", type=int, default=3, help="images per member enrolled (their mean is the reference)")
    p.add_argument("--fmr", type=float, default=DEFAULT_FMR)
    p.add_argument("--reference", choices=["mean-distance", "normalized-mean"], default="mean-distance",
                   help="mean-distance: what facelatch ships (edge.decision.person_reference: the mean of the cosine "
                        "distances to each enrolled image); normalized-mean: the distance to the re-normalized mean "
                        "(the single-person template's rule before households), for comparison")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    card = load_card(a.card, verify=False)
    sources = cached_identities(a.cache, card.data["name"], a.lfw) if a.cache else []
    if a.lfw and a.lfw_embeddings:
        sources.append(("LFW (people in pairs.txt)", lfw_identities(read_embeddings(a.lfw_embeddings), a.lfw)))
    if a.celeba and a.celeba_embeddings:
        sources.append(("CelebA 10k", celeba_identities(read_embeddings(a.celeba_embeddings), a.celeba)))
    results = []
    for source, ids in sources:
        for n in a.sizes:
            per = household_fmr(a.fmr, n)
            thresholds = {"rule": card.threshold(per), "without_n": card.threshold(a.fmr)}
            r = household_trials(ids, n, a.households, a.enroll, thresholds, np.random.default_rng(a.seed),
                                 a.reference == "normalized-mean")
            r.update(reference=a.reference, source=source, household=n, households=a.households, enroll=a.enroll, fmr=a.fmr,
                     comparison_fmr=per, threshold=thresholds["rule"], threshold_without_n=thresholds["without_n"])
            results.append(r)
            s, m = r["stranger_probes"], r["member_probes"]
            print(f"{source:<26} N={n:<3} threshold {r['threshold']:.4f} (per-comparison FMR {per:g}): "
                  f"strangers identified {r['rule_strangers_identified']}/{s:,} = {r['rule_strangers_identified'] / s:.2e} "
                  f"[without /N: {r['without_n_strangers_identified'] / s:.2e}]; members rank-1 "
                  f"{100 * r['members_rank1'] / m:.2f} %, identified at the default "
                  f"{100 * r['rule_members_correct'] / m:.2f} % (wrong person {r['rule_members_wrong_person']}, "
                  f"ambiguous {r['rule_members_ambiguous']}) of {m:,} member probes; "
                  f"{r['eligible_people']} eligible people, {r['images']:,} images", flush=True)
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
