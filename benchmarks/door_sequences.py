"""The door, end to end, on recorded sequences: per subject (NUAA training subjects;
the screen-replay webcam sources as one subject each), enroll from 3 of their own
live frames of one session, then run the real daemon loop (`facelatch run`, default
config, images source at 15 frames/s of virtual time) over

- their live frames of the *other* sessions, in capture order: does the door open,
  and after how many frames?
- their attack frames in capture order (NUAA: printed photos of the same person;
  screen sources: replays, often of other people): how many unlocks?

    python benchmarks/door_sequences.py --pad build/pad [--json build/door_sequences.json] [--calibrate] [--held-out DIR]

``build/pad`` comes from ``facelatch-convert pad-data``.  Liveness settings are the
config's defaults unless ``--no-liveness`` / ``--require-blink`` are given.  The shipped
head was trained on every source here, so its figures are tuning-data figures; with
``--held-out DIR`` (cards from ``facelatch-convert fit-liveness-head ... --held-out DIR``)
each subject is judged by the head trained without its source, at the threshold the
nested rule set without it: the door on a camera it never saw.

Per subject it also gives the door-level screen figure (issue 19): the share of
windows of n consecutive attack frames (capture order) in which the door's liveness
rule — k of the n frames live, the policy's defaults — would pass, at the threshold
the daemon uses.  With ``--calibrate`` each subject's installation is first
calibrated (edge/calibration.py) on the first half of their live door sequence and
both the door runs and the windows use the second half and that threshold.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convert.liveness import DOOR_KINDS  # noqa: E402
from convert.pad_data import BY_NAME, order_key  # noqa: E402
from convert.pad_eval import attack_windows  # noqa: E402
from edge import actuators, calibration  # noqa: E402
from edge import config as config_mod  # noqa: E402
from edge.daemon import run  # noqa: E402
from edge.pipeline import FacePipeline, read_image  # noqa: E402
from edge.template import Template  # noqa: E402


def subjects(manifest: list[dict]) -> dict:
    """subject -> {"live": [...], "attack": [...]}, each a list of (session, order, file)."""
    out = defaultdict(lambda: {"live": [], "attack": []})
    for m in manifest:
        if BY_NAME[m["source"]].kind not in DOOR_KINDS:
            continue
        subject = f"nuaa:{m['subject']}" if m["source"] == "nuaa" else m["source"]
        key = order_key(Path(m["file"]).name)
        out[subject][m["label"]].append((key[0], m["order"], m["file"]))
    for v in out.values():
        for k in v:
            v[k].sort()
    return dict(out)


def split_enrollment(live: list) -> tuple[list, list]:
    """3 enrollment frames from the last session (the webcam sources have one: its
    last 10 %), the door sequence from the rest."""
    sessions = sorted({s for s, _, _ in live})
    if len(sessions) > 1:
        enroll_pool = [x for x in live if x[0] == sessions[-1]]
        rest = [x for x in live if x[0] != sessions[-1]]
    else:
        cut = int(len(live) * 0.9)
        enroll_pool, rest = live[cut:], live[:cut]
    pick = [enroll_pool[i] for i in np.linspace(0, len(enroll_pool) - 1, 3).round().astype(int)]
    return [f for _, _, f in pick], [f for _, _, f in rest]


def toml_str(path) -> str:
    """A path as a TOML basic string (JSON's escapes are TOML's: a quote or a backslash in a
    path cannot end the string early)."""
    return json.dumps(str(path))


def door_liveness(extra: str, state: Path):
    """The liveness stage as the daemon builds it for this config (threshold included)."""
    cfg = config_mod.parse(tomllib.loads(f'state_dir = {toml_str(state)}\n{extra}'))
    pipe = FacePipeline(cfg.model.encoder, 1, None, cfg.liveness.model if cfg.liveness.enabled else None)
    calibration.apply(pipe.liveness, cfg)
    return pipe


def live_flags(pipe, files: list[str]) -> np.ndarray:
    """Per frame (capture order): is the door's face in it live at the daemon's threshold?
    A frame without a face counts as not live."""
    out = []
    for f in files:
        rgb = read_image(f)
        found = pipe.finder.find(rgb, chips="none")
        out.append(bool(found) and pipe.liveness.is_live(pipe.liveness.score(rgb, found[0].face)))
    return np.array(out, bool)


def door_run(pipe, template: Template, files: list[str], work: Path, extra: str, calibrated: Path | None = None) -> dict:
    frames = work / "frames"
    if frames.exists():
        shutil.rmtree(frames)
    frames.mkdir(parents=True)
    for i, f in enumerate(files):
        (frames / f"{i:05d}{Path(f).suffix}").symlink_to(Path(f).resolve())
    state = work / "state"
    if state.exists():
        shutil.rmtree(state)
    state.mkdir()
    template.save(state / "template.json")
    if calibrated is not None:
        shutil.copy(calibrated, state / calibration.FILE)
    cfg = work / "config.toml"
    cfg.write_text(f'state_dir = {toml_str(state)}\n[camera]\nsource = "images"\ndevice = {toml_str(frames)}\npace = false\n'
                   f'fps = 15.0\n{extra}')
    count, unlock_frames = [0], []
    real_unlock = actuators.LogActuator.unlock

    def unlock(self):  # the frame being judged is the one after the last counted
        unlock_frames.append(count[0] + 1)
        return real_unlock(self)

    looks = {"faces": 0, "second": 0}  # how often the door added the mirror (edge.secondlook)
    real_examine, real_complete = FacePipeline.examine, FacePipeline.complete

    def examine(self, rgb, r, look="full", **kw):  # the door examines the one face that counts
        r = real_examine(self, rgb, r, look, **kw)
        looks["faces"] += r.first_look is not None
        return r

    def complete(self, r):
        looks["second"] += r.first_look is not None
        return real_complete(self, r)

    actuators.LogActuator.unlock = unlock
    FacePipeline.examine, FacePipeline.complete = examine, complete
    try:
        run(str(cfg), on_frame=lambda n: count.__setitem__(0, n))
    finally:
        actuators.LogActuator.unlock = real_unlock
        FacePipeline.examine, FacePipeline.complete = real_examine, real_complete
    audit = state / "audit.jsonl"
    lines = [json.loads(x) for x in audit.read_text().splitlines()] if audit.exists() else []
    unlocks = [x for x in lines if x["decision"] == "unlock"]
    return {"frames": len(files), "unlocks": len(unlocks), "first_unlock_frame": unlock_frames[0] if unlock_frames else None,
            "denies": sum(x["decision"] == "deny" for x in lines),
            "locked_out": sum(x["decision"] == "locked_out" for x in lines),
            "deny_causes": dict(Counter(x.get("cause") for x in lines if x["decision"] in ("deny", "locked_out"))),
            "refusals_without_reason": sum(x["decision"] in ("deny", "locked_out", "no_decision")
                                           and not (x.get("reason") and x.get("cause")) for x in lines),
            "first_looks": looks["faces"], "second_looks": looks["second"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pad", default="build/pad", help="output of facelatch-convert pad-data")
    ap.add_argument("--no-liveness", action="store_true")
    ap.add_argument("--require-blink", action="store_true")
    ap.add_argument("--json", help="write the per-subject results here")
    ap.add_argument("--calibrate", action="store_true",
                    help="calibrate each installation on the first half of its live sequence (judged on the rest)")
    ap.add_argument("--only", nargs="+", help="these subjects only")
    ap.add_argument("--held-out", metavar="DIR",
                    help="judge each subject's liveness with DIR/SOURCE.json, the head trained without its source "
                         "at its nested threshold (facelatch-convert fit-liveness-head ... --held-out DIR): the "
                         "door on a camera the head never saw")
    ap.add_argument("--k", type=int, help="policy.k: live matching frames needed (default: the config's)")
    ap.add_argument("--n", type=int, help="policy.n: ... of the last n frames (default: the config's)")
    ap.add_argument("--after-spoof-k", type=int, help="policy.after_spoof_k (0: off; default: the config's)")
    args = ap.parse_args()
    if args.held_out and args.no_liveness:
        ap.error("--held-out needs liveness")
    manifest = json.loads((Path(args.pad) / "manifest.json").read_text())
    extra = "[liveness]\n" + ("enabled = false\n" if args.no_liveness else "") + \
            ("require_blink = true\n[policy]\nattempt_timeout_s = 8.0\n" if args.require_blink else "") + \
            ("[security]\nallow_insecure = true\n" if args.no_liveness else "")  # below the floor: measurement only
    pipe = FacePipeline(liveness=None)
    work = Path(tempfile.mkdtemp())
    results = {}
    if args.k or args.n or args.after_spoof_k is not None:
        window = "".join(f"{name} = {v}\n" for name, v in (("k", args.k), ("n", args.n),
                                                           ("after_spoof_k", args.after_spoof_k)) if v is not None)
        extra = extra.replace("[policy]\n", "[policy]\n" + window, 1) if "[policy]\n" in extra else \
            extra + "[policy]\n" + window
    door_cfg = config_mod.parse(tomllib.loads(f'state_dir = {toml_str(work)}\n{extra}'))  # the policy's k and n
    base_extra = extra
    for subject, seqs in sorted(subjects(manifest).items()):
        if args.only and subject not in args.only:
            continue
        if args.held_out:
            held = (Path(args.held_out) / f"{subject.split(':')[0]}.json").resolve()
            if not held.is_file():
                sys.exit(f"no held-out card for {subject}: {held}")
            extra = base_extra.replace("[liveness]\n", f"[liveness]\nmodel = {toml_str(held)}\n", 1)
        enroll, live_seq = split_enrollment(seqs["live"])
        calibrated, threshold = None, None
        if not args.no_liveness:
            judge = door_liveness(extra, work / "none")
            if args.calibrate:  # the installer calibrates on the first half; the door is judged on the rest
                half = len(live_seq) // 2
                scores = [judge.liveness.score(rgb, found[0].face) for rgb in map(read_image, live_seq[:half])
                          if (found := judge.finder.find(rgb, chips="none"))]
                cal = calibration.Calibration(judge.liveness.scores_id, [], [])
                cal.record(scores, "benchmark")
                calibrated = cal.save(work / "calibration", judge.liveness.default_threshold)
                judge.liveness.threshold = cal.threshold(judge.liveness.default_threshold) or \
                    judge.liveness.default_threshold
                live_seq = live_seq[half:]
            threshold = judge.liveness.threshold
            attack_files = [f for _, _, f in seqs["attack"]]
            windows = attack_windows(live_flags(judge, attack_files), door_cfg.policy.n, door_cfg.policy.k)
        emb = []
        for f in enroll:
            found = pipe.analyze(read_image(f))
            if found:
                emb.append(found[0].embedding)
        template = Template(pipe.model_sha256, np.stack(emb), "cosine")
        live = door_run(pipe, template, live_seq, work / "live", extra, calibrated)
        attack = door_run(pipe, template, [f for _, _, f in seqs["attack"]], work / "attack", extra, calibrated)
        results[subject] = {"enrolled_from": [Path(f).name for f in enroll], "live": live, "attack": attack}
        if not args.no_liveness:
            results[subject]["liveness"] = {"threshold": threshold, "attack_windows_passing": windows,
                                            "k": door_cfg.policy.k, "n": door_cfg.policy.n}
            print(f"{subject:14s} liveness threshold {threshold:.4f}: {windows:.1%} of attack windows "
                  f"({door_cfg.policy.k} of {door_cfg.policy.n} frames) pass", flush=True)
        print(f"{subject:14s} live: {live['unlocks']:3d} unlocks in {live['frames']:4d} frames, first at frame "
              f"{live['first_unlock_frame']}; attack: {attack['unlocks']} unlocks in {attack['frames']} frames "
              f"({attack['denies']} denied attempts, {attack['locked_out']} lockouts); second look on "
              f"{live['second_looks']}/{live['first_looks']} live, {attack['second_looks']}/{attack['first_looks']} "
              f"attack faces", flush=True)
    nuaa = {k: v for k, v in results.items() if k.startswith("nuaa:")}
    firsts = [v["live"]["first_unlock_frame"] for v in nuaa.values() if v["live"]["first_unlock_frame"]]
    summary = {"nuaa_subjects": len(nuaa), "nuaa_live_unlocked": sum(v["live"]["unlocks"] > 0 for v in nuaa.values()),
               "nuaa_median_frames_to_first_unlock": statistics.median(firsts) if firsts else None,
               "nuaa_attack_unlocks": sum(v["attack"]["unlocks"] for v in nuaa.values()),
               "screen_sources_live_unlocked": sum(v["live"]["unlocks"] > 0 for k, v in results.items() if k not in nuaa),
               "screen_sources_attack_unlocks": sum(v["attack"]["unlocks"] for k, v in results.items() if k not in nuaa),
               "refusals_without_reason": sum(v[s]["refusals_without_reason"] for v in results.values()
                                              for s in ("live", "attack")),
               "liveness": "off" if args.no_liveness else "require_blink" if args.require_blink else "default",
               "liveness_heads": "held out (never saw the subject's source)" if args.held_out else "the card's",
               "policy": {"k": door_cfg.policy.k, "n": door_cfg.policy.n},
               "encoder": pipe.encoder_card.data["name"],
               "second_look_live_faces": [sum(v["live"]["second_looks"] for v in results.values()),
                                          sum(v["live"]["first_looks"] for v in results.values())],
               "second_look_attack_faces": [sum(v["attack"]["second_looks"] for v in results.values()),
                                            sum(v["attack"]["first_looks"] for v in results.values())]}
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "subjects": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
