"""``facelatch run``: the door loop.  It only wires the stages:

    camera -> pipeline (detect, align, embed) -> matcher -> policy -> actuator
                                                              \\-> audit log, systemd

Fail-secure: an exception anywhere while judging a frame makes that frame a
"no match"; nothing but a policy "unlock" ever drives the actuator.
SIGTERM/SIGINT: clean exit; SIGHUP: reload config and template.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from . import config as config_mod
from .actuators import make_actuator
from .audit import AuditLog
from .camera import make_source
from .decision import Matcher
from .errors import FacelatchError
from .pipeline import FacePipeline
from .policy import DoorPolicy, FrameResult
from .secrets import find_key_file, read_key
from .state import StateStore
from .systemd import Notifier, watchdog_interval
from .template import load_template
from .temporal import FrameNovelty, eye_aspect_ratio

log = logging.getLogger("facelatch")


class Door:
    """Everything built from one config; rebuilt on SIGHUP."""

    def __init__(self, cfg: config_mod.Config, pipeline: FacePipeline | None = None, actuator=None):
        self.cfg = cfg
        try:
            Path(cfg.state_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FacelatchError(f"cannot create the state directory {cfg.state_dir}: {e.strerror}") from None
        models = Path(cfg.model.models_dir) if cfg.model.models_dir else None
        live = cfg.liveness
        self.pipeline = pipeline or FacePipeline(cfg.model.encoder, cfg.model.threads, models,
                                                 live.model if live.enabled else None,
                                                 live.threshold if live.threshold >= 0 else None,
                                                 cfg.model.full_range_fallback)
        key_file = find_key_file(cfg.template.key_file)
        key = read_key(key_file) if key_file else None
        self.template = load_template(cfg.state_path(cfg.template.path), self.pipeline.model_sha256, key)
        card = self.pipeline.encoder_card
        self.matcher = Matcher(self.template.reference, self.template.metric, card.threshold(cfg.model.fmr), cfg.model.fmr)
        self.store = StateStore(cfg.state_path("lockout.json"), cfg.policy.backoff_s)
        self.policy = DoorPolicy(cfg.policy, self.store.load(), self.store.save, cfg.liveness.require_blink)
        self.actuator = actuator or make_actuator(cfg.actuator)
        self.novelty = FrameNovelty()
        self.audit = AuditLog(cfg.state_dir, cfg.audit.max_bytes, cfg.audit.backups, cfg.audit.save_snapshots,
                              cfg.audit.snapshot_max_count, cfg.audit.snapshot_max_age_days)

    def judge(self, frame) -> FrameResult:
        """Faces and the largest face's match; any error -> no faces judged as a match."""
        try:
            found = self.pipeline.analyze(frame.rgb)
            boxes = [tuple(float(v) for v in r.face.box) for r in found]
            if not found or found[0].embedding is None:
                return FrameResult(frame.t, boxes)
            face = found[0]
            m = self.matcher.compare(face.embedding)
            score = face.live_score
            live = None if score is None else self.pipeline.liveness.is_live(score)
            fresh = self.novelty.fresh(face.live_patch if face.live_patch is not None else face.chip)
            return FrameResult(frame.t, boxes, m.is_match, m.distance, live, score, fresh,
                               eye_aspect_ratio(face.landmarks) if face.landmarks is not None else None)
        except Exception:  # fail secure, keep running
            log.exception("error while judging frame %d; treated as no match", frame.index)
            return FrameResult(frame.t, [], False, None)

    def close(self) -> None:
        self.actuator.close()


def run(config_path: str | None, stop: threading.Event | None = None, notifier: Notifier | None = None,
        max_frames: int | None = None, on_frame=None) -> int:
    """The daemon loop.  Returns the exit status.  ``on_frame(count)`` (benchmarks)
    is called after every frame."""
    stop = stop or threading.Event()
    reload = threading.Event()
    notifier = notifier or Notifier()
    load = (lambda: config_mod.load(config_path)) if config_path else config_mod.Config
    cfg = load()
    door = Door(cfg)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: reload.set())

    def heartbeat(status: str) -> None:  # while the camera is being retried
        notifier.watchdog()
        notifier.status(status)

    camera = make_source(cfg.camera, stop, heartbeat)
    live = door.pipeline.liveness
    log.info("facelatch running: encoder %s, FMR %g (threshold %.4f), liveness %s, camera %s %s, actuator %s",
             door.pipeline.encoder_card.data["name"], cfg.model.fmr, door.matcher.threshold,
             f"on (P(live) >= {live.threshold:.3f})" if live else "OFF", cfg.camera.source, cfg.camera.device,
             cfg.actuator.kind)
    notifier.ready(f"watching ({cfg.camera.source} {cfg.camera.device})")
    wd = watchdog_interval()
    last_wd = 0.0
    frames = 0
    try:
        while not stop.is_set():
            if reload.is_set():
                reload.clear()
                notifier.reloading()
                try:
                    new_cfg = load()
                    same_models = new_cfg.model == cfg.model and new_cfg.liveness == cfg.liveness
                    same_actuator = new_cfg.actuator == cfg.actuator
                    if not same_actuator:  # free the GPIO pin before the new actuator claims one
                        door.close()
                    try:
                        new_door = Door(new_cfg, door.pipeline if same_models else None,
                                        door.actuator if same_actuator else None)
                    except FacelatchError:
                        if not same_actuator:
                            door.actuator = make_actuator(cfg.actuator)
                        raise
                    if new_cfg.camera != cfg.camera:
                        camera.close()
                        camera = make_source(new_cfg.camera, stop, heartbeat)
                    cfg, door = new_cfg, new_door
                    log.info("reloaded configuration and template")
                except FacelatchError as e:
                    log.error("reload failed, keeping the running configuration: %s", e)
                notifier.ready("reloaded")
            frame = camera.read()
            now = time.monotonic()
            if wd is None or now - last_wd >= wd:
                notifier.watchdog()
                last_wd = now
            if frame is None:
                if not stop.is_set():
                    log.info("camera source ended")
                break
            frames += 1
            result = door.judge(frame)
            for d in door.policy.observe(result, frame.wall):
                record = {"decision": d.kind, "reason": d.reason, "best_distance": d.best_distance,
                          "threshold": door.matcher.threshold, "fmr": door.matcher.fmr, "frames": d.frames,
                          "matching_frames": d.matches, "face_px": d.face_px, "live_score": d.live_score,
                          "failed_attempts": d.failed_attempts, "backoff_until": d.backoff_until,
                          "model_sha256": door.pipeline.model_sha256}
                if d.kind == "unlock":
                    try:
                        record.update(door.actuator.unlock())
                    except Exception as e:  # the lock did not open; say so
                        log.exception("actuator failed")
                        record["actuator_error"] = str(e)
                door.audit.write(record, frame.rgb)
                notifier.status(f"last decision: {d.kind} ({d.reason}) at {time.strftime('%H:%M:%S')}")
            if on_frame is not None:
                on_frame(frames)
            if max_frames is not None and frames >= max_frames:
                break
    finally:
        notifier.stopping()
        camera.close()
        door.close()
    log.info("stopped after %d frames", frames)
    return 0
