"""Checks on real LFW pairs from ../shared (skipped when it is absent)."""

import pytest

from conftest import SHARED

LFW = SHARED / "data" / "lfw"
pytestmark = pytest.mark.skipif(not (LFW / "pairs.txt").exists(), reason="../shared/data/lfw not available")


def test_int8_pipeline_on_first_lfw_fold(pipeline):
    import numpy as np

    from convert.lfw import read_pairs
    from edge.decision import distance
    from edge.pipeline import read_image

    pairs = [p for p in read_pairs(LFW / "pairs.txt") if p.fold == 0][::3]  # 200 pairs of fold 1
    cache = {}

    def emb(rel):
        if rel not in cache:
            found = pipeline.analyze(read_image(LFW / "images" / rel))
            cache[rel] = found[0].embedding if found else None
        return cache[rel]

    metric = pipeline.encoder_card.data["embedding"]["metric"]
    t = pipeline.encoder_card.threshold(1e-2)
    correct = [(distance(emb(p.a), emb(p.b), metric) <= t) == p.same for p in pairs]
    assert all(emb(p.a) is not None for p in pairs)
    assert np.mean(correct) >= 0.95
