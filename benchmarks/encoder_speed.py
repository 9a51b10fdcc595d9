"""One embedding's latency per .tflite encoder, one thread, interleaved runs (so that
load on a shared machine hits every model alike), plus the model's op histogram.

    python benchmarks/encoder_speed.py models/facelatch_sface_int8.tflite \
        models/facelatch_dlib_resnet_int8.tflite [more.tflite ...] [--runs 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.runtime import TFLiteModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    models, inputs, times = [], [], []
    for p in args.models:
        m = TFLiteModel(p, args.threads)
        chip = rng.integers(0, 256, m.input_shape[1:], dtype=np.uint8)
        x = m.pixels(chip)
        for _ in range(10):
            m.run(x)
        models.append(m)
        inputs.append(x)
        times.append([])
    for _ in range(args.runs):
        for m, x, t in zip(models, inputs, times):
            t0 = time.perf_counter()
            m.run(x)
            t.append(time.perf_counter() - t0)
    print(f"| model | size MB | median ms | 10th pct ms | min ms | ops |\n|---|---|---|---|---|---|")
    for p, m, t in zip(args.models, models, times):
        ops = Counter(o["op_name"] for o in m.interpreter._get_ops_details())
        t = 1000 * np.array(t)
        print(f"| {p.name} | {p.stat().st_size / 1e6:.1f} | {np.median(t):.2f} | {np.percentile(t, 10):.2f} | "
              f"{t.min():.2f} | {', '.join(f'{k} {v}' for k, v in ops.most_common())} |")


if __name__ == "__main__":
    main()
