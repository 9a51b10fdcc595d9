"""facelatch against the face_recognition/dlib pipeline (HOG + 5-point landmarks +
ResNet descriptor) and, with --yunet and --sface-onnx, against OpenCV's own YuNet +
SFace path (cv2.FaceDetectorYN + cv2.FaceRecognizerSF: detect, alignCrop, feature,
match), on the same frames, in one run, pinned to the same core.

    python benchmarks/compare_dlib.py --dlib-models DIR [--encoder NAME] [--lfw ../shared/data/lfw] \\
        [--float-encoder F.json] [--yunet YUNET.onnx --sface-onnx SFACE.onnx] [--out build/compare]

DIR holds shape_predictor_5_face_landmarks.dat and dlib_face_recognition_resnet_model_v1.dat
(from the face-recognition-models==0.3.0 sdist); the peer needs `pip install dlib-bin`.
Writes compare.json and compare.md in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def encoded_frames() -> list[bytes]:
    """640x480 JPEG frames, one real face each, from the bundled images."""
    from edge.bench import demo_frames
    from edge.pipeline import FacePipeline

    frames = demo_frames(FacePipeline(liveness=None))
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
            for f in frames]


def stats(v) -> dict:
    v = np.asarray(v)
    return {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95))}


def decode(s):
    s["rgb"] = cv2.cvtColor(cv2.imdecode(np.frombuffer(s["jpeg"], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def timed_loop(frames, seconds, stages) -> dict:
    """Run ``stages`` ((name, fn(state)) in order) on the frames, round robin, for at
    least ``seconds`` and two passes; per-stage and total times in ms."""
    st = {name: [] for name, _ in stages}
    st["total"] = []
    t_end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < t_end or n < 2 * len(frames):
        state = {"jpeg": frames[n % len(frames)]}
        start = time.perf_counter()
        for name, fn in stages:
            t0 = time.perf_counter()
            fn(state)
            st[name].append(1000 * (time.perf_counter() - t0))
        st["total"].append(1000 * (time.perf_counter() - start))
        n += 1
    return st


def run_facelatch(frames, threads, seconds, encoder, door=False, liveness=None):
    """Every frame embedded with both looks (chip + mirror) and matched; with ``door``,
    as the door daemon does it: the demo's person enrolled from the bundled enroll
    images, each frame judged on its first look and the mirror added only within the
    card's second-look band of the threshold (edge.secondlook)."""
    from edge.cli import demo_images
    from edge.decision import DEFAULT_FMR, Identifier, person_reference
    from edge.pipeline import FacePipeline, FaceResult, read_image
    from edge.secondlook import SecondLook

    pipe = FacePipeline(encoder, threads=threads, **({"liveness": liveness} if liveness else {}))
    f = pipe.finder
    card = pipe.encoder_card
    metric = card.data["embedding"]["metric"]
    enrolled = np.stack([pipe.analyze(read_image(p))[0].embedding for p in sorted(demo_images().glob("enroll/*"))])
    ident = Identifier(["enrolled"], person_reference(enrolled, metric)[None], metric, card.threshold(DEFAULT_FMR),
                       DEFAULT_FMR)
    look = SecondLook(pipe)
    seconds_looked = [0, 0]

    def detect(s):
        s["face"] = f.detect(s["rgb"])[0]

    def align(s):
        s["landmarks"] = f.mesh.landmarks(s["rgb"], s["face"])[0]
        s["chip"] = f.aligner.chip(s["rgb"], s["landmarks"])

    def quality(s):
        if pipe.quality is not None:
            s["quality"] = pipe.quality.check(s["rgb"], s["face"].box, s["landmarks"], s["chip"], f.aligner)

    def embed(s):
        if door and pipe.embedder.flip:
            first = pipe.embedder.first_look(s["chip"])
            s["result"] = FaceResult(s["face"], s["landmarks"], s["chip"], pipe.embedder.finish(first), first_look=first)
        else:
            s["result"] = None
            s["embedding"] = pipe.embedder.embed(s["chip"])

    def match(s):
        if s["result"] is None:
            return ident.identify(s["embedding"])
        r = s["result"]
        who = look.identify(r, ident)
        seconds_looked[0] += r.first_look is None
        seconds_looked[1] += 1
        return who

    st = timed_loop(frames, seconds, [
        ("decode", decode), ("detect", detect), ("align", align), ("quality", quality),
        ("liveness", lambda s: pipe.liveness.score(s["rgb"], s["face"])),
        ("embed", embed), ("match", match)])
    if door:
        st["second_looks"] = seconds_looked
    return st


def run_embed_cli(frames, threads, seconds, encoder, extra=()):
    """``facelatch embed`` itself, in process (its real argument parsing, image reading and
    JSON output, sent to /dev/null) on the frames written as JPEG files: per frame = the
    time for 6 + N paths minus the time for 6 (which holds model loading), over N; runs
    until ``seconds`` are spent, at least three times."""
    import contextlib
    import tempfile

    from edge.cli import main as cli_main

    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as null:
        files = []
        for i, jpeg in enumerate(frames):
            files.append(Path(tmp) / f"frame{i}.jpg")
            files[-1].write_bytes(jpeg)

        def timed(n):
            argv = ["--encoder", str(encoder), "--threads", str(threads), "embed", *extra, *map(str, (files * n)[:n])]
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(null):
                if cli_main(argv):
                    raise SystemExit("facelatch embed failed")
            return time.perf_counter() - t0

        timed(len(files))  # warm-up
        per_frame, t_end, n = [], time.perf_counter() + seconds, 20 * len(files)
        while time.perf_counter() < t_end or len(per_frame) < 3:
            base = timed(len(files))
            per_frame.append(1000 * (timed(len(files) + n) - base) / n)
    return {"total": per_frame, "batches": [len(per_frame)]}


def run_peer(frames, models: Path, seconds):
    import dlib

    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    ref = np.zeros(128)

    def detect(s):
        s["dets"] = hog(s["rgb"], 1)  # face_recognition's default: upsample once

    def align(s):
        s["chip"] = (dlib.get_face_chip(s["rgb"], sp(s["rgb"], s["dets"][0]), size=150, padding=0.25)
                     if s["dets"] else None)

    def embed(s):
        s["d"] = np.array(rec.compute_face_descriptor(s["chip"])) if s["chip"] is not None else ref

    return timed_loop(frames, seconds, [
        ("decode", decode), ("detect", detect), ("align", align), ("embed", embed),
        ("match", lambda s: np.linalg.norm(s["d"] - ref))])


def run_opencv(frames, yunet: Path, sface: Path, seconds):
    """What an OpenCV user would pick: YuNet boxes + 5 points, alignCrop, SFace feature, cosine match."""
    det = cv2.FaceDetectorYN.create(str(yunet), "", (640, 480), 0.9, 0.3, 5000)
    rec = cv2.FaceRecognizerSF.create(str(sface), "")
    ref = np.zeros((1, 128), np.float32)
    ref[0, 0] = 1

    def decode_bgr(s):
        s["bgr"] = cv2.imdecode(np.frombuffer(s["jpeg"], np.uint8), cv2.IMREAD_COLOR)

    def detect(s):
        det.setInputSize((s["bgr"].shape[1], s["bgr"].shape[0]))
        s["faces"] = det.detect(s["bgr"])[1]

    def align(s):
        s["chip"] = rec.alignCrop(s["bgr"], s["faces"][0]) if s["faces"] is not None else None

    def embed(s):
        s["feature"] = rec.feature(s["chip"]) if s["chip"] is not None else ref

    return timed_loop(frames, seconds, [
        ("decode", decode_bgr), ("detect", detect), ("align", align), ("embed", embed),
        ("match", lambda s: rec.match(s["feature"], ref, cv2.FaceRecognizerSF_FR_COSINE))])


def worker(args):
    """One pipeline in its own process (so peak RSS is its own), pinned to given cores."""
    os.sched_setaffinity(0, set(args.cores))
    frames = [bytes.fromhex(h) for h in json.loads(Path(args.frames_file).read_text())]
    looked = None
    if args.which in ("facelatch", "facelatch-door"):
        st = run_facelatch(frames, args.threads, args.seconds, args.encoder, door=args.which == "facelatch-door",
                           liveness=args.liveness)
        looked = st.pop("second_looks", None)
    elif args.which in ("facelatch-embed", "facelatch-embed-first"):
        st = run_embed_cli(frames, args.threads, args.seconds, args.encoder,
                           ["--look", "first"] if args.which.endswith("first") else [])
    elif args.which == "opencv":
        cv2.setNumThreads(args.threads)
        st = run_opencv(frames, Path(args.yunet), Path(args.sface_onnx), args.seconds)
    else:
        st = run_peer(frames, Path(args.dlib_models), args.seconds)
    batches = st.pop("batches", [None])[0]
    out = {"stages": {k: stats(v) for k, v in st.items()}, "frames": len(st["total"]), "batches": batches,
           **({"second_looks": looked} if looked else {}),
           "fps": 1000 / float(np.mean(st["total"])),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(out))


def sub(which, cores, threads, frames_file, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--cores", *map(str, cores), "--threads", str(threads),
           "--frames-file", frames_file, "--seconds", str(args.seconds), "--dlib-models", str(args.dlib_models),
           "--encoder", str(args.encoder), "--yunet", str(args.yunet), "--sface-onnx", str(args.sface_onnx),
           *(["--liveness", str(args.liveness)] if args.liveness else [])]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def lfw_peer(lfw: Path, models: Path, cache: Path) -> dict:
    """face_recognition/dlib pipeline on LFW pairs.txt images: {rel: descriptor or None}."""
    import dlib

    from convert.evaluate import pair_images

    if cache.exists():
        d = json.loads(cache.read_text())
        return {k: (None if v is None else np.array(v, np.float32)) for k, v in d.items()}
    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    out = {}
    for p in pair_images(lfw):
        rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        dets = hog(rgb, 1)
        if dets:
            det = max(dets, key=lambda r: r.area())
            out[f"{p.parent.name}/{p.name}"] = np.array(rec.compute_face_descriptor(rgb, sp(rgb, det)), np.float32)
        else:
            out[f"{p.parent.name}/{p.name}"] = None
    cache.write_text(json.dumps({k: None if v is None else v.tolist() for k, v in out.items()}))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dlib-models", type=Path, default=Path("face_recognition_models/models"))
    ap.add_argument("--lfw", type=Path)
    ap.add_argument("--facelatch-lfw-jsonl", type=Path, help="`facelatch embed --json` of LFW (else embedded here)")
    ap.add_argument("--float-encoder", type=Path, help="float TFLite encoder card, for the int8-vs-float row")
    ap.add_argument("--encoder", default="facelatch_dlib_resnet_int8", help="facelatch's encoder (name or card)")
    ap.add_argument("--yunet", type=Path, help="YuNet ONNX: adds OpenCV's YuNet + SFace path as a second peer")
    ap.add_argument("--sface-onnx", type=Path, help="face_recognition_sface_2021dec.onnx (with --yunet)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=Path("build/compare"))
    ap.add_argument("--worker")
    ap.add_argument("--cores", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames-file")
    ap.add_argument("--embed-first", action="store_true", help="also time `facelatch embed --look first`")
    ap.add_argument("--liveness", help="facelatch's liveness card (default: the shipped one)")
    ap.add_argument("--core", type=int, default=0, help="the core of the one-core runs (default 0)")
    ap.add_argument("--only-ours", action="store_true", help="time facelatch's door path and embed only (no peer)")
    args = ap.parse_args()
    if args.worker:
        args.which = args.worker
        return worker(args)

    from macs import model_size_mb, tflite_macs

    from edge.modelcard import models_dir

    args.out.mkdir(parents=True, exist_ok=True)
    frames = encoded_frames()
    ff = args.out / "frames.json"
    ff.write_text(json.dumps([f.hex() for f in frames]))
    result = {"machine": f"{os.cpu_count()} cores, {os.uname().machine}", "frames": len(frames),
              "frame_size": "640x480, one face, JPEG q90 (from the bundled images)"}
    one = [args.core]
    result["facelatch_1_thread"] = sub("facelatch", one, 1, str(ff), args)
    result["facelatch_door_1_thread"] = sub("facelatch-door", one, 1, str(ff), args)
    result["facelatch_embed_1_thread"] = sub("facelatch-embed", one, 1, str(ff), args)
    if args.embed_first:
        result["facelatch_embed_first_1_thread"] = sub("facelatch-embed-first", one, 1, str(ff), args)
    if args.only_ours:
        (args.out / "compare.json").write_text(json.dumps(result, indent=1))
        for k, v in result.items():
            if isinstance(v, dict) and "stages" in v:
                print(k, {s: round(x["median_ms"], 2) for s, x in v["stages"].items()})
        return
    result["peer_1_core"] = sub("peer", one, 1, str(ff), args)
    result["facelatch_2_threads"] = sub("facelatch", [0, 1], 2, str(ff), args)
    result["peer_2_cores"] = sub("peer", [0, 1], 1, str(ff), args)
    result["fps_ratio_one_core"] = result["facelatch_1_thread"]["fps"] / result["peer_1_core"]["fps"]
    result["fps_ratio_door_one_core"] = result["facelatch_door_1_thread"]["fps"] / result["peer_1_core"]["fps"]
    result["embed_ratio_one_core"] = (result["peer_1_core"]["stages"]["total"]["median_ms"]
                                      / result["facelatch_embed_1_thread"]["stages"]["total"]["median_ms"])
    result["encoder"] = str(args.encoder)
    if args.yunet and args.sface_onnx:
        result["opencv_1_core"] = sub("opencv", [0], 1, str(ff), args)
    m = models_dir()
    result["models"] = {name: {"size_mb": model_size_mb(m / f"{name}.tflite"), "macs": tflite_macs(m / f"{name}.tflite")}
                        for name in ("face_detection_short_range", "face_landmark", "facelatch_liveness",
                                     "facelatch_dlib_resnet_int8", "facelatch_sface_int8")}
    if args.float_encoder:
        from edge.modelcard import load_card
        from edge.runtime import TFLiteModel

        chip = np.random.default_rng(0).integers(0, 255, (1, 150, 150, 3)).astype(np.float32)
        row = {}
        for name, path in (("int8", m / "facelatch_dlib_resnet_int8.tflite"),
                           ("float32", load_card(args.float_encoder).model_path)):
            os.sched_setaffinity(0, {0})
            t = TFLiteModel(path, 1)
            for _ in range(5):
                t.run(chip)
            times = []
            for _ in range(100):
                t0 = time.perf_counter()
                t.run(chip)
                times.append(1000 * (time.perf_counter() - t0))
            row[name] = {**stats(times), "size_mb": model_size_mb(path)}
        result["encoder_int8_vs_float"] = row
    if args.lfw:
        from convert.evaluate import embed_images, lfw_accuracy, load_embeddings, pair_images

        peer = lfw_peer(args.lfw, args.dlib_models, args.out / "lfw_peer.json")
        ours = (load_embeddings(args.facelatch_lfw_jsonl) if args.facelatch_lfw_jsonl else
                embed_images(m / "facelatch_dlib_resnet_int8.json", pair_images(args.lfw)))
        result["lfw"] = {"facelatch_int8_cosine": lfw_accuracy(ours, args.lfw, "cosine"),
                         "peer_euclidean": lfw_accuracy(peer, args.lfw, "euclidean"),
                         "peer_no_face": sum(v is None for v in peer.values()),
                         "facelatch_no_face": sum(ours.get(f"{p.parent.name}/{p.name}") is None
                                                  for p in pair_images(args.lfw))}
    (args.out / "compare.json").write_text(json.dumps(result, indent=1))
    (args.out / "compare.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    a, b, c = r["facelatch_1_thread"], r["peer_1_core"], r.get("opencv_1_core")
    d = r.get("facelatch_door_1_thread")
    fmt = lambda s: f"{s['median_ms']:.2f} / {s['p95_ms']:.2f}" if s else "– (no such stage)"  # noqa: E731
    cols = [("facelatch, both looks every frame", a)] + ([("facelatch, door path (second look near the threshold)", d)]
                                                          if d else [])
    cols += [("face_recognition/dlib", b)] + ([("OpenCV YuNet + SFace", c)] if c else [])
    lines = [f"Frames: {r['frames']} distinct {r['frame_size']}; each pipeline in its own process; facelatch "
             f"encoder {r.get('encoder', 'facelatch_dlib_resnet_int8')}.", "",
             "| stage, median / p95 (ms), 1 core | " + " | ".join(n for n, _ in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for k in ("decode", "detect", "align", "quality", "liveness", "embed", "match", "total"):
        lines.append(f"| {k} | " + " | ".join(fmt(x["stages"].get(k)) for _, x in cols) + " |")
    lines += ["", "| | " + " | ".join(n for n, _ in cols) + " |", "|---|" + "---|" * len(cols),
              "| frames/s, 1 core | " + " | ".join(f"**{x['fps']:.1f}**" for _, x in cols) + " |",
              f"| frames/s ratio to face_recognition/dlib, 1 core | "
              + " | ".join(f"{x['fps'] / b['fps']:.1f}x" for _, x in cols) + " |",
              "| peak RSS (MB) | " + " | ".join(f"{x['peak_rss_mb']:.0f}" for _, x in cols) + " |",
              f"| frames/s, 2 cores (facelatch: 2 interpreter threads) | {r['facelatch_2_threads']['fps']:.1f} | "
              + ("– | " if d else "") + f"{r['peer_2_cores']['fps']:.2f} |" + (" – |" if c else "")]
    if "lfw" in r:
        l = r["lfw"]
        lines.append(f"| LFW pairs.txt 10-fold | {100 * l['facelatch_int8_cosine']:.2f} % "
                     f"({l['facelatch_no_face']} no face) | {100 * l['peer_euclidean']:.2f} % "
                     f"({l['peer_no_face']} no face, counted as non-matches) |")
    lines += ["", "| model | size (MB) | MACs |", "|---|---|---|"]
    lines += [f"| {k} | {v['size_mb']:.2f} | {v['macs'] / 1e6:.1f} M |" for k, v in r["models"].items()]
    if "encoder_int8_vs_float" in r:
        e = r["encoder_int8_vs_float"]
        lines += ["", "| encoder, one inference, 1 thread | median / p95 (ms) | size (MB) |", "|---|---|---|"]
        lines += [f"| {k} | {v['median_ms']:.2f} / {v['p95_ms']:.2f} | {v['size_mb']:.1f} |" for k, v in e.items()]
    for key, what in (("facelatch_embed_1_thread", "`facelatch embed`"),
                      ("facelatch_embed_first_1_thread", "`facelatch embed --look first`")):
        e = r.get(key)
        if e:
            ms = e["stages"]["total"]["median_ms"]
            lines += ["", f"{what} (the CLI in process, JSON to /dev/null; median of {e['batches']} batches of "
                          f"{20 * r['frames']} frames): **{ms:.2f} ms** per frame, the peer's frame "
                          f"{b['stages']['total']['median_ms']:.2f} ms: **{b['stages']['total']['median_ms'] / ms:.1f}x**."]
    if d and d.get("second_looks"):
        done, of = d["second_looks"]
        lines += ["", f"Door path: the second look ran on {done} of {of} frames of this set."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
