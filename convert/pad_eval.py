"""Measuring presentation-attack detection across sources (ISO/IEC 30107-3 terms:
APCER = attacks accepted as live, BPCER = live faces rejected).

The protocol is leave-one-source-out: for every source, the threshold is fixed on
the *other* sources' bona fide frames before the source is looked at, then APCER
and BPCER are measured on it.  The threshold rule never looks at attacks and never
at the source under test: the highest threshold that keeps BPCER at most ``bpcer``
on *every* tuning source (the minimum of the per-source ``bpcer``-quantiles of
P(live)) — one camera where people are locked out is one too many."""

from __future__ import annotations

import numpy as np

from edge.calibration import threshold_rejecting


def threshold_for_bpcer(live_scores: np.ndarray, bpcer: float) -> float:
    """The highest threshold that rejects at most ``bpcer`` of these live faces (the
    device's own rule, edge.calibration, which per-installation calibration applies)."""
    return threshold_rejecting(live_scores, bpcer)


def pooled_threshold_for_bpcer(scores_by_source: dict, bpcer: float) -> float:
    """The highest threshold that rejects at most ``bpcer`` of the live faces of several
    sources pooled with each source weighted equally (so that one camera whose live
    faces score very low raises the rejections there without dragging the threshold
    down to nothing for every other camera, as the minimum over sources does)."""
    scores = np.concatenate([np.asarray(v, float) for v in scores_by_source.values()])
    weights = np.concatenate([np.full(len(v), 1.0 / len(v)) for v in scores_by_source.values()])
    order = np.argsort(scores, kind="stable")
    s, w = scores[order], weights[order]
    before = np.concatenate([[0.0], np.cumsum(w)[:-1]])  # weight strictly below each sorted score (ties aside)
    ok = np.flatnonzero(before <= bpcer * w.sum() + 1e-12)
    return float(s[ok[-1]])


def apcer_bpcer(live_scores, attack_scores, threshold: float) -> tuple[float, float]:
    live_scores, attack_scores = np.asarray(live_scores), np.asarray(attack_scores)
    apcer = float(np.mean(attack_scores >= threshold)) if len(attack_scores) else float("nan")
    bpcer = float(np.mean(live_scores < threshold)) if len(live_scores) else float("nan")
    return apcer, bpcer


def roc_auc(live_scores, attack_scores) -> float:
    """P(a live score > an attack score), ties counted half (Mann-Whitney)."""
    live_scores, attack_scores = np.asarray(live_scores, float), np.asarray(attack_scores, float)
    if not len(live_scores) or not len(attack_scores):
        return float("nan")
    a = np.sort(attack_scores)
    below = np.searchsorted(a, live_scores, "left")
    ties = np.searchsorted(a, live_scores, "right") - below
    return float((below + 0.5 * ties).sum() / (len(live_scores) * len(a)))


def multi_source_threshold(scores, live, source, tune_sources, bpcer: float) -> float:
    """Min over ``tune_sources`` of the threshold keeping BPCER <= ``bpcer`` there."""
    return min(threshold_for_bpcer(scores[(source == s) & live], bpcer) for s in tune_sources
               if np.any((source == s) & live))


def leave_one_source_out(scores, live, source, threshold_sources, bpcer: float, report_sources=None) -> dict:
    """Per reported source: the threshold fixed on ``threshold_sources`` minus that
    source, and APCER / BPCER / AUC measured on it."""
    scores, live, source = np.asarray(scores, float), np.asarray(live, bool), np.asarray(source)
    out = {}
    for s in report_sources if report_sources is not None else sorted(set(source)):
        tune = [t for t in threshold_sources if t != s]
        thr = multi_source_threshold(scores, live, source, tune, bpcer)
        here = source == s
        apcer, bp = apcer_bpcer(scores[here & live], scores[here & ~live], thr)
        out[s] = {"threshold": thr, "apcer": apcer, "bpcer": bp, "live": int((here & live).sum()),
                  "attack": int((here & ~live).sum()), "auc": roc_auc(scores[here & live], scores[here & ~live])}
    return out


def pooled(table: dict, sources) -> dict:
    """Frame-weighted APCER and BPCER over ``sources`` of a leave-one-source-out table
    (each at its own held-out threshold)."""
    rows = [table[s] for s in sources if s in table]
    na, nl = sum(r["attack"] for r in rows), sum(r["live"] for r in rows)
    return {"apcer": sum(r["apcer"] * r["attack"] for r in rows if r["attack"]) / max(na, 1),
            "bpcer": sum(r["bpcer"] * r["live"] for r in rows if r["live"]) / max(nl, 1),
            "max_bpcer": max((r["bpcer"] for r in rows if r["live"]), default=float("nan")),
            "live": nl, "attack": na}


def attack_windows(passes, n: int, k: int) -> float:
    """The share of windows of ``n`` consecutive attack frames (capture order) in which
    at least ``k`` pass as live: how often the door's k-of-n liveness rule would be
    satisfied by an attack shown for n frames (nan with fewer than n frames)."""
    passes = np.asarray(passes, bool)
    if len(passes) < n:
        return float("nan")
    counts = np.convolve(passes.astype(int), np.ones(n, int), mode="valid")
    return float(np.mean(counts >= k))
