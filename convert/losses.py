"""Metric-learning losses as plain callables on a batch: ``loss(labels, embeddings)
-> (scalar loss, stats)``.  Mining happens inside the batch (online), so each loss
is a small, separate piece:

- :class:`TripletLoss` with ``mining`` = ``"all"`` (every valid triplet),
  ``"hard"`` (per anchor: farthest positive, nearest negative) or ``"semihard"``
  (FaceNet: per anchor-positive pair, the nearest negative that is still farther
  than the positive; when there is none, the farthest negative, as TF-Addons does,
  which keeps early training from collapsing onto the hardest negatives).
  Loss per triplet: ``max(‖a−p‖² − ‖a−n‖² + margin, 0)``, averaged over the
  *active* (non-zero) triplets; ``stats["active"]`` is their fraction.
- :class:`ContrastiveLoss` (Hadsell, Chopra, LeCun 2006) over all pairs of the
  batch: ``y·d²/2 + (1−y)·max(margin − d, 0)²/2``, averaged over pairs.

Distances are squared euclidean on the embeddings as given; normalize them first
(the encoders here end in an L2 normalization when trained with these losses).
"""

from __future__ import annotations

import tensorflow as tf


def pairwise_sq_distances(emb):
    """(B, B) squared euclidean distances, clipped at 0 (exact 0 on the diagonal)."""
    emb = tf.convert_to_tensor(emb, tf.float32)
    sq = tf.reduce_sum(tf.square(emb), axis=1)
    d = sq[:, None] - 2.0 * tf.matmul(emb, emb, transpose_b=True) + sq[None, :]
    d = tf.maximum(d, 0.0)
    return d * (1.0 - tf.eye(tf.shape(emb)[0]))


def _masks(labels):
    labels = tf.reshape(tf.convert_to_tensor(labels), [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.cast(tf.eye(tf.shape(labels)[0]), tf.bool))
    positive = tf.logical_and(same, not_self)  # (a, p)
    negative = tf.logical_not(same)  # (a, n)
    return positive, negative


def _mean_active(losses, valid):
    """Mean over active (> 1e-16) valid triplets and their fraction among valid ones."""
    valid = tf.cast(valid, tf.float32)
    losses = losses * valid
    active = tf.cast(losses > 1e-16, tf.float32)
    n_active = tf.reduce_sum(active)
    n_valid = tf.reduce_sum(valid)
    loss = tf.math.divide_no_nan(tf.reduce_sum(losses), n_active)
    return loss, {"active": tf.math.divide_no_nan(n_active, n_valid), "triplets": n_valid}


class TripletLoss:
    def __init__(self, margin: float = 0.2, mining: str = "semihard"):
        if mining not in ("all", "hard", "semihard"):
            raise ValueError(f"mining must be all, hard or semihard, not {mining!r}")
        self.margin, self.mining = float(margin), mining

    def __call__(self, labels, embeddings):
        d = pairwise_sq_distances(embeddings)
        positive, negative = _masks(labels)
        return getattr(self, f"_{self.mining}")(d, positive, negative)

    def _all(self, d, positive, negative):
        # t[a, p, n] = d[a, p] - d[a, n] + margin for every (a, p) positive and (a, n) negative
        t = d[:, :, None] - d[:, None, :] + self.margin
        valid = tf.logical_and(positive[:, :, None], negative[:, None, :])
        return _mean_active(tf.maximum(t, 0.0), valid)

    def _hard(self, d, positive, negative):
        big = tf.reduce_max(d) + 1.0
        hardest_pos = tf.reduce_max(tf.where(positive, d, 0.0), axis=1)
        hardest_neg = tf.reduce_min(tf.where(negative, d, big), axis=1)
        valid = tf.logical_and(tf.reduce_any(positive, 1), tf.reduce_any(negative, 1))
        return _mean_active(tf.maximum(hardest_pos - hardest_neg + self.margin, 0.0), valid)

    def _semihard(self, d, positive, negative):
        big = tf.reduce_max(d) + 1.0
        d_ap = d[:, :, None]  # (a, p, 1)
        d_an = d[:, None, :]  # (a, 1, n)
        neg = negative[:, None, :]
        semihard = tf.logical_and(neg, d_an > d_ap)
        nearest_semihard = tf.reduce_min(tf.where(semihard, d_an, big), axis=2)  # (a, p)
        farthest = tf.reduce_max(tf.where(negative, d, 0.0), axis=1)[:, None]  # (a, 1) fallback
        has_semihard = tf.reduce_any(semihard, axis=2)
        d_neg = tf.where(has_semihard, nearest_semihard, tf.broadcast_to(farthest, tf.shape(nearest_semihard)))
        valid = tf.logical_and(positive, tf.reduce_any(negative, axis=1)[:, None])
        return _mean_active(tf.maximum(d - d_neg + self.margin, 0.0), valid)


class ContrastiveLoss:
    def __init__(self, margin: float = 1.0):
        self.margin = float(margin)

    def __call__(self, labels, embeddings):
        d2 = pairwise_sq_distances(embeddings)
        d = tf.sqrt(d2 + 1e-12)
        positive, negative = _masks(labels)
        pair = tf.logical_or(positive, negative)
        per = tf.where(positive, d2, tf.square(tf.maximum(self.margin - d, 0.0))) / 2.0
        n = tf.reduce_sum(tf.cast(pair, tf.float32))
        loss = tf.math.divide_no_nan(tf.reduce_sum(tf.where(pair, per, 0.0)), n)
        active = tf.math.divide_no_nan(tf.reduce_sum(tf.cast(tf.logical_and(pair, per > 1e-16), tf.float32)), n)
        return loss, {"active": active, "pairs": n}


def make_loss(name: str, margin: float | None = None):
    """``triplet-semihard`` | ``triplet-hard`` | ``triplet-all`` | ``contrastive``."""
    if name.startswith("triplet-"):
        return TripletLoss(0.2 if margin is None else margin, name.split("-", 1)[1])
    if name == "contrastive":
        return ContrastiveLoss(1.0 if margin is None else margin)
    raise ValueError(f"unknown loss {name!r}")
