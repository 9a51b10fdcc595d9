"""How far the mirror image moves a distance, and what judging the first look costs.

The cards' thresholds hold for flip-averaged embeddings (chip + mirror, two encoder
runs).  edge.secondlook judges the chip alone first and adds the mirror only when a
distance lies within a band of the threshold.  This script fixes that band on
tuning faces and checks it on faces it never saw:

- band (tuning: every LFW image, all pairs): the largest |d_first - d_full| over
  probe-vs-enrolled pairs, where the probe is the first look (chip alone) and the
  enrolled side is flip-averaged as enrollment makes it; rounded up to 0.005.
- held-out (CelebA subset, all pairs; never used for the band): at every row of the
  card's FMR table, the decisions the first look takes alone that differ from the
  full embedding's (must be 0), and how often the second look runs for genuine and
  impostor pairs.

    python benchmarks/second_look.py --cache build/emb [--write-cards facelatch_sface_int8] [--json build/second_look.json]

The bound carries over to a household: the distance to a person is the MEAN of the
distances to their enrolled embeddings, and a mean moves by at most the largest move.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.encoder_report import DLIB, SFACE, FaceSet, fusion_members, unit  # noqa: E402
from edge.modelcard import ENCODER_KINDS, load_card, models_dir  # noqa: E402

STEP = 0.005


def looks(fs: FaceSet, encoder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first look, full embedding, labels) of the faces found, unit vectors; for a fused
    card, its members' looks weighted and concatenated (as edge.fusion.FusedEmbedder)."""
    members = fusion_members(encoder)
    if members:
        parts = [(np.sqrt(w), looks(fs, m)) for m, w in members]
        return (np.concatenate([s * lk[0] for s, lk in parts], axis=1),
                np.concatenate([s * lk[1] for s, lk in parts], axis=1), parts[0][1][2])
    r = fs.raw[encoder][fs.found].astype(np.float64)
    return unit(r[:, 0]), unit(r[:, 0] + r[:, 1]), fs.labels[fs.found]


def pair_blocks(first, full, labels, chunk=2048):
    """Yield (d_first, d_full, same) for every ordered pair i != j, in row blocks:
    probe i (first look or full) against enrolled j (full)."""
    n = len(labels)
    for s in range(0, n, chunk):
        e = slice(s, min(s + chunk, n))
        d_first, d_full = 1 - first[e] @ full.T, 1 - full[e] @ full.T
        same = labels[e, None] == labels[None, :]
        off = np.ones_like(same)
        off[np.arange(e.stop - e.start), np.arange(e.start, e.stop)] = False
        yield d_first[off], d_full[off], same[off]


def band_on(fs: FaceSet, encoder: str) -> dict:
    first, full, labels = looks(fs, encoder)
    worst, pairs = 0.0, 0
    for d1, d2, _ in pair_blocks(first, full, labels):
        worst, pairs = max(worst, float(np.abs(d1 - d2).max())), pairs + d1.size
    return {"largest_move": round(worst, 5), "band": round(math.ceil(worst / STEP) * STEP, 3), "pairs": pairs,
            "faces": int(len(labels))}


def check_on(fs: FaceSet, encoder: str, band: float, thresholds: list[dict]) -> dict:
    first, full, labels = looks(fs, encoder)
    rows = {t["fmr"]: {"fmr": t["fmr"], "distance": t["distance"], "genuine": 0, "impostor": 0,
                       "second_look_genuine": 0, "second_look_impostor": 0, "decisions_changed": 0,
                       "false_matches_added": 0}
            for t in thresholds}
    worst = 0.0
    for d1, d2, same in pair_blocks(first, full, labels):
        worst = max(worst, float(np.abs(d1 - d2).max()))
        for t in thresholds:
            row, thr = rows[t["fmr"]], t["distance"]
            second = np.abs(d1 - thr) <= band
            row["genuine"] += int(same.sum())
            row["impostor"] += int((~same).sum())
            row["second_look_genuine"] += int((second & same).sum())
            row["second_look_impostor"] += int((second & ~same).sum())
            changed = ~second & ((d1 <= thr) != (d2 <= thr))
            row["decisions_changed"] += int(changed.sum())
            row["false_matches_added"] += int((changed & ~same & (d1 <= thr)).sum())
    for row in rows.values():
        row["second_look_genuine_pct"] = round(100 * row["second_look_genuine"] / max(row["genuine"], 1), 2)
        row["second_look_impostor_pct"] = round(100 * row["second_look_impostor"] / max(row["impostor"], 1), 4)
    return {"faces": int(len(labels)), "largest_move": round(worst, 5), "rows": list(rows.values())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("build/emb"))
    ap.add_argument("--encoders", nargs="+", default=[SFACE, DLIB])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--write-cards", nargs="*", default=[], metavar="ENCODER",
                    help="record the band in these encoders' cards")
    args = ap.parse_args()
    tune, held = FaceSet(args.cache, "lfw"), FaceSet(args.cache, "celeba")
    out = {}
    for enc in args.encoders:
        card = load_card(models_dir() / f"{enc}.json", kind=ENCODER_KINDS)
        b = band_on(tune, enc)
        c = check_on(held, enc, b["band"], card.data["thresholds"])
        out[enc] = {"tuning_lfw": b, "held_out_celeba": c}
        print(f"{enc}: band {b['band']} (largest move {b['largest_move']} over {b['pairs']:,} LFW pairs); "
              f"CelebA held-out largest move {c['largest_move']}")
        for r in c["rows"]:
            print(f"  FMR {r['fmr']:g} @ {r['distance']}: second look on {r['second_look_genuine_pct']} % genuine, "
                  f"{r['second_look_impostor_pct']} % impostor pairs; decisions changed {r['decisions_changed']} "
                  f"(false matches added {r['false_matches_added']}) "
                  f"of {r['genuine'] + r['impostor']:,}")
        if enc in args.write_cards:
            from convert.card import write_json_atomic

            data = json.loads(card.path.read_text())
            data["embedding"]["second_look_band"] = b["band"]
            data["embedding"]["second_look"] = {
                "rule": "the door judges the chip alone and adds the mirror only when a distance lies within "
                        "second_look_band of the threshold (edge/secondlook.py)",
                "band_from": f"largest |first look - flip-averaged| distance move over {b['pairs']:,} ordered pairs "
                             f"of {b['faces']:,} LFW faces (tuning): {b['largest_move']}, rounded up to {STEP}",
                "held_out": f"CelebA subset, {c['faces']:,} faces, all ordered pairs: largest move {c['largest_move']}; "
                            f"decisions changed at the 1e-4 row: "
                            f"{next(r['decisions_changed'] for r in c['rows'] if r['fmr'] == 1e-4)}",
                "command": f"python benchmarks/second_look.py --cache build/emb --write-cards {enc}"}
            write_json_atomic(card.path, data)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
