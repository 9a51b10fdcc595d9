"""The device's face pipeline, wired from the model cards: detect -> landmarks ->
align -> embed.  Each stage is its own object; this class only connects them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .align import Aligner
from .detect import Detector, Face
from .fusion import encoder_stages
from .images import read_image  # noqa: F401  (re-exported: edge.pipeline.read_image)
from .landmarks import FaceMesh
from .liveness import Liveness
from .modelcard import ENCODER_KINDS, load_card, models_dir
from .quality import Quality, QualityGate

DEFAULT_ENCODER = "facelatch_sface_int8"
DEFAULT_LIVENESS = "facelatch_liveness"


@dataclass
class FaceResult:
    face: Face
    landmarks: np.ndarray | None = None
    chip: np.ndarray | None = None
    embedding: np.ndarray | None = None
    live_score: float | None = None  # P(live); None when liveness is off
    live_patch: np.ndarray | None = None  # what the liveness model saw
    quality: Quality | None = None  # None when the encoder card has no quality limits (or the gate is off)
    first_look: np.ndarray | None = None  # set while ``embedding`` is a first look only (edge.secondlook)


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over calls (for benchmarks)."""

    detect: float = 0.0
    landmarks: float = 0.0
    align: float = 0.0
    liveness: float = 0.0
    embed: float = 0.0
    calls: int = 0

    def as_ms(self) -> dict:
        n = max(self.calls, 1)
        return {k: 1000 * getattr(self, k) / n for k in ("detect", "landmarks", "align", "liveness", "embed")}


class FaceFinder:
    """Detect -> landmarks -> chip, without the encoder (what calibration and
    training-data preparation share with the device).

    Detection uses the short-range BlazeFace model and, when it finds nothing and
    ``full_range_fallback`` is on, the full-range one (small or distant faces, group
    photos).  The fallback costs ~5 ms on every empty frame (x86), so the door daemon
    leaves it off by default (it ignores small faces anyway)."""

    def __init__(self, aligner: Aligner, threads: int = 1, models: Path | None = None,
                 full_range_fallback: bool = True):
        models = Path(models) if models else models_dir()
        names = ["face_detection_short_range"] + (["face_detection_full_range"] if full_range_fallback else [])
        self.detectors = [Detector(load_card(models / f"{n}.json", kind="detector"), threads) for n in names]
        self.mesh = FaceMesh(load_card(models / "face_landmark.json", kind="landmarks"), threads)
        self.aligner = aligner
        self.times = StageTimes()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        for detector in self.detectors:
            faces = detector.detect(rgb)
            if faces:
                return faces
        return []

    def find(self, rgb: np.ndarray, chips: str = "largest") -> list[FaceResult]:
        """All faces, largest first; ``chips``: "largest", "all" or "none" say which
        get landmarks and a chip."""
        t0 = time.perf_counter()
        results = [FaceResult(f) for f in self.detect(rgb)]
        self.times.detect += time.perf_counter() - t0
        self.times.calls += 1
        for r in results if chips == "all" else results[:1] if chips == "largest" else []:
            self.chip(rgb, r)
        return results

    def chip(self, rgb: np.ndarray, r: FaceResult) -> None:
        """Landmarks and the aligned chip of one found face (set on ``r``)."""
        t0 = time.perf_counter()
        r.landmarks, _ = self.mesh.landmarks(rgb, r.face)
        t1 = time.perf_counter()
        r.chip = self.aligner.chip(rgb, r.landmarks)
        self.times.landmarks += t1 - t0
        self.times.align += time.perf_counter() - t1


def _card_path(name: str | Path, models: Path) -> Path:
    p = Path(name)
    return p if p.suffix in (".json", ".tflite") else models / f"{name}.json"


class FacePipeline:
    """``analyze(rgb) -> [FaceResult]``, largest face first, the largest (or every)
    face embedded with the encoder named by its card and, unless ``liveness`` is
    None, scored by the liveness model.  When the card has quality limits, each
    embedded face also carries its ``quality`` (edge.quality); deciding callers
    (verify, the daemon) treat a face that fails them as "no decision"."""

    def __init__(self, encoder: str | Path = DEFAULT_ENCODER, threads: int = 1, models: Path | None = None,
                 liveness: str | Path | None = DEFAULT_LIVENESS, live_threshold: float | None = None,
                 full_range_fallback: bool = True, quality: bool = True):
        models = Path(models) if models else models_dir()
        self.encoder_card = load_card(_card_path(encoder, models), kind=ENCODER_KINDS)
        self.quality = QualityGate.from_card(self.encoder_card) if quality else None
        self.enrol_quality = QualityGate.from_card(self.encoder_card, enrolment=True) if quality else None
        aligner, self.embedder = encoder_stages(self.encoder_card, threads)
        self.finder = FaceFinder(aligner, threads, models, full_range_fallback)
        self.liveness = (Liveness(load_card(_card_path(liveness, models), kind="liveness"), threads, live_threshold)
                         if liveness else None)

    @property
    def times(self) -> StageTimes:
        return self.finder.times

    @property
    def model_sha256(self) -> str:
        return self.encoder_card.sha256

    def analyze(self, rgb: np.ndarray, embed: str = "largest", look: str = "full") -> list[FaceResult]:
        """``embed``: "largest", "all" or "none" (detection only; ``examine`` can
        follow).  ``look="first"``: see ``examine``."""
        results = self.finder.find(rgb, chips="none")
        for r in results if embed == "all" else results[:1] if embed == "largest" else []:
            self.examine(rgb, r, look)
        return results

    def examine(self, rgb: np.ndarray, r: FaceResult, look: str = "full", skip_poor: bool = False) -> FaceResult:
        """Landmarks, chip, quality, liveness and embedding of one found face (set on
        ``r``, returned).  ``look="first"``: embed the chip alone when the card
        averages it with its mirror; the caller completes the embedding
        (``complete``) where that can matter, see edge.secondlook.  ``skip_poor``: a
        face that fails the quality gate gets neither liveness nor an embedding (the
        door, which does not judge it anyway)."""
        self.finder.chip(rgb, r)
        if self.quality is not None:
            r.quality = self.quality.check(rgb, r.face.box, r.landmarks, r.chip, self.finder.aligner)
            if skip_poor and not r.quality.ok:
                return r
        t0 = time.perf_counter()
        if self.liveness is not None:
            r.live_patch = self.liveness.patch(rgb, r.face)
            r.live_score = self.liveness.score_patch(r.live_patch)
        t1 = time.perf_counter()
        if look == "first" and self.embedder.flip:
            r.first_look = self.embedder.first_look(r.chip)
            r.embedding = self.embedder.finish(r.first_look)
        else:
            r.embedding = self.embedder.embed(r.chip)
        self.times.liveness += t1 - t0
        self.times.embed += time.perf_counter() - t1
        return r

    def enrolment_quality(self, r: FaceResult) -> Quality | None:
        """The enrolment gate on an examined face (stricter than the door's on some
        measures: a template is compared with every later probe); None without a gate."""
        return self.enrol_quality.judge(r.quality.measures) if r.quality is not None else None

    def complete(self, r: FaceResult) -> None:
        """Turn a first-look face into the card's full (flip-averaged) embedding."""
        if r.first_look is not None:
            t0 = time.perf_counter()
            r.embedding, r.first_look = self.embedder.embed(r.chip, first=r.first_look), None
            self.times.embed += time.perf_counter() - t0
