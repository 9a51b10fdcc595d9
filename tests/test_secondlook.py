"""The second look (edge.secondlook): judge the chip alone, add the mirror only near
the threshold -- and then the decision is exactly the full embedding's."""

import numpy as np
import pytest

from edge.decision import Identifier, distance, person_reference
from edge.pipeline import read_image
from edge.secondlook import SecondLook, second_look_band
from conftest import DEMO


@pytest.fixture(scope="module")
def enrolled_identifier(pipeline):
    """An Identifier for the enrolled demo person at a given threshold (embedded once)."""
    e = np.stack([pipeline.analyze(read_image(p))[0].embedding for p in sorted(DEMO.glob("enroll/*"))])
    reference = person_reference(e, "cosine")[None]
    return lambda threshold: Identifier(["obama"], reference, "cosine", threshold, 1e-4)


def test_first_look_completed_equals_the_full_embedding(pipeline):
    assert pipeline.embedder.flip
    chip = pipeline.analyze(read_image(DEMO / "probe" / "obama3.jpg"))[0].chip
    first = pipeline.embedder.first_look(chip)
    full = pipeline.embedder.embed(chip)
    np.testing.assert_array_equal(pipeline.embedder.embed(chip, first=first), full)
    # the first look alone is a different (unit) vector: the mirror does move it
    alone = pipeline.embedder.finish(first)
    assert abs(np.linalg.norm(alone) - 1) < 1e-5
    assert 1e-4 < distance(alone, full, "cosine") < second_look_band(pipeline.encoder_card)


def test_shipped_card_has_a_measured_band(pipeline):
    card = pipeline.encoder_card
    band = second_look_band(card)
    assert band is not None and 0 < band < card.threshold(1e-4)
    assert "held_out" in card.data["embedding"]["second_look"]


def test_clear_frames_take_one_look_and_near_ones_take_two(pipeline, enrolled_identifier):
    look = SecondLook(pipeline)
    band = look.band
    for probe in ("obama3.jpg", "biden.jpg"):
        full = pipeline.analyze(read_image(DEMO / "probe" / probe))[0]
        face = pipeline.analyze(read_image(DEMO / "probe" / probe), look="first")[0]
        assert face.first_look is not None
        d_first = float(enrolled_identifier(0.5).distances(face.embedding)[0])
        # threshold far from the first look's distance: decided on the first look alone
        far = enrolled_identifier(d_first + band + 0.05)
        m = look.identify(face, far)
        assert face.first_look is not None and m.is_match
        # threshold within the band: the mirror is added, and the answer is the full embedding's
        near = enrolled_identifier(d_first + band / 2)
        m = look.identify(face, near)
        assert face.first_look is None
        np.testing.assert_array_equal(face.embedding, full.embedding)
        assert m.distance == near.identify(full.embedding).distance


def test_without_a_band_every_face_gets_both_looks(pipeline, enrolled_identifier):
    look = SecondLook(pipeline)
    look.band = None
    face = pipeline.analyze(read_image(DEMO / "probe" / "biden.jpg"), look="first")[0]
    look.identify(face, enrolled_identifier(0.01))
    assert face.first_look is None
