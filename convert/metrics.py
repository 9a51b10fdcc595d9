"""Verification metrics on distances — pure numpy, no I/O."""

from __future__ import annotations

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
    k = int(np.floor(fmr * len(imp)))  # at most k impostors may fall at or below the threshold
    if k == 0:
        return float(imp[0]) - 1e-6
    return float((imp[k - 1] + imp[k]) / 2) if imp[k] > imp[k - 1] else float(np.nextafter(imp[k], -np.inf))


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
