"""Float vs int8 embedding agreement on the same images (two `facelatch embed --json` outputs).

    python benchmarks/parity.py build/lfw_float.jsonl build/lfw_int8.jsonl
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convert.evaluate import load_embeddings  # noqa: E402


def main(float_jsonl, int8_jsonl):
    a, b = load_embeddings(Path(float_jsonl)), load_embeddings(Path(int8_jsonl))
    cos = np.array([x @ b[k] / (np.linalg.norm(x) * np.linalg.norm(b[k]))
                    for k, x in a.items() if x is not None and b.get(k) is not None])
    print(f"images: {len(cos)}; float-vs-int8 cosine median {np.median(cos):.5f}, "
          f"1st percentile {np.percentile(cos, 1):.5f}, min {cos.min():.5f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
