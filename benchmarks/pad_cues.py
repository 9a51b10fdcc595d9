"""Hand-made cues beside the liveness stack's learnt features (issue 19): do they carry
anything about screens and prints that generalises to cameras the head never saw?

Two cues, both on the detector's face box of every found face of the PAD scan:
- *colour texture*: uniform LBP histograms (8 neighbours, radius 1) of each channel of
  the face in HSV and YCrCb (6 x 59 bins, square-rooted), the cue of the colour-texture
  anti-spoofing literature: a screen's or a print's gamut and its re-sampled texture
  differ from skin's in the chroma channels, where a camera adds little;
- *spectrum*: the face's grey-level power spectrum in 16 radial bands (log, the
  face's mean removed), where moire and a screen's pixel grid would show.

    python benchmarks/pad_cues.py extract            # -> build/pad/cues.npz (every found face; ~10 min, 2 cores)
    python benchmarks/pad_cues.py report [--json build/pad_cues.json]

``report`` measures, by the shipped recipe (``fit-liveness-head --inputs features --rule
pooled --bpcer 0.05 --cap 400 --train-crops``: nested leave one source out on the
``judged`` faces, thresholds fixed without the source), the shipped members' features
alone and with each cue, per door-like source, on the faces it judges and on the frames
the default door judges, with and without per-installation calibration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = 64  # the face box, resized, for the texture
SPECTRUM_SIZE, BANDS = 128, 16


def _uniform_table() -> np.ndarray:
    """LBP code -> bin: the 58 codes with at most two 0/1 transitions around the circle get
    one bin each, every other code the 59th."""
    table = np.full(256, 58, np.int64)
    uniform = [c for c in range(256) if bin(c ^ ((c >> 1) | ((c & 1) << 7))).count("1") <= 2]
    table[uniform] = np.arange(len(uniform))
    return table


UNIFORM = _uniform_table()
OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]  # around the circle


def lbp_histogram(channel: np.ndarray) -> np.ndarray:
    """Uniform LBP (P=8, R=1) histogram of one uint8 channel, normalised to sum 1."""
    c = channel.astype(np.int16)
    centre = c[1:-1, 1:-1]
    code = np.zeros(centre.shape, np.int64)
    h, w = c.shape
    for bit, (dy, dx) in enumerate(OFFSETS):
        code |= (c[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] >= centre).astype(np.int64) << bit
    hist = np.bincount(UNIFORM[code.ravel()], minlength=59).astype(np.float64)
    return hist / hist.sum()


def face_crop(rgb: np.ndarray, box, size: int, interpolation) -> np.ndarray:
    import cv2

    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
    x1, y1 = min(int(round(x + w)), rgb.shape[1]), min(int(round(y + h)), rgb.shape[0])
    face = rgb[y0:max(y1, y0 + 2), x0:max(x1, x0 + 2)]
    return cv2.resize(face, (size, size), interpolation=interpolation)


def colour_texture(rgb: np.ndarray, box) -> np.ndarray:
    import cv2

    face = face_crop(rgb, box, SIZE, cv2.INTER_AREA)
    chans = [*cv2.split(cv2.cvtColor(face, cv2.COLOR_RGB2HSV)), *cv2.split(cv2.cvtColor(face, cv2.COLOR_RGB2YCrCb))]
    return np.sqrt(np.concatenate([lbp_histogram(ch) for ch in chans]))


_R = None


def spectrum(rgb: np.ndarray, box) -> np.ndarray:
    """Log power in BANDS radial bands of the face's grey levels (Hann-windowed), each
    relative to the mean log power of all bands."""
    import cv2

    global _R
    grey = cv2.cvtColor(face_crop(rgb, box, SPECTRUM_SIZE, cv2.INTER_LINEAR), cv2.COLOR_RGB2GRAY).astype(np.float64)
    win = np.outer(np.hanning(SPECTRUM_SIZE), np.hanning(SPECTRUM_SIZE))
    power = np.abs(np.fft.fftshift(np.fft.fft2((grey - grey.mean()) * win))) ** 2
    if _R is None:
        yy, xx = np.mgrid[:SPECTRUM_SIZE, :SPECTRUM_SIZE] - SPECTRUM_SIZE // 2
        r = np.hypot(yy, xx) / (SPECTRUM_SIZE // 2)
        _R = np.minimum((r * BANDS).astype(int), BANDS)  # BANDS: the corners, beyond the circle
    band = np.log(np.bincount(_R.ravel(), weights=power.ravel(), minlength=BANDS + 1)[:BANDS] /
                  np.bincount(_R.ravel(), minlength=BANDS + 1)[:BANDS] + 1e-9)
    return band - band.mean()


def _chunk(rows):
    from edge.images import read_image

    out = []
    for i, path, box in rows:
        try:
            rgb = read_image(path)
        except Exception:  # noqa: BLE001 - a file the scan read but cannot be read now: counted, not fatal
            out.append((i, None, None))
            continue
        out.append((i, colour_texture(rgb, box), spectrum(rgb, box)))
    return out


def extract(scan_path, out, workers=2):
    z = np.load(scan_path, allow_pickle=False)
    idx = np.flatnonzero(z["found"])
    paths, boxes = z["path"], z["boxes"]
    rows = [(int(i), str(paths[i]), boxes[i].tolist()) for i in idx]
    chunks = [rows[a:a + 300] for a in range(0, len(rows), 300)]
    lbp = np.zeros((len(idx), 6 * 59), np.float32)
    spec = np.zeros((len(idx), BANDS), np.float32)
    pos = {int(i): j for j, i in enumerate(idx)}
    ok = np.ones(len(idx), bool)
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for n, res in enumerate(pool.imap(_chunk, chunks)):
            for i, t, s in res:
                if t is None:
                    ok[pos[i]] = False
                else:
                    lbp[pos[i]], spec[pos[i]] = t, s
            if n % 20 == 0:
                print(f"{min((n + 1) * 300, len(rows))}/{len(rows)}", flush=True)
    np.savez(out, index=idx, lbp=lbp, spectrum=spec, ok=ok)
    print(f"{ok.sum()} of {len(idx)} faces; {(~ok).sum()} unreadable", flush=True)


def report(args):
    from convert.liveness import DOOR_KINDS
    from convert.pad_data import BY_NAME
    from convert.pad_stack import capture_order, nested_loso, thresholds_nested

    z, f, q, c = (np.load(p, allow_pickle=False) for p in (args.scan, args.features, args.quality, args.cues))
    assert np.array_equal(f["index"], q["index"]) and np.array_equal(f["index"], c["index"])
    judged = q["judged"] & c["ok"]
    index = f["index"][judged]
    source, live = z["source"][index], z["live"][index]
    order = capture_order(z["sequence"][index], z["order"][index])
    at_door = q["door_judged"][judged]
    door = sorted(s for s in set(source) if BY_NAME[s].kind in DOOR_KINDS)
    crops = np.array([BY_NAME[s].kind == "crops" for s in source])
    members = np.hstack([f[f"{m}_feat"][judged] for m in ("v2", "v1se", "v1sewide")]).astype(np.float64)
    lbp, spec = c["lbp"][judged].astype(np.float64), c["spectrum"][judged].astype(np.float64)
    cands = {"members (shipped)": members, "members + colour texture": np.hstack([members, lbp]),
             "members + spectrum": np.hstack([members, spec]),
             "members + colour texture + spectrum": np.hstack([members, lbp, spec]),
             "colour texture alone": lbp, "colour texture + spectrum alone": np.hstack([lbp, spec])}
    if args.only:
        cands = {k: v for k, v in cands.items() if any(o in k for o in args.only)}
    results = {}
    for name, x in cands.items():
        nest = nested_loso(x, live, source, door, train_extra=crops, l2=args.l2, cap=400)
        thr = thresholds_nested(nest, live, source, door, 0.05, "pooled")
        rows = judge_sources(nest["test"], thr, live, source, order, at_door, door)
        results[name] = rows
        print_rows(name, rows, door)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def judge_sources(test, thr, live, source, order, at_door, door):
    """Per door source S: ``judge`` of its held-out scores ``test[S]`` at ``thr[S]``, on the faces
    it judges and on those the default door judges, plain and calibrated."""
    from convert.pad_stack import judge

    rows = {}
    for s in door:
        ms = source == s
        rows[s] = {}
        for frames, mask in (("judged", np.ones(ms.sum(), bool)), ("door", at_door[ms])):
            sc, lv, od = test[s][mask], live[ms][mask], order[ms][mask]
            for how in ("plain", "calibrated"):
                r = judge(sc, lv, source[ms][mask], od, thr[s], calibrate=how == "calibrated")
                rows[s][f"{frames} {how}"] = {k: r[k] for k in ("threshold", "apcer", "bpcer", "auc", "live", "attack")}
    return rows


def print_rows(name, rows, door):
    print(f"\n## {name}")
    print("| source | AUC | thr | APCER | BPCER | door APCER | door BPCER | calibrated APCER | BPCER |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in door:
        j, d, cal = rows[s]["judged plain"], rows[s]["door plain"], rows[s]["judged calibrated"]
        print(f"| {s} | {j['auc']:.3f} | {j['threshold']:.3f} | {j['apcer']:.2%} | {j['bpcer']:.2%} | "
              f"{d['apcer']:.2%} | {d['bpcer']:.2%} | {cal['apcer']:.2%} | {cal['bpcer']:.2%} |")
    for key in ("judged plain", "door plain", "judged calibrated", "door calibrated"):
        v = [rows[s][key] for s in door]
        na, nl = sum(r["attack"] for r in v), sum(r["live"] for r in v)
        ap = sum(r["apcer"] * r["attack"] for r in v) / max(na, 1)
        bp = sum(r["bpcer"] * r["live"] for r in v) / max(nl, 1)
        line = (f"{key}: pooled APCER {ap:.2%} (worst {max(r['apcer'] for r in v):.2%}), BPCER {bp:.2%} "
                f"(worst {max(r['bpcer'] for r in v):.2%}), BPCER <= 5 % on {sum(r['bpcer'] <= 0.05 for r in v)}"
                f" of {len(v)}")
        if "calibrated" in key:
            met = sum(r["apcer"] <= 0.05 and r["bpcer"] <= 0.03 for r in v if r["attack"])
            line += f", APCER <= 5 % at BPCER <= 3 % on {met} of {sum(1 for r in v if r['attack'])}"
        print(line, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["extract", "report"])
    p.add_argument("--scan", default="build/pad/scan.npz")
    p.add_argument("--features", default="build/pad/features.npz")
    p.add_argument("--quality", default="build/pad/quality.npz")
    p.add_argument("--cues", default="build/pad/cues.npz")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--l2", type=float, default=1.0)
    p.add_argument("--only", nargs="+")
    p.add_argument("--json")
    args = p.parse_args()
    if args.what == "extract":
        extract(args.scan, args.cues, args.workers)
    else:
        report(args)


if __name__ == "__main__":
    main()
