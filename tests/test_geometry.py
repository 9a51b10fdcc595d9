import numpy as np

from edge.geometry import apply_affine, invert_affine, iou, similarity_transform, ssd_anchors, weighted_nms


def test_blazeface_anchor_counts():
    assert len(ssd_anchors(128, [8, 16, 16, 16], [2, 2, 2, 2])) == 896
    assert len(ssd_anchors(192, [4], [1])) == 2304
    a = ssd_anchors(128, [8, 16, 16, 16], [2, 2, 2, 2])
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (7, 2))
    angle, scale, t = 0.3, 1.7, np.array([5.0, -3.0])
    r = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ r.T + t
    m = similarity_transform(src, dst)
    assert np.allclose(apply_affine(m, src), dst, atol=1e-9)
    assert np.allclose(apply_affine(invert_affine(m), dst), src, atol=1e-9)


def test_similarity_transform_never_reflects():
    src = np.array([[0, 0], [1, 0], [0, 1]], float)
    dst = src * [-1, 1]  # a mirror image
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_iou_and_blending_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert np.isclose(iou(boxes[0], boxes)[0], 1.0)
    assert iou(boxes[0], boxes)[2] == 0
    pts = np.zeros((3, 6, 2))
    kept = weighted_nms(boxes, pts, np.array([0.9, 0.6, 0.8]), 0.3)
    assert len(kept) == 2
    assert kept[0][2] == 0.9 and 0 < kept[0][0][0] < 1  # blended towards the second box
