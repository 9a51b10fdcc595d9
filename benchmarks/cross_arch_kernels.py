"""Where do x86-64 and arm64 differ?  The same aligned chips through each encoder with
each of LiteRT's kernel sets, on each architecture, then compared.

    # on x86-64: chips cut once (demo images + LFW people), so both sides see the same pixels
    python benchmarks/cross_arch_kernels.py chips build/xarch/chips.npz --lfw ../shared/data/lfw/images --count 40
    # on each architecture (inside the arm64 root too): raw encoder outputs per kernel set
    python benchmarks/cross_arch_kernels.py embed build/xarch/chips.npz build/xarch/x86.npz
    # this machine's own demo chips (to see whether detection/landmarks/alignment differ too)
    python benchmarks/cross_arch_kernels.py chips build/xarch/arm64-chips.npz
    # the comparison (and, with --onnx, SFace int8 against its float ONNX: the quantization noise)
    python benchmarks/cross_arch_kernels.py compare build/xarch/x86.npz build/xarch/arm64.npz \
        --onnx .ci-cache/models/face_recognition_sface_2021dec.onnx

Kernel sets (LiteRT's op resolvers): ``xnnpack`` (AUTO: the XNNPACK delegate, what the
device runs), ``builtin`` (TFLite's own optimized kernels, no delegate) and ``ref``
(TFLite's reference kernels: integer-only fixed-point requantization).  Device
libraries only (numpy, OpenCV, LiteRT): it runs inside the emulated root.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.align import Aligner  # noqa: E402
from edge.modelcard import load_card, models_dir  # noqa: E402
from edge.pipeline import FaceFinder  # noqa: E402
from edge.images import read_image  # noqa: E402
from edge.liveness import Liveness  # noqa: E402

ENCODERS = ("facelatch_sface_int8", "facelatch_dlib_resnet_int8")
KERNELS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "ref": "BUILTIN_REF"}


def cmd_chips(args):
    """Demo enrolment + probe chips (largest face) and, with --lfw, one image each of the
    first --count LFW people (sorted), per encoder's alignment."""
    demo = Path(__file__).resolve().parent.parent / "edge" / "demo"
    paths = sorted(demo.glob("enroll/*")) + sorted(demo.glob("probe/*"))
    if args.lfw:
        paths += [sorted(d.glob("*.jpg"))[0] for d in sorted(args.lfw.iterdir())[: args.count]]
    images = [read_image(p) for p in paths]
    out = {"names": np.array([f"{p.parent.name}/{p.name}" for p in paths]),
           "machine": np.array(__import__("platform").machine()),
           # the decoded pixels (sha256) and each stage's output: where do two machines part?
           "image_sha256": np.array([__import__("hashlib").sha256(im.tobytes()).hexdigest() for im in images])}
    for name in ENCODERS:
        finder = FaceFinder(Aligner.from_card(load_card(models_dir() / f"{name}.json")))
        found = [(finder.find(im) or [None])[0] for im in images]
        ok = next(r for r in found if r is not None)
        out[f"{name}/found"] = np.array([r is not None for r in found])
        out[f"{name}/boxes"] = np.stack([np.asarray(r.face.box, np.float64) if r else np.zeros(4) for r in found])
        out[f"{name}/landmarks"] = np.stack([r.landmarks if r else np.zeros_like(ok.landmarks) for r in found])
        out[f"{name}/chips"] = np.stack([r.chip if r else np.zeros_like(ok.chip) for r in found])
    # the liveness model (float32) on each image's face: P(live)
    live = Liveness(load_card(models_dir() / "facelatch_liveness.json"))
    out["live_score"] = np.array([live.score_patch(live.patch(im, r.face)) if r else np.nan
                                  for im, r in zip(images, found)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"{len(paths)} images -> {args.out}")


def interpreter(path: Path, kernels: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=getattr(OpResolverType, KERNELS[kernels]))
    it.allocate_tensors()
    return it


def raw_outputs(it, chips: np.ndarray) -> tuple[np.ndarray, float]:
    """Each chip and its mirror image through the model: the output tensor as stored
    (int8 where the model's output is quantized), shape (n, 2, dim); seconds per run."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    res, t0 = [], time.perf_counter()
    for c in chips:
        pair = []
        for x in (c, np.ascontiguousarray(c[:, ::-1])):
            if inp["dtype"] == np.uint8 and scale == 1.0 and zero == 0:
                x = x[None]
            elif inp["dtype"] in (np.int8, np.uint8):
                info = np.iinfo(inp["dtype"])
                x = np.clip(np.round(x[None] / scale + zero), info.min, info.max).astype(inp["dtype"])
            else:
                x = x[None].astype(np.float32)
            it.set_tensor(inp["index"], x)
            it.invoke()
            pair.append(it.get_tensor(out["index"]).reshape(-1).copy())
        res.append(pair)
    return np.array(res), (time.perf_counter() - t0) / (2 * len(chips))


def cmd_embed(args):
    z = np.load(args.chips)
    out = {"names": z["names"], "machine": np.array(__import__("platform").machine())}
    for name in ENCODERS:
        path = models_dir() / f"{name}.tflite"
        chips = z[f"{name}/chips"][: args.limit]
        probe = interpreter(path, "xnnpack").get_output_details()[0]
        out[f"{name}/out_quant"] = np.array(probe["quantization"], np.float64)
        for k in args.kernels:
            it = interpreter(path, k)
            some = chips if k == "xnnpack" else chips[: args.slow_limit]
            out[f"{name}/{k}"], sec = raw_outputs(it, some)
            out[f"{name}/{k}/seconds"] = np.array(sec)
            print(f"{name} {k:8s} {len(some)} chips, {1000 * sec:9.1f} ms per inference", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.out, **out)  # after each set: a long emulated run can be read part-way


def embeddings(raw: np.ndarray, quant: np.ndarray) -> np.ndarray:
    """What Embedder.embed returns: dequantized, flip-averaged, L2-normalized."""
    x = raw.astype(np.float64)
    if raw.dtype != np.float32 and quant[0]:
        x = (x - quant[1]) * quant[0]
    e = x.mean(axis=1)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def pair_distances(e: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(e), 1)
    return 1.0 - np.sum(e[i] * e[j], axis=1)


def describe(a: np.ndarray, b: np.ndarray, quant: np.ndarray) -> str:
    """Raw outputs a vs b: how many output values identical, the largest difference in
    output steps, and the cosine-distance figures the door cares about."""
    same = np.mean(a == b)
    steps = np.abs(a.astype(np.float64) - b.astype(np.float64)).max()  # int8 outputs: in quantization steps
    ea, eb = embeddings(a, quant), embeddings(b, quant)
    self_d = 1.0 - np.sum(ea * eb, axis=1)
    dd = np.abs(pair_distances(ea) - pair_distances(eb))
    unit = "steps" if a.dtype != np.float32 else "abs"
    return (f"outputs identical {100 * same:6.2f} %, max diff {steps:7.2f} {unit}; same chip a-vs-b cosine "
            f"distance median {np.median(self_d):.5f} max {self_d.max():.5f}; pair-distance difference "
            f"median {np.median(dd):.5f} p99 {np.percentile(dd, 99):.5f} max {dd.max():.5f} ({len(dd)} pairs)")


def float_reference(onnx: Path, chips: np.ndarray) -> np.ndarray:
    """SFace in float32 (onnxruntime on the upstream ONNX: RGB, 0..255, NCHW), as raw (n, 2, 128)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx), opts)
    return np.array([[sess.run(None, {"data": x[None].astype(np.float32).transpose(0, 3, 1, 2)})[0][0]
                      for x in (c, c[:, ::-1])] for c in chips], np.float32)


def cmd_compare(args):
    a, b = np.load(args.a), np.load(args.b)
    print(f"A = {args.a} ({a['machine']}), B = {args.b} ({b['machine']})")
    for name in ENCODERS:
        quant = a[f"{name}/out_quant"]
        kernels = [k for k in KERNELS if f"{name}/{k}" in a.files and f"{name}/{k}" in b.files]
        print(f"\n{name} (output scale {quant[0]:.5g})")
        for k in kernels:
            n = min(len(a[f"{name}/{k}"]), len(b[f"{name}/{k}"]))
            print(f"  A {k:8s} vs B {k:8s} ({n} chips): {describe(a[f'{name}/{k}'][:n], b[f'{name}/{k}'][:n], quant)}")
            print(f"     seconds per inference: A {float(a[f'{name}/{k}/seconds']):.4f}, B {float(b[f'{name}/{k}/seconds']):.4f}")
        for side, z in (("A", a), ("B", b)):
            for k in kernels[1:]:
                n = len(z[f"{name}/{k}"])
                print(f"  {side} xnnpack  vs {side} {k:8s} ({n} chips): "
                      f"{describe(z[f'{name}/xnnpack'][:n], z[f'{name}/{k}'][:n], quant)}")
        if args.onnx and args.chips and name == "facelatch_sface_int8":
            n = min(len(a[f"{name}/xnnpack"]), len(b[f"{name}/xnnpack"]))
            chips = np.load(args.chips)[f"{name}/chips"][:n]
            ref = float_reference(args.onnx, chips)
            for side, z in (("A", a), ("B", b)):
                e_q, e_f = embeddings(z[f"{name}/xnnpack"][:n], quant), embeddings(ref, np.zeros(2))
                self_d = 1.0 - np.sum(e_q * e_f, axis=1)
                dd = np.abs(pair_distances(e_q) - pair_distances(e_f))
                print(f"  {side} xnnpack  vs float ONNX: same chip cosine distance median {np.median(self_d):.5f} "
                      f"max {self_d.max():.5f}; pair-distance difference median {np.median(dd):.5f} "
                      f"p99 {np.percentile(dd, 99):.5f} max {dd.max():.5f}")


def cmd_jitter(args):
    """How far does a distance move when the landmarks move by a tiny, sub-pixel amount
    (what two correct float front ends may differ by)?  Each face's landmarks get
    uniform noise in [-a, a] px (--amplitude), the chip is cut again and embedded; for
    every pair of faces, |distance(jittered) - distance(original)|.  SFace int8 through
    XNNPACK (the device), the dlib int8 encoder, and with --onnx SFace in float32."""
    from edge.embed import Embedder

    paths = [sorted(d.glob("*.jpg"))[0] for d in sorted(args.lfw.iterdir())[args.skip: args.skip + args.count]]
    rng = np.random.default_rng(args.seed)
    images = [read_image(p) for p in paths]
    print(f"{len(paths)} LFW images (people {args.skip}..{args.skip + args.count - 1} in name order), "
          f"{args.rounds} jitters of +-{args.amplitude} px each")
    # the liveness model (float32): the detector box jittered by +-box_amplitude px
    live = Liveness(load_card(models_dir() / "facelatch_liveness.json"))
    finder = FaceFinder(Aligner.from_card(load_card(models_dir() / f"{ENCODERS[0]}.json")))
    faces = [(im, f[0]) for im in images if (f := finder.detect(im))]
    base = np.array([live.score(im, f) for im, f in faces])
    moved = np.concatenate([np.abs(np.array([
        live.score(im, __import__("dataclasses").replace(f, box=np.asarray(f.box, np.float64)
                                                         + rng.uniform(-args.box_amplitude, args.box_amplitude, 4)))
        for im, f in faces]) - base) for _ in range(args.rounds)])
    print(f"  {'facelatch_liveness P(live), box +-' + str(args.box_amplitude) + ' px':<40} change median {np.median(moved):.2e} "
          f"p99 {np.percentile(moved, 99):.5f} max {moved.max():.5f} ({len(moved)}; "
          f"{np.mean(moved > 0) * 100:.0f} % changed at all)", flush=True)
    for name in () if args.only_liveness else ENCODERS:
        card = load_card(models_dir() / f"{name}.json")
        finder, embedder = FaceFinder(Aligner.from_card(card)), Embedder(card)
        found = [(im, r) for im, r in ((im, (finder.find(im) or [None])[0]) for im in images) if r is not None]
        encoders = {f"{name} (XNNPACK)": lambda chips: np.stack([embedder.embed(c) for c in chips])}
        if args.onnx and name == "facelatch_sface_int8":
            encoders["facelatch_sface float32 (onnxruntime)"] = lambda chips: embeddings(
                float_reference(args.onnx, chips), np.zeros(2))
        noise = [rng.uniform(-args.amplitude, args.amplitude, (len(found),) + found[0][1].landmarks.shape)
                 for _ in range(args.rounds)]
        for label, encode in encoders.items():
            base = encode([finder.aligner.chip(im, r.landmarks) for im, r in found])
            d0, moved, selfd = pair_distances(base), [], []
            for n in noise:
                e = encode([finder.aligner.chip(im, r.landmarks + n[i]) for i, (im, r) in enumerate(found)])
                moved.append(np.abs(pair_distances(e) - d0))
                selfd.append(1.0 - np.sum(e * base, axis=1))
            moved, selfd = np.concatenate(moved), np.concatenate(selfd)
            print(f"  {label:<40} pair-distance change median {np.median(moved):.5f} p99 {np.percentile(moved, 99):.5f} "
                  f"p99.9 {np.percentile(moved, 99.9):.5f} max {moved.max():.5f} ({len(moved)}); "
                  f"same face jittered vs not: median {np.median(selfd):.5f} max {selfd.max():.5f}", flush=True)


def cmd_chip_distances(args):
    """Two machines' own chips (same images), both embedded HERE with XNNPACK (its int8
    kernels give bit-identical outputs on x86-64 and arm64, see `compare`), so the
    difference is the front end's alone: per pair of images, |distance A - distance B|."""
    from edge.embed import Embedder

    a, b = np.load(args.a), np.load(args.b)
    n = min(len(a["names"]), len(b["names"]))
    print(f"A = {args.a} ({a['machine']}), B = {args.b} ({b['machine']}), {n} images")
    for name in ENCODERS:
        emb = Embedder(load_card(models_dir() / f"{name}.json"))
        encoders = {f"{name} (XNNPACK)": lambda chips: np.stack([emb.embed(c) for c in chips])}
        if args.onnx and name == "facelatch_sface_int8":
            encoders["facelatch_sface float32 (onnxruntime)"] = lambda chips: embeddings(
                float_reference(args.onnx, chips), np.zeros(2))
        for label, encode in encoders.items():
            ea, eb = encode(a[f"{name}/chips"][:n]), encode(b[f"{name}/chips"][:n])
            dd = np.abs(pair_distances(ea) - pair_distances(eb))
            print(f"  {label:<40} pair-distance difference median {np.median(dd):.5f} p99 {np.percentile(dd, 99):.5f} "
                  f"max {dd.max():.5f} ({len(dd)} pairs); same image A vs B: max {(1 - np.sum(ea * eb, axis=1)).max():.5f}")


def cmd_compare_chips(args):
    """Stage by stage on two machines' own `chips` files: decoded pixels, box, landmarks, chip."""
    a, b = np.load(args.a), np.load(args.b)
    print(f"A = {args.a} ({a['machine']}), B = {args.b} ({b['machine']})")
    if "live_score" in a.files and "live_score" in b.files:
        print(f"liveness P(live), {len(a['live_score'])} faces: max difference "
              f"{np.nanmax(np.abs(a['live_score'] - b['live_score'])):.2e}")
    for name in ENCODERS:
        print(f"{name} alignment:")
        for i, n in enumerate(a["names"]):
            same_img = a["image_sha256"][i] == b["image_sha256"][i]
            box = np.abs(a[f"{name}/boxes"][i] - b[f"{name}/boxes"][i]).max()
            lm = np.abs(a[f"{name}/landmarks"][i].astype(np.float64) - b[f"{name}/landmarks"][i]).max()
            ca, cb = a[f"{name}/chips"][i].astype(int), b[f"{name}/chips"][i].astype(int)
            print(f"  {n:<22} decoded pixels {'equal' if same_img else 'DIFFER'}; box max diff {box:.2e} px; "
                  f"landmarks max diff {lm:.2e} px; chip values differing {100 * np.mean(ca != cb):5.2f} % "
                  f"(max {np.abs(ca - cb).max()})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("chips")
    s.add_argument("out", type=Path)
    s.add_argument("--lfw", type=Path)
    s.add_argument("--count", type=int, default=40)
    s.set_defaults(func=cmd_chips)
    s = sub.add_parser("embed")
    s.add_argument("chips", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    s.add_argument("--limit", type=int, default=None, help="only the first N chips")
    s.add_argument("--slow-limit", type=int, default=None,
                   help="only the first N chips through the builtin and reference kernels (slow under emulation)")
    s.set_defaults(func=cmd_embed)
    s = sub.add_parser("compare")
    s.add_argument("a", type=Path)
    s.add_argument("b", type=Path)
    s.add_argument("--chips", type=Path, help="the chips file (needed for --onnx)")
    s.add_argument("--onnx", type=Path, help="SFace ONNX: also compare int8 with float")
    s.set_defaults(func=cmd_compare)
    s = sub.add_parser("jitter")
    s.add_argument("lfw", type=Path)
    s.add_argument("--count", type=int, default=60)
    s.add_argument("--skip", type=int, default=1000, help="start at this person (name order)")
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--amplitude", type=float, default=0.05, help="landmark noise, px")
    s.add_argument("--box-amplitude", type=float, default=0.01, help="detector box noise for liveness, px")
    s.add_argument("--only-liveness", action="store_true")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--onnx", type=Path)
    s.set_defaults(func=cmd_jitter)
    s = sub.add_parser("chip-distances")
    s.add_argument("a", type=Path)
    s.add_argument("b", type=Path)
    s.add_argument("--onnx", type=Path)
    s.set_defaults(func=cmd_chip_distances)
    s = sub.add_parser("compare-chips")
    s.add_argument("a", type=Path)
    s.add_argument("b", type=Path)
    s.set_defaults(func=cmd_compare_chips)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
