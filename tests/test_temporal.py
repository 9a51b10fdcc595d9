"""Temporal cues: eye aspect ratio on real FaceMesh points, the blink rule, frame novelty."""

import numpy as np

from conftest import DEMO
from edge.temporal import LEFT_EYE, RIGHT_EYE, FrameNovelty, blinked, eye_aspect_ratio


def test_eye_aspect_ratio_of_a_real_open_eyed_face_and_of_closed_eyes():
    from edge.pipeline import FaceFinder, read_image

    finder = FaceFinder(None)
    rgb = read_image(DEMO / "probe/obama3.jpg")
    face = finder.find(rgb, chips="none")[0].face
    pts, _ = finder.mesh.landmarks(rgb, face)
    ear = eye_aspect_ratio(pts)
    assert 0.15 < ear < 0.5  # open eyes
    closed = pts.copy()
    for idx in (RIGHT_EYE, LEFT_EYE):  # lids onto the line between the corners
        mid = (closed[idx[0]] + closed[idx[3]]) / 2
        for i in idx[1:3] + idx[4:6]:
            closed[i] = mid + 0.1 * (closed[i] - mid)
    assert eye_aspect_ratio(closed) < 0.3 * ear


def test_blink_rule():
    assert blinked([0.3, 0.31, 0.12, 0.29, 0.3])
    assert not blinked([0.3, 0.31, 0.3, 0.29, 0.3])  # eyes open throughout
    assert not blinked([0.3, 0.3, 0.3, 0.3, 0.1])  # closed at the end, not reopened (yet)
    assert not blinked([0.05, 0.06, 0.02, 0.05])  # never open: no reference level
    assert not blinked([0.3, None, 0.1])  # too short


def test_frame_novelty():
    n = FrameNovelty()
    a = np.zeros((80, 80, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    assert n.fresh(a) and not n.fresh(a.copy()) and n.fresh(b) and n.fresh(a)
