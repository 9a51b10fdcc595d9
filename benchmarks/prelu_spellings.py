"""What PReLU costs one MiniFASNet member in int8 on this CPU (LiteRT + XNNPACK, one thread),
per spelling: PRELU (float only: XNNPACK has no int8 PRELU), z + relu((a - 1) z) (exact; what
``import-minifasnet --int8`` writes), and, for timing only (not the network), the 1x1 depthwise
alone, one scalar LeakyReLU and plain ReLU fused into the convolutions.

    python benchmarks/prelu_spellings.py [--pth ../shared/weights/minifasnet/2.7_80x80_MiniFASNetV2.pth]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def variants():
    """name -> a stand-in for keras.layers.PReLU (None: the real one) and whether int8."""
    import tensorflow as tf
    from keras import layers

    class Stand(layers.Layer):
        def __init__(self, shared_axes=None, name=None):
            super().__init__(name=name)

        def set_weights(self, w):
            pass

    class DepthwiseOnly(Stand):
        def build(self, shape):
            self.dw = layers.DepthwiseConv2D(1, use_bias=False, activation="relu")

        def call(self, x):
            return self.dw(x)

    class Leaky(Stand):
        def call(self, x):
            return tf.nn.leaky_relu(x, 0.2)

    class Relu(Stand):
        def call(self, x):
            return tf.nn.relu(x)

    return {"PRELU, float": ("prelu", None, False), "z + relu((a-1) z), float": ("dwrelu", None, False),
            "z + relu((a-1) z), int8 (exact)": ("dwrelu", None, True),
            "1x1 depthwise + ReLU only, int8 (timing only)": ("prelu", DepthwiseOnly, True),
            "one LeakyReLU(0.2), int8 (timing only)": ("prelu", Leaky, True),
            "ReLU, int8 (timing only)": ("prelu", Relu, True)}


def main():
    import keras
    from keras import layers

    from convert import minifasnet
    from convert.quantize import to_tflite
    from edge.runtime import TFLiteModel

    ap = argparse.ArgumentParser()
    ap.add_argument("--pth", default=str(ROOT.parent / "shared/weights/minifasnet/2.7_80x80_MiniFASNetV2.pth"))
    ap.add_argument("--runs", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    calibration = rng.integers(0, 256, (50, 80, 80, 3)).astype(np.float32)
    real_prelu, models = layers.PReLU, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (spelling, stand, int8)) in enumerate(variants().items()):
            layers.PReLU = stand or real_prelu
            try:
                m = minifasnet.load(args.pth, 80, spelling)
            finally:
                layers.PReLU = real_prelu
            inp = keras.Input((80, 80, 3), batch_size=1)
            path = Path(tmp) / f"{i}.tflite"
            path.write_bytes(to_tflite(keras.Model(inp, m(inp)), calibration if int8 else None))
            models[name] = TFLiteModel(path)
        x = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
        times = {name: [] for name in models}
        for _ in range(5):  # alternated
            for name, t in models.items():
                px = t.pixels(x)
                for _ in range(args.runs // 5):
                    t0 = time.perf_counter()
                    t.run(px)
                    times[name].append(1000 * (time.perf_counter() - t0))
    print("| one member, one thread | median (ms) | partitions |\n|---|---|---|")
    for name, t in models.items():
        parts = sum(op.get("op_name") == "DELEGATE" for op in t.interpreter._get_ops_details())
        print(f"| {name} | {np.median(times[name]):.3f} | {parts} |")


if __name__ == "__main__":
    main()
