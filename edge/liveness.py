"""Presentation-attack detection (liveness): is this a live face, or a photo or a
screen showing one?

The model is a small stack of MiniFASNet networks (Silent-Face-Anti-Spoofing,
Apache-2.0, converted by ``facelatch-convert import-minifasnet``).  Each member
sees its own patch around the detected face — the box scaled by the member's
factor (2.7x, 4.0x, 8.0x: the wider the patch, the more of a held photo's or a
screen's edge is in view), shifted to stay inside the frame and resized to 80x80 —
or, for a member whose scale is ``"frame"``, the whole frame resized to 80x80 (the
context the others miss: the hand, the phone's body, the room around a screen).
The patches are stacked along the channel axis into the one model input; the
model returns 3 logits per member (index 1 = live).  P(live) is the card's linear
head over the members' log-odds where the card has one (weights learned leave one
source out on many cameras, convert/pad_stack.py), else the mean of the members'
softmax probabilities.  The patch definition lives here, in one place, and
the converter and the benchmarks import it."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np

from .detect import Face
from .errors import FacelatchError
from .modelcard import ModelCard
from .runtime import TFLiteModel

LIVE = 1  # softmax index of "live" in every member's 3 logits
FRAME = "frame"  # the crop scale of a member that sees the whole frame


def parse_scale(value) -> float | str:
    """One entry of a card's ``crop.scales``: a positive factor of the face box, or FRAME."""
    if value == FRAME:
        return FRAME
    if isinstance(value, bool):
        raise FacelatchError(f"liveness card: crop scale {value!r} is neither a number nor {FRAME!r}")
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise FacelatchError(f"liveness card: crop scale {value!r} is neither a number nor {FRAME!r}") from None
    if not (np.isfinite(scale) and scale > 0):
        raise FacelatchError(f"liveness card: crop scale {value!r} must be a positive number or {FRAME!r}")
    return scale


FRAME_ASPECT = 4 / 3  # the frames the whole-frame member learnt from: every door-like PAD source is 4:3


def frame_patch(rgb: np.ndarray, size: int) -> np.ndarray:
    """The whole frame as one patch: its largest centred 4:3 region (all of a 4:3 frame; a
    16:9 camera loses the sides) resized to size x size, area interpolation (a large
    downscale)."""
    h, w = rgb.shape[:2]
    cw, ch = min(w, round(h * FRAME_ASPECT)), min(h, round(w / FRAME_ASPECT))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return cv2.resize(rgb[y0:y0 + max(ch, 1), x0:x0 + max(cw, 1)], (size, size), interpolation=cv2.INTER_AREA)


def shifted_crop(rgb: np.ndarray, box, size: int, scale: float) -> np.ndarray:
    """MiniFASNet's patch (size x size, RGB uint8): the face box scaled by ``scale``
    about its centre — less where the image is too small for that — then shifted to
    lie inside the image and resampled to size x size (bilinear, at the patch pixels'
    centres).  Never padded: the Silent-Face models were trained on such patches.

    The region keeps its sub-pixel position: a box that moves by 0.005 px (what the
    detector's float kernels differ by between x86-64 and arm64) moves the patch by as
    little, where cutting at whole pixels shifted it by a pixel now and then and moved
    P(live) by up to 0.16."""
    img_h, img_w = rgb.shape[:2]
    x, y, w, h = (float(v) for v in box)
    w, h = max(w, 1.0), max(h, 1.0)
    scale = min((img_h - 1) / h, (img_w - 1) / w, scale)
    nw, nh = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    x0 = max(min(max(cx - nw / 2, 0.0), img_w - 1 - nw), 0.0)
    y0 = max(min(max(cy - nh / 2, 0.0), img_h - 1 - nh), 0.0)
    sx, sy = nw / size, nh / size  # source pixels per patch pixel
    to_source = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
    return cv2.warpAffine(rgb, to_source, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def stacked_patches(rgb: np.ndarray, box, size: int, scales) -> np.ndarray:
    """(size, size, 3 * len(scales)) uint8: one patch per scale (FRAME: the whole frame),
    stacked on channels."""
    return np.concatenate([frame_patch(rgb, size) if s == FRAME else shifted_crop(rgb, box, size, s)
                           for s in scales], axis=2)


def live_probability(logits: np.ndarray) -> np.ndarray:
    """P(live) from logits (..., 3 * members): mean over members of softmax[LIVE]."""
    z = logits.reshape(*logits.shape[:-1], -1, 3)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e[..., LIVE] / e.sum(axis=-1)).mean(axis=-1)


def member_log_odds(logits: np.ndarray) -> np.ndarray:
    """Per member, log P(live) / P(not live) from its 3 logits: (..., 3 * members) -> (..., members)."""
    z = logits.reshape(*logits.shape[:-1], -1, 3)
    return z[..., LIVE] - np.logaddexp(z[..., 0], z[..., 2])


class LinearHead:
    """The card's ``head``: P(live) = sigmoid(w . (x - mean) / std + b), where ``x`` is the
    members' 128-D features (``inputs = "features"``) or their log-odds — weights learned
    on many cameras' frames, leave one source out (convert/pad_stack.py,
    benchmarks/pad_stack.py)."""

    def __init__(self, head: dict, members: int, features: int):
        try:
            self.mean, self.std, self.w = (np.asarray(head[k], float) for k in ("mean", "std", "w"))
            self.b = float(head["b"])
            self.inputs = str(head.get("inputs", "log_odds"))
        except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond any float
            raise FacelatchError("liveness card: head needs mean, std, w and b") from None
        size = {"log_odds": members, "features": features}.get(self.inputs)
        if not size or not (self.mean.shape == self.std.shape == self.w.shape == (size,)) or not np.all(self.std > 0):
            raise FacelatchError(f"liveness card: the head's {self.inputs!r} inputs do not fit the model "
                                 f"({members} members, {features} feature values)")
        if not all(np.all(np.isfinite(v)) for v in (self.mean, self.std, self.w, self.b)):
            # NaN would score every face NaN: never live, the door shut without a word
            raise FacelatchError("liveness card: the head's mean, std, w and b must be finite numbers")
        # w . (x - mean) / std + b  ==  x . (w / std) + (b - mean . (w / std)): folded once, not per frame
        self._w = self.w / self.std
        self._b = self.b - float(self.mean @ self._w)

    def __call__(self, features: np.ndarray, logits: np.ndarray) -> float:
        x = features if self.inputs == "features" else member_log_odds(logits)
        z = float(x @ self._w + self._b)
        return float(1 / (1 + np.exp(-np.clip(z, -30, 30))))


class Liveness:
    """``score(rgb, face) -> float`` in [0, 1]: probability that the face is live.
    ``is_live(score)`` applies the card's default threshold (or the one given)."""

    def __init__(self, card: ModelCard, threads: int = 1, threshold: float | None = None):
        self.card = card
        crop = card.data.get("crop", {})
        if "scales" not in crop:
            raise FacelatchError(f"{card.path.name}: not a liveness card of this version (no crop.scales)")
        self.model = TFLiteModel(card.model_path, threads)
        self.size, self.scales = int(crop["size"]), [parse_scale(s) for s in crop["scales"]]
        self.default_threshold = float(card.data["threshold"]["live_score"])  # the card's, for every camera
        self.threshold = self.default_threshold if threshold is None else float(threshold)
        self.model_sha256 = str(card.data["sha256"])
        # what P(live) depends on: the network and the head over it (a new head on the same
        # .tflite scores differently, so an installation's recorded scores no longer count)
        self.scores_id = (self.model_sha256 if "head" not in card.data else hashlib.sha256(
            (self.model_sha256 + json.dumps(card.data["head"], sort_keys=True)).encode()).hexdigest())
        self.n_logits = 3 * len(self.scales)
        self.n_features = int(card.data.get("outputs", {}).get("features", 0))
        # a "head" that is present but empty or null is a damaged card, not "no head" (the
        # card's threshold is for the head's scores, not for the members' mean)
        self.head = LinearHead(card.data["head"], len(self.scales), self.n_features) if "head" in card.data else None
        size = int(np.prod(self.model.outputs[0]["shape"]))
        if size != self.n_features + self.n_logits:
            raise FacelatchError(f"{card.path.name}: the model gives {size} values, the card says "
                                 f"{self.n_features} features + {self.n_logits} logits")

    def patch(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        return stacked_patches(rgb, face.box, self.size, self.scales)

    def score_patch(self, patch: np.ndarray) -> float:
        out = self.model.run(self.model.pixels(patch))[0].reshape(-1)
        logits = out[-self.n_logits:]
        return self.head(out[:-self.n_logits], logits) if self.head is not None else float(live_probability(logits))

    def score(self, rgb: np.ndarray, face: Face) -> float:
        return self.score_patch(self.patch(rgb, face))

    def is_live(self, score: float) -> bool:
        return bool(score >= self.threshold)
