"""``facelatch run``: the door loop.  It only wires the stages:

    camera -> pipeline (detect, align, embed) -> identifier -> policy -> actuator
                                                                  \\-> audit log, systemd, MQTT

Fail-secure: an exception anywhere while judging a frame makes that frame a
"no match"; nothing but a policy "unlock" ever drives the actuator.
Remote commands (MQTT, edge.mqtt) are carried out and audited here, between frames.
SIGTERM/SIGINT: clean exit (a running unlock command is ended); SIGHUP: reload
config and the household (a bad new config is logged and the running one kept).

Order for every decision: the policy's counter changes in memory, then the audit
line (journal, then file), then the counter file, then the actuator (in a worker,
so the watchdog keeps being fed).  A full or read-only state directory is logged and
retried; the door keeps judging with the counter in memory.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from pathlib import Path

from . import calibration
from . import config as config_mod
from . import reasons
from .actuators import Actuation, make_actuator
from .audit import AuditLog
from .camera import make_source
from .decision import household_fmr
from .errors import FacelatchError
from .gallery import check_gallery_against_card, load_gallery
from .commands import shown
from .mqtt import REMOTE_PERSON, make_bridge
from .pipeline import FacePipeline
from .secondlook import SecondLook
from .policy import DoorPolicy, FrameResult
from .secrets import find_key_file, read_key
from .state import PauseStore, StateStore
from .systemd import Notifier, watchdog_interval
from .temporal import FrameNovelty, eye_aspect_ratio

log = logging.getLogger("facelatch")


def _tell(call, *args) -> None:
    """Report to MQTT; a reporting fault is logged and never stops the door."""
    try:
        call(*args)
    except Exception:
        log.exception("could not report to MQTT")


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("facelatch")
    except Exception:  # not installed as a distribution
        return "0"


def _boxes(found) -> list[tuple]:
    return [tuple(float(v) for v in r.face.box) for r in found]


class Door:
    """Everything built from one config; rebuilt on SIGHUP."""

    def __init__(self, cfg: config_mod.Config, pipeline: FacePipeline | None = None, actuator=None,
                 migrate: bool = True):
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
        self.liveness_origin = calibration.apply(self.pipeline.liveness, cfg)  # config, camera or card
        key_file = find_key_file(cfg.template.key_file)
        key = read_key(key_file) if key_file else None
        gallery_path = cfg.state_path(cfg.template.path)
        self.gallery = load_gallery(gallery_path, self.pipeline.model_sha256, key, migrate)  # replay: read only
        check_gallery_against_card(self.gallery, self.pipeline.encoder_card, gallery_path)
        self.pipeline.encoder_card.threshold(cfg.model.fmr, exact=True)  # the system FMR must be a card row
        self.identifier = self.gallery.identifier(self.pipeline.encoder_card, cfg.model.fmr)
        self.second_look = SecondLook(self.pipeline)
        self.comparison_fmr = household_fmr(cfg.model.fmr, len(self.identifier.names))
        self.store = StateStore(cfg.state_path("lockout.json"), cfg.policy.backoff_s, cfg.policy.backoff_max_s)
        self.policy = DoorPolicy(cfg.policy, self.store.load(), self.store.remember, self.gallery.admits,
                                 require_blink=cfg.liveness.require_blink)
        self.actuator = actuator or make_actuator(cfg.actuator)
        self.actuation = Actuation(self.actuator)
        self.insecure = config_mod.insecure_settings(cfg)
        self.novelty = FrameNovelty()
        self.refused = None  # the Quality of the last frame's face when it was too poor to judge
        self.pause = PauseStore(cfg.state_path("pause.json"))
        self.audit = AuditLog(cfg.state_dir, cfg.audit.max_bytes, cfg.audit.backups, cfg.audit.save_snapshots,
                              cfg.audit.snapshot_max_count, cfg.audit.snapshot_max_age_days)

    def judge(self, frame) -> FrameResult:
        """Faces and who the face that counts is; any error -> no faces judged as a
        match.  Only a face that can count for an attempt (``DoorPolicy.judged``: the
        largest big enough) is examined (landmarks, quality, liveness, embedding): none
        during a backoff or a cooldown, nor a face too small, nor a crowd."""
        try:
            found = self.pipeline.analyze(frame.rgb, embed="none")
            boxes = _boxes(found)
            self.refused = None
            i = self.policy.judged(frame.t, frame.wall, boxes)
            if i is None:
                return FrameResult(frame.t, boxes)
            face = self.pipeline.examine(frame.rgb, found[i], look="first", skip_poor=True)
            if face.quality is not None and not face.quality.ok:  # no decision: not a face to judge
                self.refused = face.quality
                return FrameResult(frame.t, boxes if len(boxes) > 1 else [],
                                   why=reasons.poor_quality(face.quality.reason), face_px=face.face.size)
            m = self.second_look.identify(face, self.identifier)
            score = face.live_score
            live = None if score is None else self.pipeline.liveness.is_live(score)
            fresh = self.novelty.fresh(face.live_patch if face.live_patch is not None else face.chip)
            why = reasons.frame(m, score, None if score is None else self.pipeline.liveness.threshold)
            return FrameResult(frame.t, boxes, m.is_match, m.distance, live, score, fresh,
                               eye_aspect_ratio(face.landmarks) if face.landmarks is not None else None, m.person,
                               why, m.nearest)
        except Exception:  # fail secure, keep running
            log.exception("error while judging frame %d; treated as no match", frame.index)
            return FrameResult(frame.t, [], False, None, why=reasons.JUDGING_FAILED)

    def audit_decision(self, d, frame_rgb, bridge) -> dict:
        """Audit one policy decision; an unlock is on record (and the counter saved)
        before the door is driven."""
        record = {"decision": d.kind, "reason": d.reason, "cause": d.cause, "person": d.person,
                  "best_distance": d.best_distance,
                  "threshold": self.identifier.threshold, "fmr": self.identifier.fmr,
                  "comparison_fmr": self.comparison_fmr, "people": len(self.identifier.names), "frames": d.frames,
                  "matching_frames": d.matches, "spoof_frames": d.spoof_frames, "claimed_person": d.claimed,
                  "face_px": d.face_px,
                  "live_score": d.live_score, "failed_attempts": d.failed_attempts,
                  "backoff_until": d.backoff_until, "model_sha256": self.pipeline.model_sha256,
                  "insecure": bool(self.insecure)}
        start = d.kind == "unlock" and self._may_open(record)
        self.audit.write(record, frame_rgb)  # 1. on record
        self.store.flush()  # 2. counter on disk (kept in memory and retried if that fails)
        if start:
            self.open(bridge, record)  # 3. open, off the frame loop
        _tell(bridge.decision, record)
        return record

    def _may_open(self, record: dict) -> bool:
        record["actuator"] = getattr(self.actuator, "name", "?")
        if self.actuation.busy:
            record["actuator_error"] = "busy: the previous unlock is still running"
            return False
        return True

    def open(self, bridge, record: dict) -> None:
        """Drive the actuator in its worker; the outcome is audited as an "actuator" line."""
        _tell(bridge.door, self.cfg.actuator.pulse_s)
        self.actuation.start({"person": record.get("person")})

    def remote(self, cmd, bridge) -> dict:
        """Carry out (or refuse) one remote command; audited like a face decision.  A
        command that waited longer than ``mqtt.command_ttl_s`` (the loop was held by a
        camera that was down) is refused: nobody is asking any more."""
        age = time.monotonic() - cmd.received
        if not cmd.refused and cmd.received and age > self.cfg.mqtt.command_ttl_s:
            cmd = dataclasses.replace(cmd, refused=f"expired: received {age:.0f} s ago (mqtt.command_ttl_s = "
                                                   f"{self.cfg.mqtt.command_ttl_s:g})")
        record = {"decision": "remote_" + ("refused" if cmd.refused else cmd.target), "source": "mqtt",
                  "command": shown(f"{cmd.target} {cmd.action}", 40), "reason": cmd.refused or "accepted",
                  "insecure": bool(self.insecure)}
        if cmd.suppressed:
            record["suppressed"] = cmd.suppressed  # refused commands before this one, not audited one by one
        start = False
        if not cmd.refused and cmd.target == "lock" and cmd.action in ("OPEN", "UNLOCK"):
            record["decision"], record["person"] = "unlock", REMOTE_PERSON
            start = self._may_open(record)
        self.audit.write(record)
        if start:
            self.open(bridge, record)
        if cmd.target == "lock":
            _tell(bridge.decision, record)
        return record

    def audit_actuator_results(self) -> None:
        """One "actuator" line per finished unlock that drove something (the log-only
        actuator drives nothing: its unlock line says all)."""
        for r in self.actuation.results():
            failed = r.get("error") or r.get("actuator_error") or r.get("exit_code") not in (0, None)
            if r.get("actuator") == "log" and not failed:
                continue
            self.audit.write({"decision": "actuator", "reason": "unlock failed" if failed else "unlock done", **r,
                              "insecure": bool(self.insecure)})

    def close(self, cancel: bool = True) -> None:
        """Release the actuator; a running unlock is ended (``cancel``) or awaited."""
        if cancel:
            self.actuation.stop()
        else:
            self.actuation.wait(getattr(self.actuator, "timeout_s", 5.0) + 1.0)
        self.audit_actuator_results()
        self.store.flush()
        self.actuator.close()


def shown_box(result: FrameResult, policy: DoorPolicy):
    """The face a frame's line is about: the one that counts, else the largest."""
    sized = [b for b in result.boxes if policy._big_enough(b)]
    return max(sized or result.boxes, key=lambda b: b[2] * b[3], default=None)


def frame_line(result: FrameResult, index: int, policy: DoorPolicy, decided=()) -> str:
    """The readable line of one judged frame (``facelatch run -v``, ``facelatch replay``)."""
    box = shown_box(result, policy)
    who = ("" if result.distance is None else
           f"{result.person or result.nearest or '?'} {result.distance:.2f}" + ("" if result.person else " (no)"))
    px = result.face_px if box is None else max(box[2], box[3])
    return reasons.frame_line(result.t, index, px, result.live_score, who,
                              policy.note, decided)


def warn_insecure(door: Door) -> None:
    for reason in door.insecure:
        log.warning("INSECURE (allowed by [security] allow_insecure): %s", reason)


def bridge_for(cfg: config_mod.Config, paused: bool = False):
    """The MQTT bridge for ``cfg``, saying from its first message whether face unlock is paused."""
    return make_bridge(cfg.mqtt, version(), cfg.state_dir, cfg.security.allow_insecure, paused)


def reload_parts(cfg, door: Door, bridge, camera, new_cfg, camera_for, paused: bool = False):
    """The parts for ``new_cfg``, or an exception with the running ones untouched.

    Transactional: every new part (MQTT bridge, door, actuator) is built before any
    running one is replaced; only the actuator must free its pin first (a GPIO pin
    cannot be claimed twice), so it is swapped last and the old one is reclaimed if
    the new one cannot be made.  ``paused``: the running door's pause, as the loop holds
    it (the file may be gone: a damaged one is kept aside and the door stays paused)."""
    new_bridge = bridge_for(new_cfg, paused) if (new_cfg.mqtt, new_cfg.state_dir, new_cfg.security) != \
        (cfg.mqtt, cfg.state_dir, cfg.security) else None
    try:
        same_models = new_cfg.model == cfg.model and new_cfg.liveness == cfg.liveness
        new_door = Door(new_cfg, door.pipeline if same_models else None, door.actuator)  # the old actuator for now
        new_door.actuation = door.actuation
        if new_cfg.actuator != cfg.actuator:
            door.actuation.stop()
            door.audit_actuator_results()
            door.actuator.close()  # free the GPIO pin before the new actuator claims one
            try:
                actuator = make_actuator(new_cfg.actuator)
            except Exception:
                door.actuator = make_actuator(cfg.actuator)  # reclaim it: the door keeps working as before
                door.actuation = Actuation(door.actuator)
                raise
            new_door.actuator, new_door.actuation = actuator, Actuation(actuator)
    except BaseException:
        if new_bridge is not None:
            new_bridge.close()
            bridge.announce()  # the new bridge's close said offline on the same topics
        raise
    new_door.policy.state = door.policy.state  # the counter in memory is the truth
    if door.store.pending is not None:
        new_door.store.remember(door.store.pending)
    if new_bridge is not None:
        bridge.close()
        new_bridge.announce()  # the old bridge's close said offline on the same topics
        bridge = new_bridge
    if (new_cfg.camera, new_cfg.security) != (cfg.camera, cfg.security):
        camera.close()
        camera = camera_for(new_cfg)
    return new_cfg, new_door, bridge, camera


def run(config_path: str | None, stop: threading.Event | None = None, notifier: Notifier | None = None,
        max_frames: int | None = None, on_frame=None) -> int:
    """The daemon loop.  Returns the exit status.  ``on_frame(count)`` (benchmarks)
    is called after every frame."""
    stop = stop or threading.Event()
    reload = threading.Event()
    notifier = notifier or Notifier()
    load = (lambda: config_mod.load(config_path, files=True)) if config_path else config_mod.Config
    cfg = load()
    door = Door(cfg)
    verbose = log.isEnabledFor(logging.DEBUG)
    paused = door.pause.load()
    try:
        bridge = bridge_for(cfg, paused)
    except FacelatchError:
        door.close()
        raise
    if paused:
        log.warning("face unlock is paused (remote pause switch, kept across restarts)")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: reload.set())

    def heartbeat(status: str) -> None:  # while the camera is being retried
        notifier.watchdog()
        notifier.status(status)
        bridge.camera(False)

    def camera_for(c: config_mod.Config):
        return make_source(c.camera, stop, heartbeat, allow_virtual=c.security.allow_insecure)

    camera = camera_for(cfg)
    warn_insecure(door)
    live = door.pipeline.liveness
    log.info("facelatch running: encoder %s, %d people, FMR %g (per comparison %g, threshold %.4f), liveness %s, "
             "camera %s %s, actuator %s, MQTT %s", door.pipeline.encoder_card.data["name"],
             len(door.identifier.names), cfg.model.fmr, door.comparison_fmr, door.identifier.threshold,
             f"on (P(live) >= {live.threshold:.3f}, {door.liveness_origin})" if live else "OFF", cfg.camera.source, cfg.camera.device,
             cfg.actuator.kind, f"{cfg.mqtt.host}:{cfg.mqtt.port}" if cfg.mqtt.enabled else "off")
    notifier.ready(f"watching ({cfg.camera.source} {cfg.camera.device})")
    wd = watchdog_interval()
    last_wd = 0.0
    frames = 0
    status = 0
    refusing = False  # the previous frame's face was too poor to judge
    try:
        while not stop.is_set():
            if reload.is_set():
                reload.clear()
                notifier.reloading()
                running = door.pipeline.liveness  # shared with the new Door when the models are the same
                running_threshold = running.threshold if running is not None else None
                reloaded = False
                try:
                    cfg, door, bridge, camera = reload_parts(cfg, door, bridge, camera, load(),
                                                             camera_for, paused)
                    reloaded = True
                    log.info("reloaded configuration and household (%d people)", len(door.identifier.names))
                    warn_insecure(door)
                except FacelatchError as e:
                    log.error("reload failed, keeping the running configuration: %s", e)
                except Exception as e:  # never let a reload take the door down
                    log.exception("reload failed (%s), keeping the running configuration", e.__class__.__name__)
                if not reloaded and running is not None:  # the new Door set the shared model's threshold
                    running.threshold = running_threshold  # (its calibration) before it failed: undo that
                notifier.ready("reloaded")
            frame = camera.read()
            now = time.monotonic()
            if wd is None or now - last_wd >= wd:
                notifier.watchdog()
                last_wd = now
            for cmd in bridge.commands():
                rec = door.remote(cmd, bridge)
                if cmd.target == "pause" and rec["reason"] == "accepted":
                    paused = cmd.action == "ON"
                    door.pause.save(paused)
                    bridge.paused(paused)
                notifier.status(f"last remote command: {rec['command']} ({rec['reason']}) at {time.strftime('%H:%M:%S')}")
            if frame is None:
                if not stop.is_set() and camera.ended_in_error:
                    log.error("camera source ended: %s", camera.ended_in_error)
                    status = 1
                elif not stop.is_set():
                    log.info("camera source ended")
                break
            frames += 1
            bridge.camera(True)
            result = door.judge(frame) if not paused else None
            if result is not None and door.refused is not None and not refusing:  # once per run of poor frames
                door.audit.write({"decision": "no_decision", "reason": reasons.poor_quality(door.refused.reason).text,
                                  "cause": "quality",
                                  "quality": door.refused.measures, "model_sha256": door.pipeline.model_sha256,
                                  "insecure": bool(door.insecure)},
                                 frame.rgb)
            refusing = result is not None and door.refused is not None
            decided = door.policy.observe(result, frame.wall) if result is not None else []
            if verbose and result is not None and (result.boxes or result.why or decided):
                log.debug("%s", frame_line(result, frame.index, door.policy, decided))
            for d in decided:
                door.audit_decision(d, frame.rgb, bridge)
                notifier.status(f"last decision: {d.kind} ({d.reason}) at {time.strftime('%H:%M:%S')}")
            door.store.flush()
            door.audit_actuator_results()
            if on_frame is not None:
                on_frame(frames)
            if max_frames is not None and frames >= max_frames:
                break
    finally:
        notifier.stopping()
        camera.close()
        door.close(cancel=stop.is_set())
        bridge.close()
    log.info("stopped after %d frames", frames)
    return status
