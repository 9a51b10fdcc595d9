"""Writing encoder model cards (the device reads them with edge.modelcard)."""

from __future__ import annotations

import json
from pathlib import Path

from edge.fileio import write_atomic
from edge.runtime import sha256_file


def write_json_atomic(path: Path, data: dict, mode: int = 0o644) -> None:
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), mode=mode)


def encoder_card(model_path: Path, name: str, alignment: dict, embedding: dict, provenance: dict,
                 quantization: str) -> dict:
    return {
        "kind": "encoder",
        "name": name,
        "sha256": sha256_file(model_path),
        "quantization": quantization,
        "input": {"size": alignment["chip_size"], "colour": "RGB", "layout": "NHWC, batch 1",
                  "dtype": "uint8" if quantization == "int8" else "float32",
                  "normalization": "none: raw pixels 0..255 (the encoder's own input scaling is inside the model)"},
        "alignment": alignment,
        "embedding": embedding,
        "thresholds": [],
        "provenance": provenance,
    }
