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


def fused_card(name: str, members: list, weight_chosen_on: str) -> dict:
    """A fused encoder's card (edge.fusion): no model of its own; ``members`` is a list of
    (member ModelCard, weight) in order.  Thresholds, evaluation and quality limits are
    measured afterwards (benchmarks/encoder_report.py --write-card)."""
    from edge.modelcard import fusion_identity

    listed = [{"name": c.data["name"], "sha256": c.sha256, "weight": w} for c, w in members]
    dims = [int(c.data["embedding"]["dim"]) for c, _ in members]
    return {
        "kind": "fusion",
        "name": name,
        "sha256": fusion_identity(listed),
        "sha256_is": "the sha256 of the members' names, model sha256s and weights (canonical JSON, "
                     "edge.modelcard.fusion_identity): what templates made with this fusion are bound to",
        "quantization": "+".join(sorted({c.data.get("quantization", "?") for c, _ in members})),
        "members": listed,
        "embedding": {"dim": sum(dims), "metric": "cosine", "normalize": True,
                      "flip_average": all(c.data["embedding"].get("flip_average", False) for c, _ in members),
                      "rule": "each member embeds its own chip (its card's alignment) and L2-normalizes it; the "
                              "fused embedding is [sqrt(w_1) e_1, sqrt(w_2) e_2, ...] (dims " +
                              " + ".join(map(str, dims)) + "), unit length, so its cosine distance is exactly "
                              "sum_i w_i * (member i's cosine distance) (edge.fusion)"},
        "thresholds": [],
        "provenance": {
            "model": "none of its own: score-level fusion of the member encoders below, run as they ship",
            "members": {c.data["name"]: c.data.get("provenance", {}) for c, _ in members},
            "weights": {"values": {c.data["name"]: w for c, w in members}, "chosen_on": weight_chosen_on},
        },
        "licence": "; ".join(f"{c.data['name']}: {c.data.get('licence') or c.data.get('provenance', {}).get('weights_licence', 'see its card')}"
                             for c, _ in members),
    }
