"""The liveness stack's learned part: a linear head over the MiniFASNet members'
features, trained and measured leave one source out (workstation, numpy).

Each member (a MiniFASNet network on its own patch of the frame) gives a 128-D
feature (the output of its ``linear`` + ``bn`` layers, just before its 3-way
classifier).  The head is an L2-regularised logistic regression on the members'
standardised features, with every (source, label) cell weighted equally, so a large
recording does not outvote a small one.  P(live) = sigmoid(w . (f - mean) / std + b).

Honest thresholds need *nested* leave one source out (the head has seen its
training sources, so their live scores are optimistic): for a test source S the
head is trained without S; its threshold is the rule applied, for every other
source T, to T's live frames scored by a head trained without S and without T.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .pad_eval import apcer_bpcer, attack_windows, pooled_threshold_for_bpcer, roc_auc, threshold_for_bpcer

FEATURE_LAYER = "bn_bn"  # convert.minifasnet.build names the layer after 'linear' like this
K, N = 3, 5  # the door's default liveness window: k of the last n frames (edge.config PolicyConfig)


def feature_model(pth, size: int = 80):
    """Keras model of one member with batch 1: patch -> [128-D feature, 3 logits]."""
    import keras

    from .minifasnet import load

    model = load(pth, size)
    inp = keras.Input((size, size, 3), batch_size=1)
    feat_model = keras.Model(model.input, [model.get_layer(FEATURE_LAYER).output, model.output])
    return keras.Model(inp, feat_model(inp))


def member_outputs(pth, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, 128) float32, logits (N, 3)) of one member on its patches, through
    a float TFLite conversion run one patch at a time as on the device (on a CPU this is
    many times faster than Keras batches)."""
    import tempfile

    from edge.runtime import TFLiteModel

    from .quantize import to_tflite

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "member.tflite"
        path.write_bytes(to_tflite(feature_model(pth), None))
        tfl = TFLiteModel(path)
        feats, logits = np.zeros((len(patches), 128), np.float32), np.zeros((len(patches), 3), np.float32)
        for i, patch in enumerate(patches):
            for out in tfl.run(tfl.pixels(patch)):
                (feats if out.size == 128 else logits)[i] = out.reshape(-1)
    return feats, logits


def cell_weights(live: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Sample weights giving every (source, label) cell the same total weight (mean 1)."""
    w = np.zeros(len(live))
    cells = {(s, bool(l)) for s, l in zip(source, live)}
    for s, l in cells:
        m = (source == s) & (live == l)
        w[m] = 1.0 / m.sum()
    return w * len(w) / w.sum()


def fit_logistic(x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float = 1.0, iters: int = 25) -> dict:
    """Weighted L2 logistic regression by Newton steps; features standardised first.
    Returns {"mean", "std", "w", "b"} (numpy arrays / float)."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    reg = np.full(x.shape[1] + 1, l2 * weight.sum() / len(weight))
    reg[-1] = 0.0  # no penalty on the bias
    theta = _newton((x - mean) / std, y, weight, reg, np.zeros(x.shape[1] + 1), iters)
    return {"mean": mean, "std": std, "w": theta[:-1], "b": float(theta[-1])}


def adapt_head(head: dict, x_live: np.ndarray, x_attack: np.ndarray, lam: float, iters: int = 30) -> dict:
    """The head moved towards one installation's own frames: logistic regression on this
    camera's live and attack frames (each class weighted equally) with an L2 pull of
    strength ``lam`` towards ``head``'s weights (MAP with the shipped head as the prior),
    in the shipped head's standardisation.  ``lam`` is in units of 1 % of the
    calibration frames' total weight."""
    x = np.vstack([x_live, x_attack])
    y = np.r_[np.ones(len(x_live)), np.zeros(len(x_attack))]
    weight = np.r_[np.full(len(x_live), 0.5 / len(x_live)), np.full(len(x_attack), 0.5 / len(x_attack))]
    theta0 = np.r_[head["w"], head["b"]]
    reg = np.full(len(theta0), lam / 100.0)
    theta = _newton((x - head["mean"]) / head["std"], y, weight, reg, theta0, iters, prior=theta0)
    return {"mean": head["mean"], "std": head["std"], "w": theta[:-1], "b": float(theta[-1])}


def _newton(z, y, weight, reg, theta, iters, prior=None):
    """Minimise sum(weight * logloss(z theta, y)) + reg/2 |theta - prior|^2 (bias last)."""
    z = np.hstack([z, np.ones((len(z), 1))])
    prior = np.zeros_like(theta) if prior is None else prior
    theta = theta.copy()
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(z @ theta, -30, 30)))
        grad = z.T @ (weight * (p - y)) + reg * (theta - prior)
        hess = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-6:
            break
    return theta


def head_logit(head: dict, x: np.ndarray) -> np.ndarray:
    return ((x - head["mean"]) / head["std"]) @ head["w"] + head["b"]


def head_score(head: dict, x: np.ndarray) -> np.ndarray:
    """P(live) under the head."""
    return 1 / (1 + np.exp(-np.clip(head_logit(head, x), -30, 30)))


def capped(mask: np.ndarray, live: np.ndarray, source: np.ndarray, cap: int | None, seed: int = 0) -> np.ndarray:
    """``mask`` with at most ``cap`` frames per (source, label) cell kept (evenly spaced)."""
    if cap is None:
        return mask
    out = np.zeros_like(mask)
    for s in np.unique(source[mask]):
        for lab in (False, True):
            idx = np.flatnonzero(mask & (source == s) & (live == lab))
            out[idx[np.linspace(0, len(idx) - 1, min(cap, len(idx))).astype(int)] if len(idx) else idx] = True
    return out


def nested_loso(x, live, source, door, train_extra=None, l2: float = 1.0, cap: int | None = None) -> dict:
    """Heads for nested leave one source out over ``door`` sources.

    Returns {"test": {S: scores of every frame under the head trained without S},
             "tune": {(S, T): scores of T's frames under the head trained without S and T},
             "heads": {S: the head trained without S}}.
    ``train_extra`` (a boolean mask) adds frames of other sources (e.g. tight crops) to
    every training set; they are never test or tuning frames."""
    train_extra = np.zeros(len(live), bool) if train_extra is None else train_extra
    in_door = np.isin(source, door)

    def fit_without(excluded):
        m = capped((in_door & ~np.isin(source, list(excluded))) | train_extra, live, source, cap)
        return fit_logistic(x[m], live[m].astype(float), cell_weights(live[m], source[m]), l2)

    test, tune, pair_heads, heads = {}, {}, {}, {}
    for s in door:
        heads[s] = fit_without({s})
        test[s] = head_score(heads[s], x[source == s])
        for t in door:
            if t != s:
                pair = frozenset((s, t))  # without S and T is without T and S: one fit for both
                if pair not in pair_heads:
                    pair_heads[pair] = fit_without(pair)
                tune[(s, t)] = head_score(pair_heads[pair], x[source == t])
    return {"test": test, "tune": tune, "heads": heads}


def save_head(head: dict, path: Path) -> None:
    np.savez(path, **{k: np.asarray(v) for k, v in head.items()})


def rule(live_by_source: dict, q: float, how: str) -> float:
    """The threshold rule on tuning sources' live scores: ``min`` over sources of each
    one's q-quantile (no tuning camera above q), or ``pooled`` (q of them all, each
    source weighted equally)."""
    if how == "min":
        return min(threshold_for_bpcer(v, q) for v in live_by_source.values())
    return pooled_threshold_for_bpcer(live_by_source, q)


def thresholds_zero_shot(scores, live, source, door, q, how):
    """Per door source S: the rule on the other door sources; and the rule on all."""
    per = {t: scores[(source == t) & live] for t in door}
    return ({s: rule({t: v for t, v in per.items() if t != s}, q, how) for s in door}, rule(per, q, how))


def thresholds_nested(nest, live, source, door, q, how):
    return {s: rule({t: nest["tune"][(s, t)][live[source == t]] for t in door if t != s}, q, how) for s in door}


def capture_order(sequence, order) -> np.ndarray:
    """Every frame's rank in capture order: by recording sequence, then by ``order``
    within it (``seq_rank * 10**18 + order`` overflows int64 beyond 9 sequences)."""
    _, seq_rank = np.unique(np.asarray(sequence), return_inverse=True)
    idx = np.lexsort((np.asarray(order, np.int64), seq_rank))
    rank = np.empty(len(idx), np.int64)
    rank[idx] = np.arange(len(idx))
    return rank


def judge(scores, live, source, order, thr, calibrate=False):
    """APCER / BPCER / AUC / attack-window pass share of one source at ``thr``;
    with ``calibrate`` the first half of its live frames (capture order) calibrate."""
    idx_live = np.flatnonzero(live)
    idx_live = idx_live[np.argsort(order[idx_live], kind="stable")]
    test_live = scores[idx_live]
    if calibrate:
        half = len(idx_live) // 2
        from edge.calibration import calibrated_threshold

        thr = calibrated_threshold(scores[idx_live[:half]], thr)
        test_live = scores[idx_live[half:]]
    att = np.flatnonzero(~live)
    att = att[np.argsort(order[att], kind="stable")]
    apcer, bpcer = apcer_bpcer(test_live, scores[att], thr)
    # the door's window rule for every k of N: the share of attack windows that would pass, and of
    # live windows a resident would (the live frames judged, in capture order)
    by_k = {f"{k}of{N}": {"attack": attack_windows(scores[att] >= thr, N, k),
                          "live": attack_windows(test_live >= thr, N, k)} for k in range(K, N + 1)}
    return {"threshold": float(thr), "apcer": apcer, "bpcer": bpcer, "auc": roc_auc(scores[live], scores[~live]),
            "windows": by_k[f"{K}of{N}"]["attack"], "windows_by_k": by_k,
            "live": int(len(test_live)), "attack": int(len(att))}
