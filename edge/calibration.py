"""Per-installation liveness calibration: this camera's own live-score distribution.

The shipped threshold is fixed on many cameras at once, so it must be low enough
for the camera whose live faces score lowest; a camera whose live faces score high
leaves room that an attack can use (a phone replay that scores 0.6 passes a 0.40
threshold).  Calibration records P(live) of the installer's own live frames at
*this* camera (``facelatch liveness --camera --calibrate``; ``facelatch enroll
--camera`` adds the frames it sees) and sets the threshold for this installation:
the highest that rejects at most ``REJECT`` of the recorded live frames — never
below the shipped default, so calibration can only make the door stricter.

The file (``liveness_calibration.json`` in the state directory, written atomically,
0600) names the liveness model it was measured with (``model_sha256``: the network's
sha256, or with a head ``edge.liveness.Liveness.scores_id``, a digest of the network and
its head); a different model or head ignores it (and says so), because scores of two
models do not compare."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FacelatchError
from .fileio import write_atomic

log = logging.getLogger("facelatch")

FILE = "liveness_calibration.json"
REJECT = 0.02  # the share of this camera's live frames the installation threshold may reject
MIN_FRAMES = 100  # fewer live frames give no threshold (2 % of 100 is 2 frames)
MAX_SCORES = 5000  # the most recent live scores kept


def threshold_rejecting(scores, share: float) -> float:
    """The highest threshold that rejects at most ``share`` of these live ``scores``."""
    s = np.sort(np.asarray(scores, float))
    k = int(math.floor(share * len(s)))  # this many may fall below the threshold
    return float(s[min(k, len(s) - 1)])


def calibrated_threshold(scores, shipped: float, reject: float = REJECT) -> float:
    """The highest threshold rejecting at most ``reject`` of ``scores``, never below ``shipped``."""
    return max(float(shipped), threshold_rejecting(scores, reject))


@dataclass
class Calibration:
    model_sha256: str
    scores: list  # P(live) of live frames recorded at this camera, oldest first
    sessions: list  # {"time", "by", "frames"} per recording
    other_model: str | None = None  # the file was measured with this other model (its scores were dropped)

    def threshold(self, shipped: float) -> float | None:
        """This installation's threshold, or None while fewer than MIN_FRAMES are recorded."""
        return calibrated_threshold(self.scores, shipped) if len(self.scores) >= MIN_FRAMES else None

    def record(self, scores, by: str) -> None:
        scores = [float(s) for s in scores if math.isfinite(float(s))]  # a NaN score would make the file unreadable
        self.scores = (list(self.scores) + [round(s, 5) for s in scores])[-MAX_SCORES:]
        self.sessions.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "by": by, "frames": len(scores)})

    def save(self, state_dir, shipped: float) -> Path:
        path = Path(state_dir) / FILE
        thr = self.threshold(shipped)
        data = {"model_sha256": self.model_sha256, "reject": REJECT, "shipped_threshold": shipped,
                "threshold": None if thr is None else round(thr, 5), "frames": len(self.scores),
                "sessions": self.sessions[-50:], "scores": self.scores}
        write_atomic(path, (json.dumps(data, separators=(",", ":")) + "\n").encode(), mode=0o600)
        return path


def load(state_dir, model_sha256: str) -> Calibration:
    """The installation's calibration for this model (an empty one when there is none,
    or one for another model).  A damaged file is a one-line error, never ignored
    silently: the installer meant the door to be stricter."""
    path = Path(state_dir) / FILE
    if not path.exists():
        return Calibration(model_sha256, [], [])
    try:
        data = json.loads(path.read_bytes())
        scores = [float(s) for s in data["scores"]]
        sessions = list(data.get("sessions", []))
        sha = str(data["model_sha256"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError, OverflowError) as e:  # an integer beyond any float
        raise FacelatchError(f"liveness calibration {path} is unreadable ({e.__class__.__name__}); "
                             "remove the file, then run facelatch liveness --camera --calibrate again") from None
    if not all(0.0 <= s <= 1.0 for s in scores):
        raise FacelatchError(f"liveness calibration {path}: scores outside 0..1; remove the file, then calibrate again")
    if sha != model_sha256:
        return Calibration(model_sha256, [], [], other_model=sha)  # measured with another model: start afresh
    return Calibration(sha, scores, sessions)


def stale_reason(cal: Calibration, network_sha256: str | None = None) -> str:
    """Why ``cal`` (loaded for another model or head: ``cal.other_model``) was dropped, in words."""
    if network_sha256 is not None and cal.other_model == network_sha256:  # keyed by the network alone: an older head
        return (f"the calibration was recorded with an earlier liveness head over this network "
                f"({network_sha256[:12]}); its scores do not apply to the card's new head")
    return f"the calibration was measured with another liveness model or head ({cal.other_model[:12]})"


def installation_threshold(state_dir, model_sha256: str, shipped: float,
                           network_sha256: str | None = None) -> tuple[float, str]:
    """(threshold, where it came from) for the daemon: the calibrated one, else the card's.
    ``network_sha256``: the liveness network's own sha256 when ``model_sha256`` is a
    scores id over network and head (only to word why an older file is dropped)."""
    cal = load(state_dir, model_sha256)
    thr = cal.threshold(shipped)
    if thr is None:
        if cal.other_model:
            # the installer made this door stricter; until they calibrate again it is not: say so loudly
            log.warning("liveness calibration %s ignored: %s; the door uses the model card's default %.4f "
                        "until you run facelatch liveness --camera --calibrate again", Path(state_dir) / FILE,
                        stale_reason(cal, network_sha256), shipped)
        why = (f"{len(cal.scores)} live frames recorded, {MIN_FRAMES} needed" if cal.scores else
               f"{stale_reason(cal, network_sha256)}; calibrate again" if cal.other_model else "not calibrated")
        return shipped, f"the model card's default ({why})"
    return thr, f"calibrated on this camera ({len(cal.scores)} live frames, rejects <= {REJECT:.0%})"


def apply(liveness, cfg) -> str | None:
    """Set ``liveness.threshold`` (an edge.liveness.Liveness, or None) for this
    installation: the config's ``liveness.threshold`` when set, else the calibrated
    one, else the card's.  Returns where it came from, in words."""
    if liveness is None:
        return None
    if cfg.liveness.threshold >= 0:
        liveness.threshold = cfg.liveness.threshold
        if cfg.liveness.threshold < liveness.default_threshold:  # e.g. a value tuned for an earlier model
            log.warning("liveness.threshold = %g in the config is below this model's default %.4f: more attacks pass "
                        "than the model card was measured for", cfg.liveness.threshold, liveness.default_threshold)
            return (f"liveness.threshold in the config, BELOW the model card's default "
                    f"{liveness.default_threshold:.3f}")
        return "liveness.threshold in the config"
    liveness.threshold, origin = installation_threshold(cfg.state_dir, liveness.scores_id, liveness.default_threshold,
                                                        liveness.model_sha256)
    return origin
