import json

import numpy as np
import pytest

from edge.decision import Matcher, distance
from edge.errors import FacelatchError
from edge.modelcard import load_card, models_dir


def test_distances():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert distance(a, b, "euclidean") == pytest.approx(np.sqrt(5))
    assert distance(a, b, "cosine") == pytest.approx(1.0)
    assert distance(a, 3 * a, "cosine") == pytest.approx(0.0)


def test_match_is_distance_at_most_threshold():
    m = Matcher(np.array([1.0, 0.0]), "cosine", threshold=0.1, fmr=1e-4)
    assert m.compare(np.array([1.0, 0.1])).is_match
    assert not m.compare(np.array([0.0, 1.0])).is_match


def test_card_thresholds_cover_door_fmrs_and_tighten():
    card = load_card(models_dir() / "facelatch_dlib_resnet_int8.json", kind="encoder")
    t3, t4 = card.threshold(1e-3), card.threshold(1e-4)
    assert 0 < t4 < t3  # a lower FMR means a stricter threshold
    assert card.threshold(5e-4) == t4  # between entries: the stricter one
    with pytest.raises(FacelatchError, match="no threshold"):
        card.threshold(1e-7)


def test_card_with_wrong_sha_is_refused(tmp_path):
    src = models_dir() / "face_landmark.json"
    (tmp_path / "face_landmark.tflite").write_bytes(b"not the model")
    (tmp_path / "face_landmark.json").write_text(src.read_text())
    with pytest.raises(FacelatchError, match="does not match its card"):
        load_card(tmp_path / "face_landmark.json")


def test_every_shipped_card_matches_its_model():
    cards = sorted(models_dir().glob("*.json"))
    assert len(cards) >= 4
    for c in cards:
        card = load_card(c)
        assert card.kind in {"encoder", "fusion", "detector", "landmarks", "liveness"}
        assert json.loads(c.read_text())["provenance"]


def test_household_fmr_divides_the_target_by_the_household():
    from edge.decision import household_fmr

    assert household_fmr(1e-4, 1) == 1e-4 and household_fmr(1e-4, 5) == pytest.approx(2e-5)
    assert household_fmr(1e-4, 0) == 1e-4


@pytest.mark.parametrize("encoder", ["facelatch_dlib_resnet_int8", "facelatch_sface_int8", "facelatch_fusion_int8"])
def test_card_covers_households_up_to_20_at_the_default(encoder):
    from edge.decision import DEFAULT_FMR, household_fmr

    card = load_card(models_dir() / f"{encoder}.json", kind=("encoder", "fusion"))
    thresholds = [card.threshold(household_fmr(DEFAULT_FMR, n)) for n in (1, 2, 5, 10, 20)]
    assert thresholds == sorted(thresholds, reverse=True) and len(set(thresholds)) == 5
    with pytest.raises(FacelatchError, match="no threshold"):
        card.threshold(household_fmr(DEFAULT_FMR, 21))


def _unit(*v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def test_identify_nearest_within_threshold_else_unknown():
    from edge.decision import Identifier

    ident = Identifier(["alice", "bob"], np.stack([_unit(1, 0, 0), _unit(0, 1, 0)]), "cosine", 0.05, 1e-4)
    m = ident.identify(_unit(1, 0.1, 0))
    assert m.person == "alice" and m.is_match and m.distance < 0.05 and m.runner_up > 0.5 and not m.ambiguous
    m = ident.identify(_unit(0, 0, 1))  # a stranger: far from both
    assert m.person is None and m.nearest in ("alice", "bob") and not m.is_match and not m.ambiguous


def test_a_probe_close_to_two_people_is_refused_not_guessed():
    from edge.decision import Identifier

    twins = np.stack([_unit(1, 0.05, 0), _unit(1, -0.05, 0), _unit(0, 0, 1)])
    ident = Identifier(["ann", "anna", "carl"], twins, "cosine", 0.05, 1e-4)
    m = ident.identify(_unit(1, 0.01, 0))  # within the threshold of ann AND anna
    assert m.person is None and m.ambiguous and m.nearest == "ann" and m.runner_up <= 0.05
    assert ident.identify(_unit(1, 0.6, 0)).person is None  # nearer ann, but outside the threshold
    assert ident.identify(_unit(0, 0.01, 1)).person == "carl"


def test_identifier_batch_rule_equals_the_single_probe_rule():
    from edge.decision import Identifier

    rng = np.random.default_rng(0)
    refs = rng.normal(size=(5, 16))
    probes = refs[rng.integers(0, 5, 300)] + rng.normal(scale=0.3, size=(300, 16))
    ident = Identifier(list("abcde"), refs, "cosine", 0.06, 1e-4)
    d = np.stack([ident.distances(p) for p in probes])
    _, chosen, amb = Identifier.decide(d, 0.06)
    singles = [ident.identify(p) for p in probes]
    assert [s.person for s in singles] == [("abcde"[c] if c >= 0 else None) for c in chosen]
    assert [s.ambiguous for s in singles] == list(amb) and 0 < np.sum(chosen >= 0) < 300


@pytest.mark.parametrize("encoder", ["facelatch_dlib_resnet_int8", "facelatch_sface_int8", "facelatch_fusion_int8"])
def test_card_rows_hold_on_every_fit_source_at_the_upper_bound(encoder):
    """The method the card states (convert.metrics.strictest_threshold): each row's
    impostor counts, per fit source, keep the exact 95 % upper bound at or below the row,
    and the row is tighter as the FMR is lower."""
    from convert.metrics import THRESHOLDS_METHOD, fmr_upper_bound

    card = load_card(models_dir() / f"{encoder}.json")
    assert card.data["thresholds_method"] == THRESHOLDS_METHOD
    rows = card.thresholds()
    assert [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)
    for r in rows:
        assert r["binding_source"] in r["per_source"] and len(r["per_source"]) >= 2
        assert sum(s["impostor_pairs"] for s in r["per_source"].values()) == r["impostor_pairs"]
        for s in r["per_source"].values():
            assert fmr_upper_bound(s["impostors_at_or_below"], s["impostor_pairs"]) <= r["fmr"] * (1 + 1e-3)
