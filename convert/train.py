"""``facelatch-convert train``: metric-learning training of a face encoder on
aligned chips, from scratch (a small ReLU net) or fine-tuning an imported one."""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import Augment, Chips, LabelledImages, PKSampler, cached_chips
from .losses import make_loss
from .metrics import best_threshold, pairwise_distances


def small_encoder(size: int = 150, dim: int = 128, width: int = 16, bn_momentum: float = 0.9):
    """A small int8-friendly encoder (Conv-BN-ReLU, no PReLU), RGB 0..255 in."""
    import keras
    from keras import layers

    from .layers import conv_stack

    inp = keras.Input((size, size, 3), name="chip")
    x = conv_stack(layers.Rescaling(1 / 127.5, offset=-1.0)(inp), [width, width * 2, width * 4, width * 8],
                   bn_momentum)
    out = layers.Dense(dim, name="embedding")(x)
    return keras.Model(inp, out, name="facelatch_small")


def with_batch(model, batch: int | None):
    """The same functional model (sharing weights' values) with a different batch size:
    training wants a free batch, the TFLite export a fixed batch of 1."""
    import keras

    clone = keras.models.clone_model(model, input_tensors=keras.Input(model.input_shape[1:], batch_size=batch))
    clone.set_weights(model.get_weights())
    return clone


def l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def embed_chips(model, chips: np.ndarray, batch: int = 64, flip: bool = False) -> np.ndarray:
    out = []
    for i in range(0, len(chips), batch):
        c = chips[i:i + batch].astype(np.float32)
        e = model(c, training=False).numpy()
        if flip:
            e = e + model(c[:, :, ::-1], training=False).numpy()
        out.append(e)
    return l2n(np.concatenate(out))


@dataclass
class PairSet:
    """Verification pairs over a set of chips (indices into ``chips``)."""

    chips: np.ndarray
    a: np.ndarray
    b: np.ndarray
    same: np.ndarray

    def distances(self, model) -> np.ndarray:
        e = embed_chips(model, self.chips)
        return np.sum((e[self.a] - e[self.b]) ** 2, axis=1)


def view1_pairs(lfw_root: Path, aligner, cache_dir: Path, log=print) -> tuple[PairSet, PairSet]:
    """LFW View 1: (pairsDevTrain, pairsDevTest) as PairSets of cached chips."""
    from .lfw import read_pairs

    sets = []
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt"):
        pairs = read_pairs(lfw_root / name)
        rel = sorted({p for pair in pairs for p in (pair.a, pair.b)})
        imgs = LabelledImages([lfw_root / "images" / r for r in rel], np.zeros(len(rel), np.int64))
        ch = cached_chips(imgs, aligner, cache_dir, f"lfw-{name.split('.')[0]}", log, largest=True)
        index = {Path(p).parent.name + "/" + Path(p).name: i for i, p in enumerate(ch.paths)}
        keep = [p for p in pairs if p.a in index and p.b in index]
        sets.append(PairSet(ch.chips, np.array([index[p.a] for p in keep]), np.array([index[p.b] for p in keep]),
                            np.array([p.same for p in keep])))
    return sets[0], sets[1]


def view1_accuracy(model, dev_train: PairSet, dev_test: PairSet) -> float:
    """Threshold chosen on pairsDevTrain, accuracy on pairsDevTest."""
    t = best_threshold(dev_train.distances(model), dev_train.same)
    return float(np.mean((dev_test.distances(model) <= t) == dev_test.same))


def separation_auc(model, chips: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random genuine pair is closer than a random impostor pair
    (ROC AUC over all pairs of a small labelled set)."""
    e = embed_chips(model, chips)
    d = pairwise_distances(e, e, "euclidean")
    iu = np.triu_indices(len(labels), 1)
    same = (labels[:, None] == labels[None, :])[iu]
    dist = d[iu]
    g, i = dist[same], dist[~same]
    return float(((g[:, None] < i[None, :]).sum() + 0.5 * (g[:, None] == i[None, :]).sum()) / (len(g) * len(i)))


class Progress:
    def __init__(self, total: int, prefix: str):
        self.total, self.prefix, self.t0 = total, prefix, time.time()
        self.tty = sys.stderr.isatty()

    def update(self, step: int, **stats):
        if not self.tty and step % max(1, self.total // 10) and step != self.total:
            return
        done = int(30 * step / self.total)
        rate = step / max(time.time() - self.t0, 1e-9)
        text = " ".join(f"{k} {v:.4f}" for k, v in stats.items())
        line = f"{self.prefix} [{'#' * done}{'.' * (30 - done)}] {step}/{self.total} {text} ({rate:.2f} step/s)"
        print(("\r" + line) if self.tty else line, end="" if self.tty and step < self.total else "\n",
              file=sys.stderr, flush=True)


def train(model, chips: Chips, out_dir: Path, *, loss: str = "triplet-semihard", margin: float | None = None,
          epochs: int = 10, steps: int | None = None, p: int = 16, k: int = 4, lr: float = 1e-4,
          freeze: int = 0, augment: bool = True, validate=None, seed: int = 0, log=print) -> dict:
    """Train ``model`` in place.  ``validate(model) -> float`` (higher is better) runs
    before training and after every epoch; the best model is saved as best.keras.
    Checkpoints (model + optimizer + epoch) in out_dir/ckpt make runs resumable."""
    import keras
    import tensorflow as tf

    out_dir.mkdir(parents=True, exist_ok=True)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    for layer in convs[:freeze]:
        layer.trainable = False
    loss_fn = make_loss(loss, margin)
    optimizer = keras.optimizers.Adam(lr)
    sampler = PKSampler(chips.labels, p, k, seed)
    aug = Augment(seed) if augment else None
    steps = steps or max(1, len(chips.labels) // (p * k))
    epoch_var = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(ckpt, str(out_dir / "ckpt"), max_to_keep=2)
    state_path = out_dir / "state.json"
    state = {"best": None, "best_epoch": None, "history": []}
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        if state_path.exists():
            state = json.loads(state_path.read_text())
        log(f"resumed from {manager.latest_checkpoint} at epoch {int(epoch_var.numpy())}")

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            e = model(x, training=True)
            e = tf.math.l2_normalize(e, axis=1)
            value, stats = loss_fn(y, e)
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return value, stats["active"]

    log_path = out_dir / "log.csv"
    new_log = not log_path.exists()
    with open(log_path, "a", newline="") as f:
        writer = csv.writer(f)
        if new_log:
            writer.writerow(["epoch", "loss", "active_fraction", "validation", "seconds"])
        if int(epoch_var.numpy()) == 0 and validate is not None and state["best"] is None:
            v = validate(model)
            state.update(best=v, best_epoch=0)
            model.save(out_dir / "best.keras")
            writer.writerow([0, "", "", f"{v:.4f}", 0])
            f.flush()
            log(f"epoch 0 (before training): validation {v:.4f}")
        while int(epoch_var.numpy()) < epochs:
            epoch = int(epoch_var.numpy()) + 1
            t0 = time.time()
            bar = Progress(steps, f"epoch {epoch}/{epochs}")
            losses, actives = [], []
            for s in range(1, steps + 1):
                idx = sampler.batch()
                x = chips.chips[idx]
                if aug is not None:
                    x = aug(x)
                value, active = step(tf.constant(x, tf.float32), tf.constant(chips.labels[idx]))
                losses.append(float(value))
                actives.append(float(active))
                bar.update(s, loss=np.mean(losses[-20:]), active=np.mean(actives[-20:]))
            v = validate(model) if validate is not None else float("nan")
            epoch_var.assign(epoch)
            if validate is not None and (state["best"] is None or v > state["best"]):
                state.update(best=v, best_epoch=epoch)
                model.save(out_dir / "best.keras")
            state["history"].append({"epoch": epoch, "loss": float(np.mean(losses)),
                                     "active": float(np.mean(actives)), "validation": v})
            model.save(out_dir / "last.keras")
            manager.save()
            state_path.write_text(json.dumps(state, indent=1))
            writer.writerow([epoch, f"{np.mean(losses):.5f}", f"{np.mean(actives):.4f}", f"{v:.4f}",
                             f"{time.time() - t0:.0f}"])
            f.flush()
            log(f"epoch {epoch}: loss {np.mean(losses):.4f}, active {np.mean(actives):.3f}, validation {v:.4f} "
                f"(best {state['best']:.4f} at epoch {state['best_epoch']})" if validate else
                f"epoch {epoch}: loss {np.mean(losses):.4f}, active {np.mean(actives):.3f}")
    return state
