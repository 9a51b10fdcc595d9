"""``facelatch replay PATH``: the door on a recording, driving nothing.

The installer's "why didn't it open" tool: a video file or a folder of images goes
through the real door (edge.daemon.Door: the same pipeline, identifier and
edge/policy.py, with the config's settings), but the actuator is a stand-in that
opens nothing, MQTT is off, and the lockout counter and audit log live in a temporary
folder that is deleted afterwards -- the device's own state is never read or changed.
Prints one line per judged frame (time, frame, face size, P(live), nearest person,
what became of the frame) and a summary: attempts, unlocks, denies by reason, time
to the first unlock.  ``snapshots``: the best face (smallest distance) of each
refused attempt, as a JPEG, at most ``max_snapshots``."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2

from . import calibration, reasons
from .camera import CameraError, ImageFolder, OpenCVCamera
from .errors import FacelatchError
from .fileio import write_atomic


class ReplayActuator:
    """Stands in for the door's actuator: opens nothing."""

    name = "replay"

    def unlock(self) -> dict:
        return {"actuator": "replay"}

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_recording(path: Path, fps: float | None, default_fps: float, max_mp: float):
    """A frame source for a folder of images (name order) or a video file, opened; a
    video's own frame rate is used unless ``fps`` is given."""
    if path.is_dir():
        src = ImageFolder(str(path), fps or default_fps, pace=False, max_mp=max_mp)
    elif path.is_file():
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own complaints: the error below says it
        src = OpenCVCamera(str(path), fps=fps or default_fps)
    else:
        raise FacelatchError(f"replay: {path} not found (give a video file or a folder of images)")
    try:
        src.open()
    except CameraError as e:
        raise FacelatchError(f"replay: {e}") from None
    if isinstance(src, OpenCVCamera) and not fps:
        own = src.cap.get(cv2.CAP_PROP_FPS)
        src.fps = own if 0 < own < 1000 else default_fps
    return src


def replay_config(cfg, template: Path, key_file: str, state_dir: str):
    """``cfg`` as the replay runs it: household from ``template``, state in
    ``state_dir``, no MQTT, no snapshots of its own."""
    return dataclasses.replace(
        cfg, state_dir=state_dir, template=dataclasses.replace(cfg.template, path=str(template.resolve()),
                                                              key_file=key_file),
        mqtt=dataclasses.replace(cfg.mqtt, enabled=False), audit=dataclasses.replace(cfg.audit, save_snapshots=False))


class Summary:
    """Attempts, unlocks, denies by reason and the time to the first unlock."""

    def __init__(self):
        self.frames = self.judged = self.attempts = self.unlocks = 0
        self.denies: Counter = Counter()
        self.first_face = self.first_unlock = None
        self.first_person = None
        self.last_t = 0.0

    def frame(self, t: float, faces: bool) -> None:
        self.frames += 1
        self.last_t = t
        if faces:
            self.judged += 1
            if self.first_face is None:
                self.first_face = t

    def decision(self, t: float, d) -> None:
        if d.frames or d.kind == "unlock":
            self.attempts += 1
        if d.kind == "unlock":
            self.unlocks += 1
            if self.first_unlock is None:
                self.first_unlock, self.first_person = t, d.person
        else:
            self.denies[reasons.LABELS.get(d.cause, d.cause or d.kind)] += 1

    def as_dict(self) -> dict:
        return {"frames": self.frames, "seconds": round(self.last_t, 3), "frames_with_faces": self.judged,
                "attempts": self.attempts, "unlocks": self.unlocks, "denies": dict(self.denies),
                "first_face_s": self.first_face, "first_unlock_s": self.first_unlock, "first_person": self.first_person,
                "time_to_unlock_s": (None if self.first_unlock is None
                                     else round(self.first_unlock - self.first_face, 3))}

    def lines(self) -> list[str]:
        s = self.as_dict()
        out = [f"summary: {s['frames']} frames ({s['seconds']:.1f} s), {s['frames_with_faces']} with faces; "
               f"{s['attempts']} attempt(s), {s['unlocks']} unlock(s), {sum(self.denies.values())} deny(ies)"]
        if self.denies:
            out.append("  denies by reason: " + ", ".join(f"{k} x{v}" for k, v in self.denies.most_common()))
        if s["first_unlock_s"] is not None:
            out.append(f"  first unlock at {s['first_unlock_s']:.2f} s ({s['first_person'] or 'enrolled person'}), "
                       f"{s['time_to_unlock_s']:.2f} s after the first face")
        else:
            out.append("  no unlock")
        return out


class Snapshots:
    """The best face of each refused attempt, as JPEG files (bounded in count)."""

    def __init__(self, folder: Path | None, max_count: int):
        self.folder, self.max_count, self.written = folder, max_count, []
        self.best, self.best_distance = None, None
        if folder is not None:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def offer(self, rgb, box, distance) -> None:
        if self.folder is None or box is None or distance is None:
            return
        if self.best_distance is None or distance < self.best_distance:
            x, y, w, h = (int(round(v)) for v in box)
            m = int(0.2 * max(w, h))
            self.best = rgb[max(0, y - m):y + h + m, max(0, x - m):x + w + m].copy()
            self.best_distance = distance

    def attempt_over(self, t: float, d) -> None:
        if d is not None and d.kind == "deny" and self.best is not None and len(self.written) < self.max_count:
            name = f"{len(self.written) + 1:03d}-{t:07.2f}s-{d.cause or 'deny'}.jpg"
            ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(self.best, cv2.COLOR_RGB2BGR))
            if ok:
                write_atomic(self.folder / name, jpg.tobytes(), mode=0o600)
                self.written.append(name)
        self.best, self.best_distance = None, None


def replay(cfg, path: Path, template: Path, key_file: str = "", fps: float | None = None, out=print,
           as_json: bool = False, snapshots: Path | None = None, max_snapshots: int = 20,
           pipeline=None) -> dict:
    """Run the door on the recording at ``path``; print the timeline and the summary
    with ``out``; return the summary."""
    from .daemon import Door, frame_line

    src = open_recording(Path(path), fps, cfg.camera.fps, cfg.camera.max_image_mp)
    summary, snaps = Summary(), Snapshots(snapshots, max_snapshots)
    try:
        with tempfile.TemporaryDirectory(prefix="facelatch-replay-") as tmp:
            door = Door(replay_config(cfg, template, key_file, tmp), pipeline, ReplayActuator(), migrate=False)
            # the liveness threshold this installation runs with: its calibration lives in the real
            # state directory (read, never written)
            origin = calibration.apply(door.pipeline.liveness, cfg)
            wall0 = time.time()
            if not as_json:
                n = len(door.identifier.names)
                out(f"replaying {path} at {src.fps:g} frames/s: {n} {'person' if n == 1 else 'people'}, threshold "
                    f"{door.identifier.threshold:.3f}, min_face_px {cfg.policy.min_face_px:g}, k {cfg.policy.k} of "
                    f"n {cfg.policy.n}" + (f", P(live) >= {door.pipeline.liveness.threshold:.3f} ({origin})"
                                           if door.pipeline.liveness else ", liveness off"))
            try:
                while (f := src.read()) is not None:
                    f = dataclasses.replace(f, wall=wall0 + f.t)
                    result = door.judge(f)
                    i = door.policy.judged(f.t, f.wall, result.boxes)
                    decided = door.policy.observe(result, f.wall)
                    summary.frame(f.t, bool(result.boxes))
                    snaps.offer(f.rgb, result.boxes[i] if i is not None and result.boxes else None, result.distance)
                    for d in decided:
                        summary.decision(f.t, d)
                    if door.policy.attempt is None:
                        snaps.attempt_over(f.t, next((d for d in decided if d.frames), None))
                    if result.boxes or result.why or decided:
                        out(json.dumps(_frame_record(f, result, door.policy, decided)) if as_json else
                            frame_line(result, f.index, door.policy, decided))
                for d in door.policy.finish(wall0 + summary.last_t):  # an attempt still open at the end
                    summary.decision(summary.last_t, d)
                    snaps.attempt_over(summary.last_t, d)
                    out(json.dumps({"t": summary.last_t, "decisions": [_decision(d)]}) if as_json else
                        f"{'':>10}  -> {d.kind.upper()}: {d.reason}")
            except CameraError as e:
                raise FacelatchError(f"replay: {e}") from None
            finally:
                door.close()
    finally:
        src.close()
    s = summary.as_dict()
    s["snapshots"] = snaps.written
    if as_json:
        out(json.dumps({"summary": s}))
    else:
        for line in summary.lines():
            out(line)
        if snaps.written:
            out(f"  {len(snaps.written)} snapshot(s) of refused attempts in {snapshots}")
    return s


def _frame_record(f, result, policy, decided) -> dict:
    from .daemon import shown_box

    box = shown_box(result, policy)
    return {"t": round(f.t, 3), "frame": f.index, "faces": len(result.boxes),
            "face_px": None if box is None else round(max(box[2], box[3]), 1),
            "live_score": None if result.live_score is None else round(result.live_score, 4),
            "person": result.person, "nearest": result.nearest,
            "distance": None if result.distance is None else round(result.distance, 4), "note": policy.note,
            "decisions": [_decision(d) for d in decided]}


def _decision(d) -> dict:
    return {"decision": d.kind, "reason": d.reason, "cause": d.cause, "person": d.person}
