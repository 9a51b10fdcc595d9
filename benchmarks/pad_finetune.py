"""Fine-tuning MiniFASNet on the PAD sources, measured leave-one-source-out — the
experiment behind the liveness card's "what lost" (PyTorch; runs on a GPU when
there is one, on the CPU otherwise, slowly).

The network is run *functionally* from the upstream state dict (same keys in and
out), so a fine-tuned result is again a Silent-Face ``.pth`` that
``facelatch-convert import-minifasnet`` converts like the original.  BatchNorm
statistics stay frozen (the upstream ones); every weight is trained with a binary
loss on P(live) = softmax[1], batches balanced over (source, label), with
brightness / contrast / gamma / blur / flip augmentation.

Nested leave-one-source-out over the door-like sources D (whole webcam frames):
one model per excluded set E in {{}, {S}, {S, T}} (1 + |D| + |D|(|D|-1)/2 models),
each trained on D minus E, each scoring every frame.  Then (``--report``, on the
workstation) for a test source S: threshold = min over T != S of the 1 %-quantile of
T's live scores under the model trained without {S, T}; S is scored by the model
trained without S.  The shipped candidate (trained on all of D) gets threshold =
min over S of the 1 %-quantile of S's live scores under the model without S.

    # on the workstation: pack the patches (WebP) for the GPU machine
    python benchmarks/pad_finetune.py --pack build/pad/scan.npz build/gpu/pad_patches.npz
    # on the GPU machine (device tool): train all models, write scores and the shipped state dicts
    python benchmarks/pad_finetune.py --train build/gpu/pad_patches.npz --weights build/gpu --out $OUT
    # back on the workstation: the nested leave-one-source-out table
    python benchmarks/pad_finetune.py --report OUT/finetune_scores.npz
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DOOR = ["nuaa", "dracarys", "dangthanhliem", "codersworld", "spp77"]
MEMBERS = {"v2": "2.7_80x80_MiniFASNetV2.pth", "v1se": "4_0_0_80x80_MiniFASNetV1SE.pth"}


# ---------------------------------------------------------------- packing (workstation)

def pack(scan_path, out):
    import cv2

    z = np.load(scan_path, allow_pickle=False)
    keep = np.flatnonzero(z["found"] & np.isin(z["source"], DOOR))
    enc = {}
    for m in MEMBERS:
        crops = z[f"crops_{m}"]
        blobs = [cv2.imencode(".webp", crops[i], [cv2.IMWRITE_WEBP_QUALITY, 90])[1].tobytes() for i in keep]
        enc[f"{m}_offsets"] = np.cumsum([0] + [len(b) for b in blobs])
        enc[f"{m}_data"] = np.frombuffer(b"".join(blobs), np.uint8)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, index=keep, source=z["source"][keep], live=z["live"][keep], **enc)
    print(f"packed {len(keep)} frames into {out} ({Path(out).stat().st_size / 1e6:.1f} MB)")


def unpack(path):
    import cv2

    z = np.load(path, allow_pickle=False)
    patches = {}
    for m in MEMBERS:
        off, data = z[f"{m}_offsets"], z[f"{m}_data"]
        patches[m] = np.stack([cv2.imdecode(data[off[i]:off[i + 1]], cv2.IMREAD_UNCHANGED) for i in range(len(off) - 1)])
    return z["index"], z["source"], z["live"].astype(bool), patches


# ---------------------------------------------------------------- the network, functionally

def forward(state, x):
    """Logits (N, 3) of BGR 0..255 NCHW input, BatchNorm in inference mode (the feature walk
    is ``pad_finetune_stack.features``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pad_finetune_stack import features

    return features(state, x) @ state["prob.weight"].T


# ---------------------------------------------------------------- training (GPU machine)

def augment(x, gen):
    """x: (N, 3, H, W) float 0..255 on the device."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    dev = x.device
    r = lambda lo, hi: torch.rand(n, 1, 1, 1, device=dev, generator=gen) * (hi - lo) + lo  # noqa: E731
    flip = torch.rand(n, device=dev, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    y = x / 255.0
    y = y.clamp(1e-4, 1) ** r(0.6, 1.6)  # gamma
    mean = y.mean((1, 2, 3), keepdim=True)
    y = (y - mean) * r(0.7, 1.3) + mean * r(0.6, 1.4)  # contrast, brightness
    y = y * (1 + (torch.rand(n, 3, 1, 1, device=dev, generator=gen) - 0.5) * 0.1)  # colour cast
    blur = torch.rand(n, device=dev, generator=gen) < 0.3
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=dev)
    k = (k[:, None] * k[None, :]) / 256.0
    yb = F.conv2d(F.pad(y, (2, 2, 2, 2), mode="replicate"), k.expand(3, 1, 5, 5).contiguous(), groups=3)
    y = torch.where(blur[:, None, None, None], yb, y)
    return (y.clamp(0, 1) * 255.0)


def train_one(state0, patches, live, cells, steps, lr, batch, seed, dev):
    import torch

    gen = torch.Generator(device=dev).manual_seed(seed)
    state = {k: v.clone().to(dev) for k, v in state0.items()}
    params = [v for k, v in state.items() if v.dtype.is_floating_point and "running" not in k]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    y_all = torch.from_numpy(live.astype(np.float32)).to(dev)
    for step in range(steps):
        cell_idx = rng.integers(len(cells), size=batch)
        idx = np.array([cells[c][rng.integers(len(cells[c]))] for c in cell_idx])
        x = augment(patches[idx], gen)[:, [2, 1, 0]]  # RGB -> BGR as upstream
        logits = forward(state, x)
        logp = logits.log_softmax(1)
        y = y_all[idx]
        log_live = logp[:, 1]
        log_attack = torch.logsumexp(torch.stack([logp[:, 0], logp[:, 2]], 1), 1)
        loss = -(y * log_live + (1 - y) * log_attack).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in state.items()}


def score_all(state, patches, batch=1024):
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(patches), batch):
            out.append(forward(state, patches[i:i + batch][:, [2, 1, 0]]).softmax(1)[:, 1].cpu().numpy())
    return np.concatenate(out)


def train_all(packed, weights_dir, out, steps, lr, batch, seed):
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    index, source, live, patches_np = unpack(packed)
    patches = {m: torch.from_numpy(p).permute(0, 3, 1, 2).float().to(dev) for m, p in patches_np.items()}
    states = {}
    for m, f in MEMBERS.items():
        sd = torch.load(Path(weights_dir) / f, map_location="cpu", weights_only=True)
        states[m] = {k.removeprefix("module."): v.float() for k, v in sd.items() if "num_batches" not in k}
    excluded_sets = [()] + [(s,) for s in DOOR] + list(itertools.combinations(DOOR, 2))
    scores = {}
    t0 = time.time()
    for excl in excluded_sets:
        train_sources = [s for s in DOOR if s not in excl]
        cells = [np.flatnonzero((source == s) & (live == lab)) for s in train_sources for lab in (True, False)]
        cells = [c for c in cells if len(c)]
        key = "without:" + ",".join(excl) if excl else "all"
        for m in MEMBERS:
            st = train_one(states[m], patches[m], live, cells, steps, lr, batch, seed, dev)
            scores[f"{key}|{m}"] = score_all(st, patches[m])
            if not excl:
                torch.save({f"module.{k}": v.cpu() for k, v in st.items()}, Path(out) / f"finetuned_{MEMBERS[m]}")
        print(f"{key}: trained on {train_sources} in {time.time() - t0:.0f} s", flush=True)
    zero = {f"zeroshot|{m}": score_all({k: v.to(dev) for k, v in states[m].items()}, patches[m]) for m in MEMBERS}
    np.savez(Path(out) / "finetune_scores.npz", index=index, source=source, live=live,
             keys=np.array(list(scores) + list(zero)), values=np.stack(list(scores.values()) + list(zero.values())))
    (Path(out) / "finetune_config.json").write_text(json.dumps({"steps": steps, "lr": lr, "batch": batch, "seed": seed,
                                                                "device": dev, "door_sources": DOOR}))


# ---------------------------------------------------------------- nested LOSO report (workstation)

def report(path, bpcer=0.01, combos=("v2", "v1se", "v2+v1se")):
    from convert.pad_eval import apcer_bpcer, pooled, threshold_for_bpcer

    z = np.load(path, allow_pickle=False)
    source, live = z["source"], z["live"].astype(bool)
    table = dict(zip(z["keys"], z["values"]))

    def sc(key, combo):
        return np.mean([table[f"{key}|{m}"] for m in combo.split("+")], axis=0)

    def model_key(excl):
        return "without:" + ",".join(sorted(excl, key=DOOR.index)) if excl else "all"

    results = {}
    for combo in combos:
        for variant in ("zeroshot", "finetuned"):
            rows = {}
            for s in DOOR:
                others = [t for t in DOOR if t != s]
                if variant == "zeroshot":
                    thr = min(threshold_for_bpcer(sc("zeroshot", combo)[(source == t) & live], bpcer) for t in others)
                    test = sc("zeroshot", combo)
                else:
                    thr = min(threshold_for_bpcer(sc(model_key((s, t)), combo)[(source == t) & live], bpcer)
                              for t in others)
                    test = sc(model_key((s,)), combo)
                here = source == s
                a, b = apcer_bpcer(test[here & live], test[here & ~live], thr)
                rows[s] = {"threshold": thr, "apcer": a, "bpcer": b, "live": int((here & live).sum()),
                           "attack": int((here & ~live).sum())}
            if variant == "finetuned":
                shipped = min(threshold_for_bpcer(sc(model_key((s,)), combo)[(source == s) & live], bpcer) for s in DOOR)
            else:
                shipped = min(threshold_for_bpcer(sc("zeroshot", combo)[(source == s) & live], bpcer) for s in DOOR)
            results[f"{variant} {combo}"] = {"per_source": rows, "pooled": pooled(rows, DOOR), "shipped_threshold": shipped}
            p = pooled(rows, DOOR)
            print(f"\n{variant} {combo}: pooled APCER {p['apcer']:.2%} BPCER {p['bpcer']:.2%} "
                  f"(worst source BPCER {p['max_bpcer']:.2%}); threshold for the all-source model {shipped:.4f}")
            for s, r in rows.items():
                print(f"  {s:14s} thr {r['threshold']:.4f}  APCER {r['apcer']:7.2%}  BPCER {r['bpcer']:6.2%}  "
                      f"({r['live']} live, {r['attack']} attack)")
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", nargs=2, metavar=("SCAN", "OUT"))
    ap.add_argument("--train", metavar="PACKED")
    ap.add_argument("--weights", help="folder with the upstream .pth files")
    ap.add_argument("--out", default=".")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", metavar="SCORES")
    ap.add_argument("--json", help="--report: also write the tables here")
    args = ap.parse_args()
    if args.pack:
        pack(*args.pack)
    if args.train:
        train_all(args.train, args.weights, args.out, args.steps, args.lr, args.batch, args.seed)
    if args.report:
        res = report(args.report)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
