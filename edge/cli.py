"""``facelatch``: enroll, people, identify, verify, compare, embed, demo — on the device, no TensorFlow."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

from .nativethreads import limit_native_threads

limit_native_threads()  # before numpy is imported (by the modules below)

from . import calibration  # noqa: E402
from .config import RANGES  # noqa: E402
from .decision import DEFAULT_FMR, distance, household_fmr  # noqa: E402
from .errors import FacelatchError  # noqa: E402
from .gallery import MIGRATED_NAME, Gallery, check_gallery_against_card, check_name, load_gallery  # noqa: E402
from .images import DEFAULT_MAX_MP, check_image, list_images  # noqa: E402
from .images import read_image as _read_image  # noqa: E402
from .pipeline import DEFAULT_ENCODER, DEFAULT_LIVENESS, FaceFinder, FacePipeline  # noqa: E402
from .template import default_template_path  # noqa: E402

MAX_THREADS = RANGES["model.threads"][1]  # as in the daemon config; 100000 crashes the interpreter
_max_mp = DEFAULT_MAX_MP  # --max-image-mp


def read_image(path):
    return _read_image(path, _max_mp)


def _images(paths):
    """(path, RGB) of each file: every header is checked before anything is decoded
    (a bad or oversized file fails before any output), then one image at a time."""
    paths = list(map(Path, paths))
    for path in paths:
        check_image(path, _max_mp)
    for path in paths:
        yield path, read_image(path)


def _pipeline(args, liveness: bool = False) -> FacePipeline:
    return FacePipeline(args.encoder, threads=args.threads,
                        liveness=DEFAULT_LIVENESS if liveness and not args.no_liveness else None)


def _one_face(pipe: FacePipeline, path: Path):
    """The single face of an enrollment image, good enough to be judged (the encoder
    card's quality limits), or a FacelatchError naming the file and the failed measure."""
    found = pipe.analyze(read_image(path))
    if not found:
        raise FacelatchError(f"{path}: no face found")
    if len(found) > 1:
        raise FacelatchError(f"{path}: {len(found)} faces found; an enrollment image must show exactly one")
    q = pipe.enrolment_quality(found[0])
    if q is not None and not q.ok:
        raise FacelatchError(f"{path}: face too poor to enroll ({q.reason}{_enrol_hint(q)}); nothing written")
    return found[0]


_ENROL_HINTS = {  # the measures on which enrolment is stricter than the door (the card's quality.enrol_limits)
    "light_asymmetry": "light the face evenly for enrolment, no lamp or window to one side",
    "chip_coverage": "for enrolment the whole face, with room around it, must be inside the picture "
                     "(step back from the camera, or use a photo not cropped close to the face)",
}


def _enrol_hint(q) -> str:
    """What to change for an enrolment the gate refused on a measure stricter than the door's."""
    hint = _ENROL_HINTS.get(q.reason.split(" ", 1)[0])
    return f": {hint}" if hint else ""


def _config(args):
    """The daemon config named by --config (None without it)."""
    if not getattr(args, "config", None):
        return None
    from . import config

    return config.load(args.config)


def _key_file(args, cfg=None) -> str:
    """--key-file, else the config's template.key_file ("" : none given)."""
    cfg = cfg if cfg is not None else _config(args)
    return getattr(args, "key_file", None) or (cfg.template.key_file if cfg is not None else "")


def _key(args) -> bytes | None:
    from .secrets import find_key_file, read_key

    key_file = find_key_file(_key_file(args))
    return read_key(key_file) if key_file else None


def _template_path(args) -> Path:
    if getattr(args, "template", None):
        return Path(args.template)
    cfg = _config(args)
    return cfg.state_path(cfg.template.path) if cfg is not None else default_template_path()


def _camera_embeddings(args, pipe: FacePipeline) -> tuple[list, list[str]]:
    """Capture ``--frames`` good frames: one face, at least the policy's minimum size,
    sharp enough (variance of the chip's Laplacian), shown as progress."""
    import cv2

    from . import config
    from .camera import make_source

    cfg = config.load(args.config) if args.config else config.Config()
    stop = threading.Event()
    cam = make_source(cfg.camera, stop, allow_virtual=cfg.security.allow_insecure)
    got, deadline, last_note = [], time.monotonic() + args.timeout, ""
    live_scores = []  # P(live) of every frame with one face big enough: this camera's live distribution
    try:
        while len(got) < args.frames and time.monotonic() < deadline:
            frame = cam.read()
            if frame is None:
                break
            found = pipe.analyze(frame.rgb)
            sharp = (cv2.Laplacian(cv2.cvtColor(found[0].chip, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                     if len(found) == 1 else 0.0)
            q = pipe.enrolment_quality(found[0]) if len(found) == 1 else None
            poor = q if q is not None and not q.ok else None
            if len(found) == 1 and found[0].live_score is not None and found[0].face.size >= cfg.policy.min_face_px:
                live_scores.append(float(found[0].live_score))
            note = ("no face" if not found else f"{len(found)} faces: only you in view, please" if len(found) > 1 else
                    "come closer" if found[0].face.size < cfg.policy.min_face_px else
                    "hold still (blurred)" if sharp < args.min_sharpness else
                    f"face quality: {poor.reason}{_enrol_hint(poor)}" if poor else "")
            if not note:
                got.append(found[0].embedding)
                print(f"\rcaptured {len(got)}/{args.frames}" + " " * 30, end="", file=sys.stderr, flush=True)
            elif note != last_note:
                print(f"\rcaptured {len(got)}/{args.frames} — {note}" + " " * 10, end="", file=sys.stderr, flush=True)
            last_note = note
    finally:
        cam.close()
        print(file=sys.stderr)
    if len(got) < args.frames:
        raise FacelatchError(f"captured only {len(got)} of {args.frames} good frames in {args.timeout:.0f} s; nothing written")
    return got, [f"camera frame {i + 1}" for i in range(len(got))], (cfg, live_scores)


def _gallery(args, pipe: FacePipeline | None = None, missing_ok: bool = False) -> tuple[Gallery, Path, bytes | None]:
    """The household file named by the options (a new, empty one if ``missing_ok`` and absent)."""
    path, key = _template_path(args), _key(args)
    if missing_ok and not path.exists():
        return Gallery(pipe.model_sha256, pipe.encoder_card.data["embedding"]["metric"]), path, key
    g = load_gallery(path, pipe.model_sha256 if pipe else None, key)
    if pipe is not None:
        check_gallery_against_card(g, pipe.encoder_card, path)
    return g, path, key


def _enroll_name(args, gallery: Gallery, path: Path) -> str:
    """--name, checked; without it only the first person of a household (named
    ``user``), never silently a second one."""
    if args.name is not None:
        return check_name(args.name)
    if not gallery.people or list(gallery.people) == [MIGRATED_NAME]:  # the first person, or more of them
        return MIGRATED_NAME
    raise FacelatchError(f"{path} already holds {', '.join(gallery.names)}: give --name NAME for this person")


def _household_fmr(args) -> float:
    cfg = _config(args)
    return cfg.model.fmr if cfg is not None else DEFAULT_FMR


def cmd_enroll(args) -> int:
    if not args.images and not args.camera:
        raise FacelatchError("give enrollment images, or --camera")
    if args.name is not None:
        check_name(args.name)
    pipe = _pipeline(args, liveness=args.camera)  # at the camera its live frames also calibrate liveness
    gallery, path, key = _gallery(args, pipe, missing_ok=True)
    name = _enroll_name(args, gallery, path)
    if name in gallery.people and not (args.force or args.add):
        raise FacelatchError(f"{name} is already enrolled in {path}; --force replaces their embeddings, "
                             "--add adds to them")
    seen_live = None
    if args.camera:
        embeddings, sources, seen_live = _camera_embeddings(args, pipe)
    else:  # every image is checked before anything is written
        embeddings = [_one_face(pipe, Path(p)).embedding for p in args.images]
        sources = [Path(p).name for p in args.images]
    import numpy as np

    clash = gallery.already_enrolled_as(name, embeddings, pipe.encoder_card, _household_fmr(args))
    if clash and not args.force:
        i, other, d, thr = clash[0]
        raise FacelatchError(f"{sources[i]}: this face already matches {other} (distance {d:.3f} <= {thr:.3f}, the "
                             f"household's threshold): is it {other}?  Enrolled as {name} too, the door would refuse "
                             f"both as ambiguous; --force enrolls anyway; nothing written")
    person = gallery.add(name, np.stack(embeddings), sources, replace=args.force, extend=args.add)
    gallery.save(path, key)
    print(f"enrolled {name} from {len(embeddings)} {'frame' if args.camera else 'image'}(s) "
          f"({len(person.template.embeddings)} embeddings) into {path}{' (encrypted)' if key else ''}; "
          f"{len(gallery.people)} {'person' if len(gallery.people) == 1 else 'people'} enrolled")
    if seen_live and seen_live[1] and pipe.liveness is not None and seen_live[0].liveness.threshold < 0:
        print(_calibrate(seen_live[0], pipe.liveness, seen_live[1], f"facelatch enroll --camera ({args.name})")
              ["calibration"])
    return 0


def cmd_people(args) -> int:
    gallery, path, _ = _gallery(args)
    rows = [{"name": p.name, "embeddings": len(p.template.embeddings), "enrolled": p.template.created,
             "enabled": p.enabled, "schedule": p.schedule or "always", "model_sha256": gallery.model_sha256}
            for p in gallery.people.values()]
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{len(rows)} {'person' if len(rows) == 1 else 'people'} in {path} (model {gallery.model_sha256[:12]}…)")
    for r in rows:
        print(f"  {r['name']:<16} {r['embeddings']:>3} embeddings  enrolled {r['enrolled']:<25} "
              f"{'enabled ' if r['enabled'] else 'DISABLED'}  {r['schedule']}")
    return 0


def _edit(args, change) -> int:
    gallery, path, key = _gallery(args)
    message = change(gallery)
    gallery.save(path, key)
    print(message)
    return 0


def cmd_remove(args) -> int:
    def change(g):
        g.remove(args.name)
        return f"removed {args.name}; {len(g.people)} left in {_template_path(args)}"
    return _edit(args, change)


def cmd_enable(args) -> int:
    def change(g):
        g.person(args.name).enabled = args.command == "enable"
        return f"{args.name} {'enabled' if args.command == 'enable' else 'disabled: the door will not open for them'}"
    return _edit(args, change)


def cmd_schedule(args) -> int:
    from .schedule import Schedule

    spec = Schedule.parse(args.schedule).text

    def change(g):
        g.person(args.name).schedule = spec
        return f"{args.name}: {'door opens only ' + spec if spec else 'no schedule (always)'}"
    return _edit(args, change)


def cmd_identify(args) -> int:
    fmr = _fmr(args)
    pipe = _pipeline(args)
    gallery, _, _ = _gallery(args, pipe)
    pipe.encoder_card.threshold(fmr, exact=True)  # the FMR must be a card row
    ident = gallery.identifier(pipe.encoder_card, fmr)
    from . import reasons
    from .policy import DoorPolicy, PolicyConfig

    cfg = _config(args)
    door = DoorPolicy(cfg.policy if cfg is not None else PolicyConfig())  # the door's size and crowd rules
    for path, rgb in _images(args.images):
        found = pipe.analyze(rgb)
        rec = {"path": str(path), "faces": len(found), "person": None, "nearest": None, "distance": None,
               "runner_up": None, "ambiguous": False, "threshold": round(ident.threshold, 4), "fmr": fmr,
               "comparison_fmr": household_fmr(fmr, len(ident.names))}
        if found:
            m = ident.identify(found[0].embedding)
            rec.update(person=m.person, nearest=m.nearest, distance=round(m.distance, 4), ambiguous=m.ambiguous,
                       runner_up=None if m.runner_up is None else round(m.runner_up, 4))
            unjudged = door.judging(0.0, 0.0, [r.face.box for r in found])[1]  # a crowd, a face too small
            if unjudged:
                rec["door"] = unjudged.text
            elif m.person:
                rec["door"] = gallery.admits(m.person, time.time()) or "would open"  # disabled, schedule
            else:
                rec["door"] = reasons.identity(m).text  # unknown or ambiguous
        if args.json:
            print(json.dumps(rec))
            continue
        answer = ("no face" if not found else rec["person"] or ("ambiguous" if rec["ambiguous"] else "unknown"))
        detail = "" if not found else (f"  distance {rec['distance']:.3f} to {rec['nearest']} (threshold "
                                       f"{rec['threshold']:.3f}, {len(ident.names)} people at FMR {fmr:g})")
        if rec["ambiguous"]:
            detail += f"; also within it: runner-up at {rec['runner_up']:.3f} — refused"
        if rec.get("door") and rec["door"] != "would open":
            detail += (f"; the door would ignore it: {rec['door']}" if "min_face_px" in rec["door"] else
                       f"; the door would deny: {rec['door']}")
        print(f"{answer:<12} {path}{detail}")
    return 0


def cmd_replay(args) -> int:
    import dataclasses

    from . import config
    from .replay import replay

    cfg = _config(args)
    if cfg is None:  # the defaults, with the global --encoder and --threads
        cfg = config.Config()
        cfg.model = dataclasses.replace(cfg.model, encoder=args.encoder, threads=args.threads)
    if args.fps is not None and not 0.1 <= args.fps <= 240:
        raise FacelatchError(f"--fps must be between 0.1 and 240, got {args.fps}")
    if args.max_snapshots < 0:
        raise FacelatchError(f"--max-snapshots must be at least 0, got {args.max_snapshots}")
    replay(cfg, Path(args.path), _template_path(args), _key_file(args, cfg), args.fps, as_json=args.json,
           snapshots=Path(args.snapshots) if args.snapshots else None, max_snapshots=args.max_snapshots)
    return 0


def cmd_keygen(args) -> int:
    from .secrets import generate_key

    generate_key(args.path)
    print(f"wrote a new 256-bit template key to {args.path} (mode 0600)")
    return 0


def cmd_encrypt(args) -> int:
    from . import secrets
    from .fileio import read_trusted_file

    path = _template_path(args)
    key_file = secrets.find_key_file(_key_file(args))
    if key_file is None:
        raise FacelatchError("give --key-file KEY (make one with facelatch keygen), or a config with "
                             "template.key_file")
    key = secrets.read_key(key_file)
    raw = read_trusted_file(path, "gallery", f"no household file at {path}")
    if secrets.is_encrypted(raw):
        load_gallery(path, None, key, migrate=False)  # the key must open it; a wrong one is a clear error
        print(f"{path} is already encrypted (with this key); nothing changed")
        return 0
    gallery = load_gallery(path, None, None, migrate=False)
    gallery.save(path, key)
    load_gallery(path, None, key, migrate=False)  # read back before saying so
    print(f"encrypted {path} with {key_file} ({len(gallery.people)} "
          f"{'person' if len(gallery.people) == 1 else 'people'}); the daemon needs the key now "
          "(template.key_file or the systemd credential template-key)")
    return 0


def cmd_config_example(args) -> int:
    print((resources.files("edge") / "facelatch.example.toml").read_text(), end="")
    return 0


def cmd_run(args) -> int:
    import logging

    from .daemon import run

    if not args.config:
        raise FacelatchError("facelatch run needs --config PATH: `facelatch config-example > door.toml` writes one "
                             "to edit (state_dir, camera, actuator); nothing was created")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.verbose:  # one line per judged frame, with its reason (edge.daemon.frame_line)
        logging.getLogger("facelatch").setLevel(logging.DEBUG)
    return run(args.config)


def cmd_remote(args) -> int:
    from . import config as config_mod
    from .remote import send

    print(send(config_mod.load(args.config).mqtt, args.command, args.timeout))
    return 0


def _fmr(args) -> float:
    if not (0 < args.fmr < 1):
        raise FacelatchError(f"--fmr must be between 0 and 1, got {args.fmr}")
    return args.fmr


def cmd_verify(args) -> int:
    fmr = _fmr(args)
    pipe = _pipeline(args, liveness=True)
    gallery, path, _ = _gallery(args, pipe)
    if not args.name and len(gallery.people) != 1:
        raise FacelatchError(f"{path} holds {len(gallery.people)} people: give --name (verify checks one person), "
                             "or use facelatch identify")
    pipe.encoder_card.threshold(fmr, exact=True)  # the FMR must be a card row
    matcher = gallery.identifier_of([args.name or gallery.names[0]], pipe.encoder_card, fmr)
    for path, rgb in _images(args.images):
        found = pipe.analyze(rgb)
        if not found:
            rec = {"path": str(path), "faces": 0, "decision": "no face", "distance": None,
                   "threshold": matcher.threshold, "fmr": fmr}
        elif found[0].quality is not None and not found[0].quality.ok:
            q = found[0].quality
            rec = {"path": str(path), "faces": len(found), "decision": "no decision", "distance": None,
                   "threshold": matcher.threshold, "fmr": fmr, "quality": {"reason": q.reason, **q.measures}}
        else:
            m = matcher.identify(found[0].embedding)
            rec = {"path": str(path), "faces": len(found), "decision": "match" if m.is_match else "no match",
                   "distance": round(m.distance, 4), "threshold": round(m.threshold, 4), "fmr": fmr}
            if pipe.liveness is not None:
                score = found[0].live_score
                rec.update(live_score=round(score, 4), live=pipe.liveness.is_live(score),
                           live_threshold=round(pipe.liveness.threshold, 4))
        if args.json:
            print(json.dumps(rec))
        else:
            dist = "" if rec["distance"] is None else f"  distance {rec['distance']:.3f} (threshold {rec['threshold']:.3f} at FMR {fmr:g})"
            live = (f"  live {rec['live_score']:.2f} ({'live' if rec['live'] else 'NOT live'})"
                    if "live_score" in rec else "")
            extra = f"  [{rec['faces']} faces; largest used]" if rec["faces"] > 1 else ""
            extra += f"  (face quality: {rec['quality']['reason']})" if "quality" in rec else ""
            print(f"{rec['decision']:<9} {path}{dist}{live}{extra}")
    return 0


def cmd_compare(args) -> int:
    fmr = _fmr(args)
    pipe = _pipeline(args)
    a, b = (read_image(p) for p in (args.image_a, args.image_b))
    fa, fb = pipe.analyze(a), pipe.analyze(b)
    for f, p in ((fa, args.image_a), (fb, args.image_b)):
        if not f:
            raise FacelatchError(f"{p}: no face found")
    metric = pipe.encoder_card.data["embedding"]["metric"]
    d = distance(fa[0].embedding, fb[0].embedding, metric)
    thr = pipe.encoder_card.threshold(fmr, exact=True)
    rec = {"a": args.image_a, "b": args.image_b, "distance": round(d, 4), "threshold": round(thr, 4), "fmr": fmr,
           "same_person": d <= thr}
    if args.json:
        print(json.dumps(rec))
    else:
        verdict = "same person" if d <= thr else "different people"
        print(f"{verdict}: distance {d:.3f} (threshold {thr:.3f} at FMR {fmr:g})")
    return 0


def cmd_embed(args) -> int:
    # embed reports no quality and no liveness: neither stage runs (edge.quality still gates
    # enroll, verify and the door)
    pipe = FacePipeline(args.encoder, threads=args.threads, liveness=None, quality=False)
    errors = 0
    for path in list_images(args.paths):
        try:
            found = pipe.analyze(read_image(path), look=args.look)
        except FacelatchError as e:
            print(f"facelatch: {e}", file=sys.stderr)
            print(json.dumps({"path": str(path), "error": str(e)}), flush=True)
            errors += 1
            continue
        rec = {"path": str(path), "faces": len(found), "box": None, "det_score": None, "embedding": None,
               **({"look": "first"} if args.look == "first" and pipe.embedder.flip else {})}
        if found:
            f = found[0]
            rec["box"] = [round(float(v), 1) for v in f.face.box]
            rec["det_score"] = round(f.face.score, 4)
            rec["embedding"] = [round(float(v), 6) for v in f.embedding]
        print(json.dumps(rec), flush=False)
    sys.stdout.flush()
    return 1 if errors else 0


def _liveness_model(args, cfg=None):
    """The liveness stage as the daemon would build it (config's model and threshold)."""
    from . import config
    from .liveness import Liveness
    from .modelcard import load_card, models_dir
    from .pipeline import _card_path

    cfg = cfg or (config.load(args.config) if args.config else config.Config())
    models = Path(cfg.model.models_dir) if cfg.model.models_dir else models_dir()
    live = cfg.liveness
    return Liveness(load_card(_card_path(live.model, models), kind="liveness"), args.threads,
                    live.threshold if live.threshold >= 0 else None)


def cmd_liveness(args) -> int:
    if args.calibrate and not args.camera:
        raise FacelatchError("--calibrate needs --camera: calibration records live frames of the installed camera")
    if args.camera:
        return _liveness_camera(args)
    if not args.paths:
        raise FacelatchError("give images or folders, or --camera")
    liveness = _liveness_model(args)
    finder = FaceFinder(None, args.threads)
    errors = 0
    for path in list_images(args.paths):
        try:
            rgb = read_image(path)
            found = finder.find(rgb, chips="none")
        except FacelatchError as e:
            print(f"facelatch: {e}", file=sys.stderr)
            print(json.dumps({"path": str(path), "error": str(e)}), flush=True)
            errors += 1
            continue
        score = liveness.score(rgb, found[0].face) if found else None
        rec = {"path": str(path), "faces": len(found), "live_score": None if score is None else round(score, 4),
               "live": None if score is None else liveness.is_live(score)}
        print(json.dumps(rec) if args.json else
              f"{'no face' if score is None else 'live' if rec['live'] else 'NOT live':<9} {path}"
              + ("" if score is None else f"  P(live) {score:.3f} (threshold {liveness.threshold:.3f})"))
    return 1 if errors else 0


def _liveness_camera(args) -> int:
    """Installer check: P(live) of the person in front of the camera, against the
    configured threshold.  Exit 0 when at most 5 % of their frames would be
    rejected, 1 (with a warning) when more, 2 when no face was seen."""
    import numpy as np

    from . import config
    from .camera import make_source

    cfg = config.load(args.config) if args.config else config.Config()
    liveness = _liveness_model(args, cfg)
    if args.calibrate and cfg.liveness.threshold >= 0:
        raise FacelatchError(f"liveness.threshold = {cfg.liveness.threshold:g} is set in the config and overrides any "
                             "calibration; remove it (or set -1) to calibrate")
    origin = calibration.apply(liveness, cfg)
    finder = FaceFinder(None, args.threads)
    stop = threading.Event()
    cam = make_source(cfg.camera, stop, allow_virtual=cfg.security.allow_insecure)
    scores, frames, deadline = [], 0, time.monotonic() + args.seconds
    print(f"stand in front of the camera as you would at the door, for {args.seconds:.0f} s "
          f"(P(live) threshold {liveness.threshold:.3f})", file=sys.stderr)
    try:
        while time.monotonic() < deadline:
            frame = cam.read()
            if frame is None:
                break
            frames += 1
            found = [f for f in finder.find(frame.rgb, chips="none") if f.face.size >= cfg.policy.min_face_px]
            if found:
                scores.append(liveness.score(frame.rgb, found[0].face))
                print(f"\r{len(scores)} face frames, last P(live) {scores[-1]:.3f}   ", end="", file=sys.stderr,
                      flush=True)
    finally:
        cam.close()
        print(file=sys.stderr)
    if not scores:
        raise FacelatchError(f"no face of at least {cfg.policy.min_face_px:g} px seen in {frames} frames")
    s = np.array(scores)
    rejected = float(np.mean(s < liveness.threshold))
    q = np.percentile(s, [5, 25, 50, 75, 95])
    summary = {"frames": frames, "face_frames": len(s), "threshold": round(liveness.threshold, 4),
               "rejected": round(rejected, 4), "p5": round(q[0], 4), "p25": round(q[1], 4), "median": round(q[2], 4),
               "p75": round(q[3], 4), "p95": round(q[4], 4), "min": round(float(s.min()), 4)}
    summary["threshold_from"] = origin
    if args.calibrate:
        summary.update(_calibrate(cfg, liveness, s, "facelatch liveness --camera --calibrate"))
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{len(s)} frames with a face (of {frames}); P(live): min {s.min():.3f}, 5 % {q[0]:.3f}, "
              f"median {q[2]:.3f}, 95 % {q[4]:.3f}; {rejected:.1%} below the threshold {liveness.threshold:.3f} "
              f"({origin})")
        if args.calibrate:
            print(summary["calibration"])
    if args.calibrate:
        return 0
    if rejected > 0.05:
        print(f"facelatch: warning: the liveness threshold {liveness.threshold:.3f} would reject {rejected:.0%} of this "
              f"person's frames on this camera (more than 5 %): check the lighting and the camera position; "
              f"lowering liveness.threshold lets more attacks through", file=sys.stderr)
        return 1
    return 0


def _calibrate(cfg, liveness, scores, by: str) -> dict:
    """Record this camera's live scores and write this installation's threshold (audited)."""
    import numpy as np

    from .audit import AuditLog

    cal = calibration.load(cfg.state_dir, liveness.scores_id)
    before = cal.threshold(liveness.default_threshold)
    cal.record(scores, by)
    path = cal.save(cfg.state_dir, liveness.default_threshold)
    after = cal.threshold(liveness.default_threshold)
    AuditLog(cfg.state_dir, cfg.audit.max_bytes, cfg.audit.backups).write(
        {"decision": "liveness_calibration", "by": by, "frames": len(scores), "recorded": len(cal.scores),
         "threshold_before": before, "threshold": after, "shipped_threshold": liveness.default_threshold,
         "model_sha256": liveness.model_sha256, "scores_id": liveness.scores_id})
    dropped = (f"{calibration.stale_reason(cal, liveness.model_sha256)}: those recordings were dropped; "
               if cal.other_model else "")
    if after is None:
        text = dropped + (f"recorded {len(scores)} live frames into {path} ({len(cal.scores)} in all); the installation "
                f"threshold needs {calibration.MIN_FRAMES}: the card's {liveness.default_threshold:.3f} stays")
    else:
        text = dropped + (f"calibrated: this installation's liveness threshold is {after:.3f} (the card's default "
                f"{liveness.default_threshold:.3f}; it rejects {np.mean(np.asarray(cal.scores) < after):.1%} of the "
                f"{len(cal.scores)} live frames recorded here), written to {path}; restart or reload the daemon "
                "(systemctl reload facelatch) to use it")
    return {"calibration": text, "calibrated_threshold": after, "calibration_file": str(path)}


def cmd_bench(args) -> int:
    from .bench import format_bench, run_bench

    r = run_bench(args.threads, args.seconds, args.encoder)
    print(json.dumps(r) if args.json else format_bench(r))
    return 0


def demo_images() -> Path:
    return Path(str(resources.files("edge") / "demo"))


def demo_decisions(pipe: FacePipeline):
    """Enroll from the bundled enroll images, then one decision dict per bundled probe."""
    import numpy as np

    demo = demo_images()
    enroll = sorted(demo.glob("enroll/*"))
    with tempfile.TemporaryDirectory() as tmp:
        gpath = Path(tmp) / "gallery.json"
        embeddings = [_one_face(pipe, p).embedding for p in enroll]
        demo_home = Gallery(pipe.model_sha256, pipe.encoder_card.data["embedding"]["metric"])
        demo_home.add("obama", np.stack(embeddings), [p.name for p in enroll])
        demo_home.save(gpath)
        gallery = load_gallery(gpath, pipe.model_sha256)
    fmr = DEFAULT_FMR
    matcher = gallery.identifier_of(["obama"], pipe.encoder_card, fmr)
    decisions = []
    for p in sorted(demo.glob("probe/*")):
        found = pipe.analyze(read_image(p))
        d = {"probe": p.name, "faces": len(found), "decision": "no face", "fmr": fmr, "threshold": float(matcher.threshold),
             "encoder": pipe.encoder_card.data["name"], "distance_tolerance": pipe.encoder_card.cross_arch_tolerance}
        if found:
            m = matcher.identify(found[0].embedding)
            d.update(decision="match" if m.is_match else "no match", distance=float(m.distance))
            if found[0].live_score is not None:
                d.update(live_score=float(found[0].live_score), live_threshold=float(pipe.liveness.threshold),
                         live=pipe.liveness.is_live(found[0].live_score),
                         live_tolerance=pipe.liveness.card.cross_arch_tolerance)
        decisions.append(d)
    return [p.name for p in enroll], decisions


def cmd_demo(args) -> int:
    pipe = _pipeline(args, liveness=True)
    if args.json:  # one line per probe, full precision (the cross-architecture check reads these)
        for d in demo_decisions(pipe)[1]:
            print(json.dumps(d))
        return 0
    print(f"facelatch demo: encoder {pipe.encoder_card.data['name']} ({pipe.embedder.runtime}), "
          f"liveness {'on' if pipe.liveness else 'off'}, bundled images in {demo_images()}")
    enrolled, decisions = demo_decisions(pipe)
    for name in enrolled:
        print(f"  enroll    {name}")
    print(f"verifying at FMR {DEFAULT_FMR:g} (distance threshold {decisions[0]['threshold']:.3f}, from the model card)"
          + (f"; liveness needs P(live) >= {pipe.liveness.threshold:.3f}" if pipe.liveness else "") + ":")
    for d in decisions:
        if d["decision"] == "no face":
            print(f"  no face    {d['probe']}")
            continue
        line = f"  {'MATCH' if d['decision'] == 'match' else 'no match':<9}  {d['probe']:<18} distance {d['distance']:.3f}"
        if "live_score" in d:
            line += f"   P(live) {d['live_score']:.2f} ({'live' if d['live'] else 'not live'})"
        if d["faces"] > 1:
            line += f"   {d['faces']} faces in view: a door denies"
        print(line)
    if pipe.liveness is not None:
        print("Liveness judges what a camera sees (a print or a screen held up to it); these are digital photos fed\n"
              "straight in, not a camera's frames, so its P(live) on them means little either way.  At a door (facelatch run) an\n"
              "unlock needs k of n fresh frames that match and look live: a still fed as identical frames never\n"
              "counts, and liveness.require_blink refuses any still.  See docs/how-it-works.md (Liveness).")
    return 0


def _global_options(p: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes, before or after its name (after it, an option
    given overrides; one not given leaves the value from before the command)."""
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    p.add_argument("--encoder", default=d(os.environ.get("FACELATCH_ENCODER", DEFAULT_ENCODER)),
                   help="encoder name in the models folder, or a path to its .json card")
    p.add_argument("--threads", type=int, default=d(1), help=f"interpreter threads (default 1, at most {MAX_THREADS})")
    p.add_argument("--max-image-mp", type=float, default=d(DEFAULT_MAX_MP),
                   help=f"refuse images larger than this many megapixels, before decoding (default {DEFAULT_MAX_MP:g})")
    p.add_argument("--no-liveness", action="store_true", default=d(False), help="verify/demo: skip the liveness check")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("facelatch")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facelatch", description="Face verification for door-unlock devices.")
    p.add_argument("--version", action="version", version=f"facelatch {_version()}")
    _global_options(p, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, defaults=False)
    sub = p.add_subparsers(dest="command", required=True)

    def command(*a, **kw):
        return sub.add_parser(*a, parents=[common], **kw)

    s = command("enroll", help="enroll a person from images (one face each) or from the camera")
    s.add_argument("images", nargs="*")
    s.add_argument("--name", help=f"who this is (1-64 letters, digits, space, '.', '_', '-'; may be left out only "
                                  f"for the first person, who is then {MIGRATED_NAME!r})")
    s.add_argument("--template", help=f"household file (default: from --config, else {default_template_path()})")
    s.add_argument("--config", help="daemon config (camera settings, template path)")
    s.add_argument("--key-file", help="encrypt the household file with this key (default: the systemd credential if any)")
    s.add_argument("--force", action="store_true", help="replace this person's embeddings; enroll even a face "
                                                        "that already matches another person")
    s.add_argument("--add", action="store_true", help="add these embeddings to this person's")
    s.add_argument("--camera", action="store_true", help="capture the enrollment frames from the camera")
    s.add_argument("--frames", type=int, default=5, help="--camera: good frames to capture (default 5)")
    s.add_argument("--timeout", type=float, default=60.0, help="--camera: give up after this many seconds")
    s.add_argument("--min-sharpness", type=float, default=30.0, help="--camera: minimum Laplacian variance of the chip")
    s.set_defaults(func=cmd_enroll)

    s = command("identify", help="who is it? the enrolled person, 'unknown' or 'ambiguous', per image")
    s.add_argument("images", nargs="+")
    s.add_argument("--template")
    s.add_argument("--config")
    s.add_argument("--key-file")
    s.add_argument("--fmr", type=float, default=DEFAULT_FMR,
                   help=f"system-level false-match rate; each of N comparisons uses FMR/N (default {DEFAULT_FMR:g})")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_identify)

    s = command("people", help="list the enrolled people")
    s.add_argument("--template")
    s.add_argument("--config")
    s.add_argument("--key-file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_people)

    for name, func, text in (("remove", cmd_remove, "remove a person"),
                             ("enable", cmd_enable, "let the door open for a person again"),
                             ("disable", cmd_enable, "keep a person enrolled, but the door no longer opens for them"),
                             ("schedule", cmd_schedule, "when the door opens for a person: 'mon-fri 07:00-19:00' "
                                                        "('' = always)")):
        s = command(name, help=text)
        s.add_argument("name")
        if name == "schedule":
            s.add_argument("schedule", help="DAYS HH:MM-HH:MM[; ...], e.g. 'mon-fri 07:00-19:00; sat 09:00-12:00'")
        s.add_argument("--template")
        s.add_argument("--config")
        s.add_argument("--key-file")
        s.set_defaults(func=func)

    s = command("verify", help="check images against one enrolled person")
    s.add_argument("images", nargs="+")
    s.add_argument("--name", help="the person (needed when several are enrolled)")
    s.add_argument("--template")
    s.add_argument("--config")
    s.add_argument("--key-file")
    s.add_argument("--fmr", type=float, default=DEFAULT_FMR, help=f"target false-match rate (default {DEFAULT_FMR:g})")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_verify)

    s = command("compare", help="are two images the same person?")
    s.add_argument("image_a")
    s.add_argument("image_b")
    s.add_argument("--fmr", type=float, default=DEFAULT_FMR)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_compare)

    s = command("embed", help="one JSON line per image: faces, box, score, embedding of the largest face")
    s.add_argument("paths", nargs="+", help="images or folders (recursed)")
    s.add_argument("--json", action="store_true", help="JSON lines (the only output format)")
    s.add_argument("--look", choices=["full", "first"], default="full",
                   help="full (default): the card's embedding (chip and mirror averaged, what its thresholds were "
                        "measured on); first: the chip alone, half the encoder's time (records say \"look\": \"first\")")
    s.set_defaults(func=cmd_embed)

    s = command("liveness", help="one line per image: P(live) of the largest face and the decision; "
                                        "--camera: check the threshold on the installed camera")
    s.add_argument("paths", nargs="*", help="images or folders (recursed)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--camera", action="store_true",
                   help="installer check: P(live) of the person in front of the configured camera; warns (exit 1) "
                        "when the threshold would reject more than 5 %% of their frames")
    s.add_argument("--seconds", type=float, default=10.0, help="--camera: how long to watch (default 10)")
    s.add_argument("--calibrate", action="store_true",
                   help="--camera: record these live frames and write this installation's threshold (the highest "
                        "rejecting <= 2 %% of the live frames recorded here, never below the card's); the daemon "
                        "reads it from the state directory")
    s.add_argument("--config", help="daemon config (camera, liveness model and threshold)")
    s.set_defaults(func=cmd_liveness)

    s = command("bench", help="short benchmark on the bundled images: per-stage latency, frames/s")
    s.add_argument("--seconds", type=float, default=10.0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)

    s = command("demo", help="enroll a person from bundled images and verify bundled probes")
    s.add_argument("--json", action="store_true", help="one JSON line per probe (full-precision distance)")
    s.set_defaults(func=cmd_demo)

    s = command("run", help="the door daemon (systemd: Type=notify)")
    s.add_argument("--config", help="TOML config (see `facelatch config-example`); required")
    s.add_argument("-v", "--verbose", action="store_true", help="one line per judged frame: face size, P(live), "
                   "nearest person, and why it did (not) count")
    s.set_defaults(func=cmd_run)

    s = command("replay", help="the door policy on a video file or a folder of images, driving nothing: "
                                      "a timeline of every judged frame with its reason, and a summary")
    s.add_argument("path", help="a video file, or a folder of images (name order)")
    s.add_argument("--config", help="the door's config (policy, liveness, household); default: built-in defaults "
                                    "and the default household file")
    s.add_argument("--template")
    s.add_argument("--key-file")
    s.add_argument("--fps", type=float, help="frames per second of the recording (default: the video's own; for a "
                                             "folder camera.fps)")
    s.add_argument("--snapshots", metavar="DIR", help="save the best face of each refused attempt here (JPEG, 0600)")
    s.add_argument("--max-snapshots", type=int, default=20, help="--snapshots: at most this many (default 20)")
    s.add_argument("--json", action="store_true", help="one JSON line per judged frame, then the summary")
    s.set_defaults(func=cmd_replay)

    s = command("remote", help="a signed command to the door over MQTT (docs/mqtt-security.md)")
    s.add_argument("command", choices=["open", "unlock", "pause", "resume"])
    s.add_argument("--config", required=True, help="a config whose [mqtt] section reaches the door (its own will do)")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the door")
    s.set_defaults(func=cmd_remote)

    s = command("keygen", help="make a 256-bit key file (0600) for template encryption")
    s.add_argument("path")
    s.set_defaults(func=cmd_keygen)

    s = command("encrypt", help="encrypt a plaintext household file in place with a key (AES-256-GCM)")
    s.add_argument("--template")
    s.add_argument("--config", help="the daemon config: its template.path and template.key_file")
    s.add_argument("--key-file", help="the key (facelatch keygen); default: the config's, else the systemd credential")
    s.set_defaults(func=cmd_encrypt)

    s = command("config-example", help="print the example config with every key and its default")
    s.set_defaults(func=cmd_config_example)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not 1 <= args.threads <= MAX_THREADS:
            raise FacelatchError(f"--threads must be between 1 and {MAX_THREADS}, got {args.threads}")
        if not 0 < args.max_image_mp <= 1000:
            raise FacelatchError(f"--max-image-mp must be in (0, 1000], got {args.max_image_mp}")
        global _max_mp
        _max_mp = args.max_image_mp
        return args.func(args)
    except FacelatchError as e:
        print(f"facelatch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
