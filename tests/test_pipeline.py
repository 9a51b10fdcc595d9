"""The device pipeline on real faces (bundled PyPI images)."""

import itertools

import numpy as np
import pytest

from edge.decision import distance
from edge.pipeline import read_image
from conftest import DEMO, FIXTURES

OBAMA = [DEMO / "enroll/obama.jpg", DEMO / "enroll/obama2.jpg", DEMO / "probe/obama3.jpg"]
OTHERS = [DEMO / "probe/biden.jpg", DEMO / "probe/tom_hanks.png", DEMO / "probe/astronaut.jpg"]


def embed(pipeline, path):
    found = pipeline.analyze(read_image(path))
    assert len(found) == 1, f"{path.name}: {len(found)} faces"
    return found[0]


def test_single_faces_are_found_with_plausible_boxes(pipeline):
    for path in OBAMA + OTHERS:
        f = embed(pipeline, path).face
        h, w = read_image(path).shape[:2]
        x, y, bw, bh = f.box
        assert f.score > 0.5
        assert 0.05 * min(h, w) < bw < min(h, w) and -bw / 2 < x < w and -bh / 2 < y < h


def test_group_photo_has_several_faces(pipeline):
    found = pipeline.analyze(read_image(DEMO / "probe/group_photo.jpg"), embed="all")
    assert len(found) == 6  # six people at the table
    boxes = np.array([r.face.box for r in found])
    assert all(r.embedding is not None for r in found)
    # no two detections of the same face
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    assert min(np.linalg.norm(a - b) for a, b in itertools.combinations(centres, 2)) > 50


def test_chip_is_the_encoder_chip_with_eyes_where_the_template_says(pipeline):
    r = embed(pipeline, OBAMA[0])
    size = pipeline.encoder_card.data["input"]["size"]
    assert r.chip.shape == (size, size, 3) and r.chip.dtype == np.uint8
    m = pipeline.finder.aligner.transform(r.landmarks)
    eyes = r.landmarks[[33, 133, 362, 263]] @ m[:, :2].T + m[:, 2]
    assert np.abs(eyes - pipeline.finder.aligner.template[:4]).max() < 8


def test_int8_encoder_separates_the_fixture_identities(pipeline):
    card = pipeline.encoder_card
    metric = card.data["embedding"]["metric"]
    obama = [embed(pipeline, p).embedding for p in OBAMA]
    others = [embed(pipeline, p).embedding for p in OTHERS]
    genuine = [distance(a, b, metric) for a, b in itertools.combinations(obama, 2)]
    impostor = [distance(a, b, metric) for a in obama for b in others]
    impostor += [distance(a, b, metric) for a, b in itertools.combinations(others, 2)]
    assert max(genuine) < min(impostor)
    threshold = card.threshold(1e-3)
    assert max(genuine) <= threshold < min(impostor)


def test_partial_face_still_matches_at_a_loose_fmr(pipeline):
    """Half a face is found and is still closer to Obama than to Biden (a hard case)."""
    card = pipeline.encoder_card
    metric = card.data["embedding"]["metric"]
    e = embed(pipeline, FIXTURES / "obama_partial_face.jpg").embedding
    ref = embed(pipeline, OBAMA[0]).embedding
    biden = embed(pipeline, OTHERS[0]).embedding
    assert distance(e, ref, metric) < distance(e, biden, metric)


def test_embedding_is_deterministic_and_normalized(pipeline):
    a = embed(pipeline, OBAMA[0]).embedding
    b = embed(pipeline, OBAMA[0]).embedding
    assert np.array_equal(a, b)
    assert a.shape == (128,)
    if pipeline.encoder_card.data["embedding"].get("normalize"):
        assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)


def test_read_image_gives_the_pixels_of_a_bgr_decode_then_cvtcolor(tmp_path):
    """read_image decodes straight to RGB where OpenCV can: the same pixels, every format."""
    import cv2

    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    written = [DEMO / "enroll" / "obama.jpg"]
    for ext in (".png", ".bmp", ".webp", ".tiff", ".jpg"):
        for name, pixels in (("colour", img), ("grey", img[:, :, 0])):
            written.append(tmp_path / f"{name}{ext}")
            cv2.imwrite(str(written[-1]), pixels)
    written.append(tmp_path / "alpha.png")
    cv2.imwrite(str(written[-1]), np.dstack([img, img[:, :, :1]]))
    for path in written:
        want = cv2.cvtColor(cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(read_image(path), want), path.name
