"""Writing encoder model cards (the device reads them with edge.modelcard)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from edge.runtime import sha256_file


def write_json_atomic(path: Path, data: dict, mode: int = 0o644) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def encoder_card(model_path: Path, name: str, alignment: dict, embedding: dict, provenance: dict,
                 quantization: str) -> dict:
    return {
        "kind": "encoder",
        "name": name,
        "sha256": sha256_file(model_path),
        "quantization": quantization,
        "input": {"size": alignment["chip_size"], "colour": "RGB", "layout": "NHWC, batch 1",
                  "dtype": "uint8" if quantization == "int8" else "float32",
                  "normalization": "none: raw pixels 0..255 (dlib's (x - mean) / 256 is folded into the first convolution)"},
        "alignment": alignment,
        "embedding": embedding,
        "thresholds": [],
        "provenance": provenance,
    }
