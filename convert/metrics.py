"""Verification metrics on distances — pure numpy, no I/O."""

from __future__ import annotations

import math

import numpy as np


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold (decide "same" when dist <= t) with the highest accuracy."""
    order = np.argsort(dist, kind="stable")
    d, s = dist[order], same[order].astype(np.int64)
    # accepting the first i pairs: correct = genuine accepted + impostors rejected
    correct = np.concatenate([[0], np.cumsum(s)]) + (np.sum(1 - s) - np.concatenate([[0], np.cumsum(1 - s)]))
    i = int(np.argmax(correct))
    if i == 0:
        return float(d[0]) - 1e-6
    if i == len(d):
        return float(d[-1]) + 1e-6
    return float((d[i - 1] + d[i]) / 2)


def kfold_accuracy(dist: np.ndarray, same: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LFW protocol: for each fold, the threshold is chosen on the other folds and
    accuracy scored on this one.  Returns (accuracies, thresholds) per fold."""
    accs, thrs = [], []
    for k in np.unique(fold):
        test = fold == k
        t = best_threshold(dist[~test], same[~test])
        accs.append(np.mean((dist[test] <= t) == same[test]))
        thrs.append(t)
    return np.array(accs), np.array(thrs)


def threshold_at_fmr(impostor: np.ndarray, fmr: float) -> float:
    """Largest threshold whose false-match rate on these impostor distances is <= fmr
    (a match is dist <= threshold)."""
    imp = np.sort(np.asarray(impostor, np.float64))
    return _threshold_admitting(imp, int(np.floor(fmr * len(imp))))


def _threshold_admitting(imp: np.ndarray, k: int) -> float:
    """Largest threshold with at most k of the sorted impostor distances at or below it."""
    if k == 0:
        return float(imp[0]) - 1e-6
    if k >= len(imp):
        return float(imp[-1]) + 1e-6
    return float((imp[k - 1] + imp[k]) / 2) if imp[k] > imp[k - 1] else float(np.nextafter(imp[k], -np.inf))


def _poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam), summed in log space (k up to ~1e5)."""
    if lam <= 0:
        return 1.0
    i = np.arange(k + 1, dtype=np.float64)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(i[1:]))])
    logs = i * np.log(lam) - lam - log_factorial
    m = logs.max()
    return float(min(1.0, np.exp(m) * np.sum(np.exp(logs - m))))


def _solve(f, lo: float, hi: float) -> float:
    """The root of a decreasing f on [lo, hi] by bisection (to the last bit: it stops
    once a step no longer moves either end, which every later step would repeat)."""
    for _ in range(200):
        mid = (lo + hi) / 2
        step = (mid, hi) if f(mid) > 0 else (lo, mid)
        if step == (lo, hi):
            break
        lo, hi = step
    return (lo + hi) / 2


def _mean_search_top(k: int) -> float:
    """A Poisson mean above both exact limits for k events (the bisection's upper end)."""
    return k + 10 * math.sqrt(k + 1) + 20


def _poisson_mean_at(k: int, cdf: float, top: float) -> float:
    """The Poisson mean in [0, top] at which P(X <= k) equals ``cdf`` (it falls as the mean grows)."""
    return _solve(lambda lam: _poisson_cdf(k, lam) - cdf, 0.0, top)


def fmr_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval for a false-match rate seen as k of n independent
    impostor pairs (Poisson limit of the binomial, good for k << n)."""
    a = (1 - confidence) / 2
    top = _mean_search_top(k)
    lower = 0.0 if k == 0 else _poisson_mean_at(k - 1, 1 - a, top)
    return lower / n, _poisson_mean_at(k, a, top) / n


def fmr_upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of a false-match rate seen as k of n pairs."""
    return _poisson_mean_at(k, 1 - confidence, _mean_search_top(k)) / n


def threshold_at_fmr_bound(impostor: np.ndarray, fmr: float, confidence: float = 0.95) -> float:
    """Largest threshold at which the one-sided ``confidence`` upper bound of the
    false-match rate, given how many impostors fall at or below it, is <= fmr: with few
    impostors in the tail the threshold moves in rather than trusting the point estimate."""
    imp = np.sort(np.asarray(impostor, np.float64))
    lo, hi = 0, int(np.floor(fmr * len(imp)))  # the bound grows with k: the largest k it allows
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fmr_upper_bound(mid, len(imp), confidence) <= fmr else (lo, mid - 1)
    return _threshold_admitting(imp, lo)


THRESHOLDS_METHOD = (
    "strictest per source at the 95 % upper bound: for each fit source separately, the largest threshold whose "
    "one-sided 95 % upper confidence bound on that source's FMR (exact Poisson, from the impostors at or below it) "
    "is <= the row; the row's distance is the smallest of these (convert.metrics.strictest_threshold)")


def strictest_threshold(sources: dict[str, np.ndarray], fmr: float, confidence: float = 0.95) -> tuple[float, str]:
    """The threshold that holds on EVERY source of impostor distances separately (each
    at its ``confidence`` upper bound, threshold_at_fmr_bound): the smallest of the
    per-source thresholds, and the source that set it."""
    per = {name: threshold_at_fmr_bound(d, fmr, confidence) for name, d in sources.items()}
    name = min(per, key=per.get)
    return per[name], name


def rate_at_or_below(dist: np.ndarray, threshold: float) -> float:
    return float(np.mean(np.asarray(dist) <= threshold)) if len(dist) else float("nan")


def roc_points(genuine: np.ndarray, impostor: np.ndarray, fars: np.ndarray) -> np.ndarray:
    """TAR at each FAR in ``fars``."""
    return np.array([rate_at_or_below(genuine, threshold_at_fmr(impostor, f)) for f in fars])


def pairwise_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if metric == "cosine":
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return 1.0 - a @ b.T
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def cross_identity_distances(emb: np.ndarray, labels: np.ndarray, metric: str, chunk: int = 2048):
    """(genuine, impostor) distances over ALL pairs i < j of a labelled set."""
    genuine, impostor = [], []
    for start in range(0, len(emb), chunk):
        d = pairwise_distances(emb[start:start + chunk], emb, metric)
        rows = np.arange(start, min(start + chunk, len(emb)))[:, None]
        upper = np.arange(len(emb))[None, :] > rows
        same = labels[start:start + chunk][:, None] == labels[None, :]
        genuine.append(d[upper & same].astype(np.float32))
        impostor.append(d[upper & ~same].astype(np.float32))
    return np.concatenate(genuine), np.concatenate(impostor)
