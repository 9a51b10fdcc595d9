"""Cost of a frame with nobody in it (the door's usual view), with and without the
full-range detector fallback.

    python benchmarks/empty_frame.py
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edge.bench import compose  # noqa: E402
from edge.pipeline import FacePipeline  # noqa: E402

frame = compose()
for fallback in (True, False):
    pipe = FacePipeline(full_range_fallback=fallback)
    for _ in range(20):
        pipe.analyze(frame)
    t0 = time.perf_counter()
    for _ in range(300):
        pipe.analyze(frame)
    print(f"full-range fallback {'on ' if fallback else 'off'}: {(time.perf_counter() - t0) / 300 * 1000:.2f} ms "
          f"per empty 640x480 frame")
