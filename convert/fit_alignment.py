"""Fit the chip template: where our FaceMesh landmarks fall in a reference chip,
averaged over real faces.  Two references: dlib's own 150x150 face chip
(``get_face_chip_details(shape, 150, 0.25)``, for the dlib encoder) and the ArcFace
112x112 five-point crop (``arcface_reference``, for SFace).

Method: for each image, dlib's HOG detector + 5-point shape predictor give dlib's
chip; its chip->image similarity is rebuilt from the chip details (rect corners
rotated by ``angle``, as dlib's ``extract_image_chips`` does) and inverted; our
detector + FaceMesh landmarks are mapped through it into chip pixels; the template
is the mean of those points.  Needs ``dlib`` (``pip install dlib-bin``) and the 5-point
model; used once at conversion time, never on the device.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np

from edge.detect import Detector
from edge.geometry import apply_affine, invert_affine, similarity_transform
from edge.landmarks import FaceMesh
from edge.modelcard import load_card, models_dir
from edge.pipeline import read_image

# FaceMesh indices: eye corners (33, 133 | 362, 263), nose tip (1), mouth corners (61, 291)
LANDMARKS = [33, 133, 362, 263, 1, 61, 291]


def dlib_image_to_chip(chip_details) -> np.ndarray:
    """2x3 affine from image pixels to dlib chip pixels for a dlib ``chip_details``."""
    r, angle = chip_details.rect, chip_details.angle
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    c, s = math.cos(angle), math.sin(angle)

    def rotate(p):
        v = np.asarray(p, float) - centre
        return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]]) + centre

    corners_chip = np.array([[0, 0], [chip_details.cols - 1, 0], [0, chip_details.rows - 1]], float)
    corners_image = np.array([rotate((r.left(), r.top())), rotate((r.right(), r.top())),
                              rotate((r.left(), r.bottom()))])
    return invert_affine(similarity_transform(corners_chip, corners_image))


def fit(images: list[Path], shape_predictor: Path, size: int = 150, padding: float = 0.25, log=print,
        landmarks: list[int] = LANDMARKS) -> dict:
    """The dlib chip: dlib's HOG detector + 5-point predictor + ``get_face_chip_details``."""
    import dlib

    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(shape_predictor))

    def to_chip(rgb):
        dets = hog(rgb, 1)
        if len(dets) != 1:
            return None
        return dlib_image_to_chip(dlib.get_face_chip_details(sp(rgb, dets[0]), size, padding))

    return fit_to_reference(images, to_chip, size, log, landmarks)


# The ArcFace / InsightFace 112x112 five-point template (eye centres, nose tip, mouth
# corners), the crop SFace and other ArcFace-style encoders were trained on.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]])


def arcface_reference(yunet: Path):
    """image -> (2x3 image-to-chip transform | None): OpenCV's YuNet five points warped
    onto the ArcFace template by a least-squares similarity, as
    ``cv2.FaceRecognizerSF.alignCrop`` does."""
    import cv2

    det = cv2.FaceDetectorYN.create(str(yunet), "", (320, 320), 0.6, 0.3, 5000)

    def to_chip(rgb):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        det.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = det.detect(bgr)
        if faces is None or len(faces) != 1:
            return None
        return similarity_transform(faces[0, 4:14].reshape(5, 2).astype(np.float64), ARCFACE_112)

    return to_chip


def fit_to_reference(images: list[Path], to_chip, size: int, log=print, landmarks: list[int] = LANDMARKS) -> dict:
    """Mean chip position of our FaceMesh ``landmarks`` over the images where the
    reference ``to_chip(rgb)`` (image -> chip 2x3 transform, None to skip) and our
    detector both find one face."""
    models = models_dir()
    detector = Detector(load_card(models / "face_detection_short_range.json"))
    mesh = FaceMesh(load_card(models / "face_landmark.json"))
    points = []
    for path in images:
        rgb = read_image(path)
        ours = detector.detect(rgb)
        m = to_chip(rgb) if ours else None
        if m is None:
            continue
        mesh_points, _ = mesh.landmarks(rgb, ours[0])
        points.append(apply_affine(m, mesh_points[landmarks]))
    points = np.array(points)
    template = points.mean(0)
    rms = float(np.sqrt(((points - template) ** 2).sum(-1).mean()))
    log(f"fitted on {len(points)} faces; RMS distance of a face's points from the template: {rms:.2f} px")
    return {"landmarks": list(landmarks), "template": np.round(template, 3).tolist(), "chip_size": size,
            "fitted_on": len(points), "rms_px": round(rms, 3)}


def lfw_images_outside_protocols(lfw_root: Path, n: int, seed: int = 0) -> list[Path]:
    """Up to n LFW images of people who appear in none of the pair files."""
    from .lfw import people, read_pairs

    used = set()
    for name in ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt"):
        if (lfw_root / name).exists():
            used |= people(read_pairs(lfw_root / name))
    candidates = sorted(p for d in (lfw_root / "images").iterdir() if d.name not in used for p in d.glob("*.jpg"))
    random.Random(seed).shuffle(candidates)
    return candidates[:n]
