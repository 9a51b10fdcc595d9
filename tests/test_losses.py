"""Each loss against a plain numpy reference, on random batches and edge cases."""

import itertools

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from convert.losses import ContrastiveLoss, TripletLoss, pairwise_sq_distances  # noqa: E402


def ref_triplets(labels, emb, margin, mining):
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    n = len(labels)
    losses = []
    for a in range(n):
        pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [q for q in range(n) if labels[q] != labels[a]]
        if not pos or not neg:
            continue
        if mining == "all":
            losses += [max(d[a, p] - d[a, q] + margin, 0) for p in pos for q in neg]
        elif mining == "hard":
            losses.append(max(max(d[a, p] for p in pos) - min(d[a, q] for q in neg) + margin, 0))
        else:
            for p in pos:
                farther = [d[a, q] for q in neg if d[a, q] > d[a, p]]
                dn = min(farther) if farther else max(d[a, q] for q in neg)
                losses.append(max(d[a, p] - dn + margin, 0))
    losses = np.array(losses)
    active = losses > 1e-16
    loss = losses[active].mean() if active.any() else 0.0
    return loss, (active.mean() if len(losses) else 0.0)


def ref_contrastive(labels, emb, margin):
    vals = []
    for i, j in itertools.permutations(range(len(labels)), 2):
        d = np.linalg.norm(emb[i] - emb[j])
        vals.append(d ** 2 / 2 if labels[i] == labels[j] else max(margin - d, 0) ** 2 / 2)
    return np.mean(vals)


def batches():
    rng = np.random.default_rng(1)
    for _ in range(5):
        labels = rng.integers(0, 4, 12)
        emb = rng.normal(size=(12, 8)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        yield "random", labels, emb
    yield "no valid positive", np.arange(6), rng.normal(size=(6, 8)).astype(np.float32)
    easy = np.repeat(np.eye(3, 8, dtype=np.float32) * 5, 2, axis=0)  # tight, far-apart clusters
    yield "all easy", np.repeat(np.arange(3), 2), easy
    dup = np.tile(rng.normal(size=(1, 8)).astype(np.float32), (6, 1))  # identical embeddings
    yield "duplicates", np.array([0, 0, 1, 1, 2, 2]), dup


@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
def test_triplet_losses_match_numpy(mining):
    for name, labels, emb in batches():
        loss, stats = TripletLoss(0.2, mining)(labels, emb)
        want, active = ref_triplets(labels, emb.astype(np.float64), 0.2, mining)
        assert float(loss) == pytest.approx(want, rel=1e-4, abs=1e-5), name
        assert float(stats["active"]) == pytest.approx(active, abs=1e-6), name


def test_edge_cases_behave():
    _, labels, emb = list(batches())[5]  # no valid positive
    loss, stats = TripletLoss(0.2, "semihard")(labels, emb)
    assert float(loss) == 0.0 and float(stats["active"]) == 0.0
    _, labels, emb = list(batches())[6]  # all easy
    assert float(TripletLoss(0.2, "all")(labels, emb)[0]) == 0.0
    _, labels, emb = list(batches())[7]  # duplicates: every triplet sits exactly at the margin
    loss, stats = TripletLoss(0.3, "hard")(labels, emb)
    assert float(loss) == pytest.approx(0.3, abs=1e-5) and float(stats["active"]) == 1.0


def test_contrastive_matches_numpy():
    for name, labels, emb in batches():
        loss, _ = ContrastiveLoss(1.0)(labels, emb)
        assert float(loss) == pytest.approx(ref_contrastive(labels, emb.astype(np.float64), 1.0), rel=1e-4, abs=1e-5), name


def test_gradients_flow_and_distances_are_exact_zero_on_diagonal():
    emb = tf.Variable(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss, _ = TripletLoss(0.5, "all")(np.array([0, 0, 1, 1, 2, 2, 3, 3]), emb)
    g = tape.gradient(loss, emb)
    assert np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).sum() > 0
    assert np.all(np.diag(pairwise_sq_distances(emb).numpy()) == 0)
