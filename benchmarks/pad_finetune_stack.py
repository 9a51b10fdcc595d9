"""Fine-tuning the whole liveness stack on the larger PAD set, measured leave-one-source-out
(issue 19, "fine-tuning or distillation on the larger set"; PyTorch, on a GPU when one is lent).

The candidate is the shipped stack's own shape: MiniFASNetV2 on the 2.7x patch, MiniFASNetV1SE
on the 4.0x patch and MiniFASNetV1SE on the 8x context patch, each giving its 128-D feature
('linear' + 'bn'), and one logistic head over the 384 features -- but here every weight of the
three networks is trained together with the head (binary cross-entropy on P(live), BatchNorm
statistics frozen at upstream's, batches balanced over (source, label) cells, the same flip and
brightness / contrast / gamma / colour-cast / blur drawn for the three patches of one frame).
Step 0 of every model is the head alone, fitted by Newton's method on the upstream features of
that model's training frames: the shipped recipe on the same frames, the control.

Nested leave one source out over the eleven door-like sources D: one model per excluded set E
in {{}, {S}, {S, T}} (1 + 11 + 55 = 67 models), each trained on D minus E plus the tight-crop
sources (training frames only, as ``--train-crops``).  ``report``: source S is scored by the model
trained without S at the threshold of the shipped rule (pooled 5 % of the live frames of the
other door sources, each T scored by the model trained without S and T).  The 67 models train
at once (``torch.func.vmap`` over stacked weights: one grouped convolution per layer; each
member's activations recomputed in the backward pass, to fit the GPU's memory).

The frames are the faces the door judges (``build/pad/quality.npz``), at most ``--eval-cap`` a
(source, label) cell for the door-like sources, evenly spaced, and ``--crop-cap`` for the crops:
the patches of all three members have to travel to the GPU machine (64 MiB).  ``report`` puts
the shipped head's held-out figures on exactly these frames beside the fine-tuned ones.

    python benchmarks/pad_finetune_stack.py pack                              # -> build/gpu/stack_patches.npz
    python benchmarks/pad_finetune_stack.py train build/gpu/stack_patches.npz --weights build/gpu --out $OUT  # GPU
    python benchmarks/pad_finetune_stack.py report OUT/stack_scores.npz [--json build/pad_finetune_stack.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from convert.minifasnet import STRIDE2, _units as units  # noqa: E402  (no TensorFlow needed)

# member -> (upstream weights, scan patch); the order of the shipped stack's features
MEMBERS = {"v2": ("2.7_80x80_MiniFASNetV2.pth", "crops_v2"), "v1se": ("4_0_0_80x80_MiniFASNetV1SE.pth", "crops_v1se"),
           "v1sewide": ("4_0_0_80x80_MiniFASNetV1SE.pth", "crops_wide")}
BN_EPS = 1e-5


# ---------------------------------------------------------------- packing (workstation)

def pack(args):
    import cv2

    from convert.liveness import DOOR_KINDS
    from convert.pad_data import BY_NAME
    from convert.pad_stack import capped, capture_order

    z, q = np.load(args.scan, allow_pickle=False), np.load(args.quality, allow_pickle=False)
    index = q["index"][q["judged"]]
    source, live = z["source"][index], z["live"][index].astype(bool)
    order = capture_order(z["sequence"][index], z["order"][index])
    at_door = q["door_judged"][q["judged"]]
    kind = np.array([BY_NAME[s].kind for s in source])
    door = np.isin(kind, list(DOOR_KINDS))
    keep = capped(door, live, source, args.eval_cap) | capped(kind == "crops", live, source, args.crop_cap)
    rows = index[keep]
    enc = {}
    for m, (_, key) in MEMBERS.items():
        patches = z[key]
        blobs = [cv2.imencode(".webp", patches[i], [cv2.IMWRITE_WEBP_QUALITY, args.quality_webp])[1].tobytes()
                 for i in rows]
        enc[f"{m}_offsets"] = np.cumsum([0] + [len(b) for b in blobs])
        enc[f"{m}_data"] = np.frombuffer(b"".join(blobs), np.uint8)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, index=rows, source=source[keep], live=live[keep], door=door[keep], order=order[keep],
             door_judged=at_door[keep], **enc)
    print(f"packed {keep.sum()} faces ({(keep & door).sum()} door-like, {(keep & ~door).sum()} crops) into "
          f"{args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")


def unpack(path):
    import cv2

    z = np.load(path, allow_pickle=False)
    patches = {}
    for m in MEMBERS:
        off, data = z[f"{m}_offsets"], z[f"{m}_data"]
        patches[m] = np.stack([cv2.imdecode(data[off[i]:off[i + 1]], cv2.IMREAD_UNCHANGED)
                               for i in range(len(off) - 1)])
    meta = {k: z[k] for k in ("index", "source", "live", "door", "order", "door_judged")}
    return meta, patches


# ---------------------------------------------------------------- one member, functionally

def features(state, x):
    """The 128-D feature ('linear' then 'bn') of BGR 0..255 NCHW input; BatchNorm in inference
    mode and PReLU written out as arithmetic, so that ``torch.func.vmap`` can run many models."""
    import torch
    import torch.nn.functional as F

    def bn(p, y):
        scale = state[f"{p}.weight"] / torch.sqrt(state[f"{p}.running_var"] + BN_EPS)
        shift = state[f"{p}.bias"] - state[f"{p}.running_mean"] * scale
        shape = (-1,) + (1,) * (y.dim() - 2)
        return y * scale.reshape(shape) + shift.reshape(shape)

    def conv(p, y, stride, act=True):
        w = state[f"{p}.conv.weight"]
        k = w.shape[2]
        groups = y.shape[1] if w.shape[1] == 1 and w.shape[0] == y.shape[1] else 1
        y = bn(f"{p}.bn", F.conv2d(y, w, None, stride, 0 if p == "conv_6_dw" else k // 2, 1, groups))
        if act and f"{p}.prelu.weight" in state:
            a = state[f"{p}.prelu.weight"].reshape(-1, 1, 1)
            y = torch.where(y >= 0, y, y * a)
        return y

    def se(p, y):
        g = y.mean((2, 3), keepdim=True)
        g = torch.relu(bn(f"{p}.bn1", F.conv2d(g, state[f"{p}.fc1.weight"])))
        return y * torch.sigmoid(bn(f"{p}.bn2", F.conv2d(g, state[f"{p}.fc2.weight"])))

    for u in units(state):  # the same walk as the Keras builder's
        top = u.split(".")[0]
        if f"{u}.conv.weight" in state:
            x = conv(u, x, 2 if top == "conv1" else 1)
            continue
        y = conv(f"{u}.project", conv(f"{u}.conv_dw", conv(f"{u}.conv", x, 1), 2 if top in STRIDE2 else 1), 1, False)
        if ".model." in u:
            if f"{u}.se_module.fc1.weight" in state:
                y = se(f"{u}.se_module", y)
            y = x + y
        x = y
    return bn("bn", x.flatten(1) @ state["linear.weight"].T)


def load_member(path):
    """The upstream state dict without its 3-class 'prob' layer (the head replaces it)."""
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v.float() for k, v in sd.items() if "num_batches" not in k}


def backbone(state):
    return {k: v for k, v in state.items() if not k.startswith("prob.")}


# ---------------------------------------------------------------- training (GPU machine)

def draw_augment(n, gen, dev):
    """Per frame: flip, gamma, contrast, brightness, colour cast, blur (shared by its patches)."""
    import torch

    def r(lo, hi, shape=(n, 1, 1, 1)):
        return torch.rand(shape, device=dev, generator=gen) * (hi - lo) + lo

    return {"flip": torch.rand(n, device=dev, generator=gen) < 0.5, "gamma": r(0.6, 1.6), "contrast": r(0.7, 1.3),
            "bright": r(0.6, 1.4), "cast": 1 + r(-0.05, 0.05, (n, 3, 1, 1)),
            "blur": torch.rand(n, device=dev, generator=gen) < 0.3}


def augment(x, a):
    """x: (N, 3, H, W) float 0..255 RGB."""
    import torch
    import torch.nn.functional as F

    x = torch.where(a["flip"][:, None, None, None], x.flip(3), x)
    y = (x / 255.0).clamp(1e-4, 1) ** a["gamma"]
    mean = y.mean((1, 2, 3), keepdim=True)
    y = ((y - mean) * a["contrast"] + mean * a["bright"]) * a["cast"]
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device)
    k = (k[:, None] * k[None, :]) / 256.0
    yb = F.conv2d(F.pad(y, (2, 2, 2, 2), mode="replicate"), k.expand(3, 1, 5, 5).contiguous(), groups=3)
    y = torch.where(a["blur"][:, None, None, None], yb, y)
    return y.clamp(0, 1) * 255.0


def stack_features(states, patches, idx, aug=None):
    """(G, B, 384) features of frames idx (G, B) under G models (stacked weights per member)."""
    import torch

    g, b = idx.shape
    flat = idx.reshape(-1)
    out = []
    for m in MEMBERS:
        x = patches[m][flat].permute(0, 3, 1, 2).float()
        if aug is not None:
            x = augment(x, aug)
        x = x[:, [2, 1, 0]].reshape(g, b, 3, x.shape[2], x.shape[3])  # RGB -> BGR as upstream
        out.append(torch.func.vmap(features)(states[m], x))
    return torch.cat(out, 2)


def newton_heads(feat, train, live, iters=25, l2=1.0):
    """The shipped head (``convert.pad_stack.fit_logistic``: standardised features, weighted L2
    logistic regression by Newton steps, every (source, label) cell the same weight) for G
    training sets at once.  feat (N, D); train (G, N) cell weights (0 = not a training frame)."""
    import torch

    g, n = train.shape
    d = feat.shape[1]
    on = (train > 0).to(feat.dtype)
    cnt = on.sum(1, keepdim=True)
    mean = on @ feat / cnt
    std = torch.sqrt((on @ feat ** 2) / cnt - mean ** 2).clamp_min(0) + 1e-6
    theta = torch.zeros(g, d + 1, device=feat.device, dtype=feat.dtype)
    reg = torch.full((g, d + 1), l2, device=feat.device, dtype=feat.dtype)
    reg[:, -1] = 0
    y = live.to(feat.dtype)
    for _ in range(iters):
        xs = torch.cat([(feat[None] - mean[:, None]) / std[:, None], torch.ones(g, n, 1, device=feat.device,
                                                                               dtype=feat.dtype)], 2)
        p = torch.sigmoid(torch.einsum("gnd,gd->gn", xs, theta))
        grad = torch.einsum("gn,gnd->gd", train * (p - y), xs) + reg * theta
        h = (xs * (train * p * (1 - p))[..., None]).transpose(1, 2) @ xs + torch.diag_embed(reg + 1e-9)
        theta = theta - torch.linalg.solve(h, grad)
    return {"mean": mean, "std": std, "w": theta[:, :-1], "b": theta[:, -1]}


def score(states, head, patches, rows, dev, batch=200):
    """P(live) of frames rows[j] (a list per model) under model j: (G, N), NaN where not scored."""
    import torch

    g = len(rows)
    n = patches[next(iter(patches))].shape[0]
    out = np.full((g, n), np.nan, np.float32)
    width = max(len(r) for r in rows)
    padded = np.stack([np.resize(r, width) if len(r) else np.zeros(width, np.int64) for r in rows])
    with torch.no_grad():
        for i in range(0, width, batch):
            idx = torch.from_numpy(padded[:, i:i + batch]).to(dev)
            f = stack_features(states, patches, idx)
            z = (f - head["mean"][:, None]) / head["std"][:, None]
            p = torch.sigmoid(torch.einsum("gnd,gd->gn", z, head["w"]) + head["b"][:, None]).cpu().numpy()
            for j in range(g):
                take = slice(i, min(i + batch, len(rows[j])))
                if take.start < take.stop:
                    out[j, rows[j][take]] = p[j, :take.stop - take.start]
    return out


def rows_to_score(excl, source, live):
    """What the report reads of a model: without S, all of S's faces (its test scores); without
    S and T, the live faces of both (their tuning scores); the all-source model: none."""
    if len(excl) == 1:
        return np.flatnonzero(source == excl[0])
    if len(excl) == 2:
        return np.flatnonzero(np.isin(source, list(excl)) & live)
    return np.zeros(0, np.int64)


def excluded_sets(door):
    return [()] + [(s,) for s in door] + list(itertools.combinations(door, 2))


def model_key(excl, door):
    return "without:" + ",".join(sorted(excl, key=door.index)) if excl else "all"


def train(args):
    """Every model of the nested protocol at once.  Time rule, fixed before any score is seen:
    after the first ``PROBE`` steps the step time is measured and the number of steps cut (to a
    multiple of 25) so that training and scoring end by ``--deadline-s``; the checkpoints
    beyond the cut are dropped."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t_start = time.time()
    meta, patches_np = unpack(args.packed)
    source, live, is_door = meta["source"], meta["live"].astype(bool), meta["door"].astype(bool)
    n = len(source)
    door = sorted(set(source[is_door]))
    patches = {m: torch.from_numpy(p).to(dev) for m, p in patches_np.items()}
    full = {m: load_member(Path(args.weights) / f) for m, (f, _) in MEMBERS.items()}
    upstream = {m: backbone(s) for m, s in full.items()}
    live_t = torch.from_numpy(live).to(dev)
    sets = excluded_sets(door)[:args.limit] if args.limit else excluded_sets(door)
    keys = [model_key(e, door) for e in sets]
    g = len(sets)
    rows = [rows_to_score(e, source, live) for e in sets]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = {"steps_asked": args.steps, "lr": args.lr, "head_lr": args.head_lr, "batch": args.batch,
           "seed": args.seed, "device": dev, "torch": torch.__version__, "door_sources": door, "models": keys,
           "frames": n, "events": []}
    if dev == "cuda":
        log["gpu"] = torch.cuda.get_device_name()

    def event(what, **kw):
        kw.update(what=what, s=round(time.time() - t_start, 1))
        if dev == "cuda":
            kw["max_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        log["events"].append(kw)
        (out / "stack_config.json").write_text(json.dumps(log, indent=1))
        print(json.dumps(kw), flush=True)

    # the upstream features of every face (the same for every model at step 0) -> the Newton heads
    up = {m: {k: v.to(dev)[None] for k, v in s.items()} for m, s in upstream.items()}
    with torch.no_grad():
        feat0 = torch.cat([stack_features(up, patches, torch.arange(i, min(i + 500, n), device=dev)[None])[0]
                           for i in range(0, n, 500)]).double()
    np.save(out / "upstream_features.npy", feat0.float().cpu().numpy())
    cells = []
    weights = np.zeros((g, n))
    for j, excl in enumerate(sets):
        cs = [np.flatnonzero((source == s) & (live == lab)) for s in sorted(set(source)) if s not in excl
              for lab in (True, False)]
        cells.append([c for c in cs if len(c)])
        for c in cells[-1]:
            weights[j, c] = 1.0 / len(c)
        weights[j] *= (weights[j] > 0).sum() / weights[j].sum()
    head = {k: v.float() for k, v in newton_heads(feat0, torch.from_numpy(weights).to(dev), live_t).items()}
    event("heads fitted")
    states = {m: {k: v.to(dev)[None].repeat(g, *([1] * v.dim())).contiguous() for k, v in s.items()}
              for m, s in upstream.items()}
    trainable = [v for s in states.values() for k, v in s.items() if "running" not in k]
    for v in trainable + [head["w"], head["b"]]:
        v.requires_grad_(True)
    opt = torch.optim.Adam([{"params": trainable, "lr": args.lr}, {"params": [head["w"], head["b"]],
                                                                   "lr": args.head_lr}])
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    steps, ckpts = args.steps, sorted(set(args.checkpoints) | {0, args.steps})
    scores = {}

    def checkpoint(step):
        t0 = time.time()
        scores[step] = score(states, head, patches, rows, dev)
        np.savez(out / "stack_scores.npz", keys=np.array(keys), **{f"step{c}": v for c, v in scores.items()}, **meta)
        event("checkpoint", step=step, scoring_s=round(time.time() - t0, 1))
        return time.time() - t0

    def member(m, x):
        return torch.func.vmap(features)(states[m], x)

    def train_step():
        idx = np.empty((g, batch), np.int64)
        for j, cs in enumerate(cells):
            pick = rng.integers(len(cs), size=batch)
            idx[j] = [cs[c][rng.integers(len(cs[c]))] for c in pick]
        idx_t = torch.from_numpy(idx).to(dev)
        aug = draw_augment(g * batch, gen, dev)
        feats = []
        for m in MEMBERS:
            x = augment(patches[m][idx_t.reshape(-1)].permute(0, 3, 1, 2).float(), aug)
            x = x[:, [2, 1, 0]].reshape(g, batch, 3, x.shape[2], x.shape[3])
            feats.append(torch.utils.checkpoint.checkpoint(member, m, x, use_reentrant=False))
        z = (torch.cat(feats, 2) - head["mean"][:, None]) / head["std"][:, None]
        logit = torch.einsum("gbd,gd->gb", z, head["w"]) + head["b"][:, None]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, live_t[idx_t].float(),
                                                                    reduction="none").mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach()) / g

    batch = args.batch
    scoring_s = checkpoint(0)
    for step in range(1, steps + 1):
        while True:
            try:
                loss = train_step()
                break
            except torch.cuda.OutOfMemoryError:  # only where the first step does not fit: a smaller batch
                if step > 1 or batch <= 8:
                    raise
                opt.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                batch //= 2
                log["batch"] = batch
                event("out of memory: batch halved", batch=batch)
        if step == 1:  # the first step also picks the convolution algorithms: not timed
            if dev == "cuda":
                torch.cuda.synchronize()
            t_train = time.time()
        if step == PROBE:
            if dev == "cuda":
                torch.cuda.synchronize()
            per_step = (time.time() - t_train) / (PROBE - 1)
            left = args.deadline_s - (time.time() - t_start)
            n_ck = len([c for c in ckpts if c > step])
            fit = int((left - n_ck * scoring_s * 1.2) / per_step) + PROBE
            if fit < steps:
                steps = max(PROBE, fit // 25 * 25)
                ckpts = [c for c in ckpts if c < steps] + [steps]
            event("probe", per_step_s=round(per_step, 3), steps=steps, checkpoints=ckpts, loss=loss)
        if step in ckpts:
            event("loss", step=step, loss=loss)
            checkpoint(step)
        if step >= steps:
            break
    log["steps"] = steps
    if () in sets:  # the model trained on every door source: the one that would ship
        j = sets.index(())
        for m, s in states.items():  # a Silent-Face .pth again (its unused 'prob' layer upstream's)
            sd = {f"module.{k}": v[j].detach().cpu() for k, v in s.items()}
            sd.update({f"module.{k}": v for k, v in full[m].items() if k.startswith("prob.")})
            torch.save(sd, out / f"finetuned_{m}.pth")
        (out / "finetuned_head.json").write_text(json.dumps({k: v[j].detach().cpu().tolist() for k, v in head.items()}))
    event("done", steps=steps)


PROBE = 5


# ---------------------------------------------------------------- nested LOSO report (workstation)

def report(args):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pad_cues import judge_sources, print_rows
    from pad_stack import held_out

    from convert.pad_stack import rule

    z = np.load(args.scores, allow_pickle=False)
    keys = list(z["keys"])
    source, live, is_door = z["source"], z["live"].astype(bool), z["door"].astype(bool)
    order, at_door, index = z["order"], z["door_judged"].astype(bool), z["index"]
    door = sorted(set(source[is_door]))
    model = {k: i for i, k in enumerate(keys)}

    def evaluate(name, test, thr):
        rows = judge_sources(test, thr, live, source, order, at_door, door)
        print_rows(name, rows, door)
        return rows

    # the shipped head, held out on every judged face (uncompressed patches), read at the packed faces
    h = held_out(args.scan, args.features, args.quality)
    shipped = {}
    for s in door:
        by_row = dict(zip(h["index"][h["source"] == s].tolist(), h["nest"]["test"][s]))
        shipped[s] = np.array([by_row[int(i)] for i in index[source == s]])
    name = "shipped head (held out on all judged faces; read on these faces)"
    results = {name: evaluate(name, shipped, h["thr"])}
    for c in sorted(int(k[4:]) for k in z.files if k.startswith("step")):
        sc = z[f"step{c}"]
        test = {s: sc[model[model_key((s,), door)]][source == s] for s in door}
        thr = {s: rule({t: sc[model[model_key((s, t), door)]][(source == t) & live] for t in door if t != s},
                       0.05, "pooled") for s in door}
        name = "head only on these faces (step 0: the shipped recipe)" if c == 0 else f"fine-tuned, step {c}"
        results[name] = evaluate(name, test, thr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--scan", default="build/pad/scan.npz")
    a.add_argument("--quality", default="build/pad/quality.npz")
    a.add_argument("--out", default="build/gpu/stack_patches.npz")
    a.add_argument("--eval-cap", type=int, default=300)
    a.add_argument("--crop-cap", type=int, default=100)
    a.add_argument("--quality-webp", type=int, default=90)
    t = sub.add_parser("train")
    t.add_argument("packed")
    t.add_argument("--weights", required=True, help="folder with the upstream .pth files")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--checkpoints", type=int, nargs="*", default=[100, 200])
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--head-lr", type=float, default=1e-3)
    t.add_argument("--batch", type=int, default=48)
    t.add_argument("--deadline-s", type=float, default=420, help="training and scoring end by then (see train)")
    t.add_argument("--limit", type=int, help="only the first N models (a smoke test)")
    t.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("report")
    r.add_argument("scores")
    r.add_argument("--scan", default="build/pad/scan.npz")
    r.add_argument("--features", default="build/pad/features.npz")
    r.add_argument("--quality", default="build/pad/quality.npz")
    r.add_argument("--json")
    args = p.parse_args()
    {"pack": pack, "train": train, "report": report}[args.what](args)


if __name__ == "__main__":
    main()
