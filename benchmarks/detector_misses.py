"""How many LFW pair images each detector alone finds no face in, and its speed.

    python benchmarks/detector_misses.py ../shared/data/lfw
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convert.lfw import read_pairs  # noqa: E402
from edge.detect import Detector  # noqa: E402
from edge.modelcard import load_card, models_dir  # noqa: E402
from edge.pipeline import read_image  # noqa: E402


def main(lfw):
    lfw = Path(lfw)
    images = sorted({p for pair in read_pairs(lfw / "pairs.txt") for p in (pair.a, pair.b)})
    rgbs = [read_image(lfw / "images" / p) for p in images]
    for name in ("face_detection_short_range", "face_detection_full_range"):
        det = Detector(load_card(models_dir() / f"{name}.json"))
        t0 = time.perf_counter()
        misses = sum(1 for rgb in rgbs if not det.detect(rgb))
        ms = 1000 * (time.perf_counter() - t0) / len(rgbs)
        print(f"{name}: no face in {misses} of {len(rgbs)} images; {ms:.2f} ms/image (one core)")


if __name__ == "__main__":
    main(sys.argv[1])
