"""Presentation-attack data and measurement: the source builder on a small real git
repository, the leave-one-source-out arithmetic, and the MiniFASNet conversion
against the upstream weights (skipped without ../shared or PyTorch)."""

import importlib.util
import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import DEMO, ROOT, SHARED

from convert.pad_eval import apcer_bpcer, leave_one_source_out, multi_source_threshold, roc_auc, threshold_for_bpcer

MINIFAS = SHARED / "weights" / "minifasnet" / "2.7_80x80_MiniFASNetV2.pth"


def test_threshold_rule_and_rates():
    live = np.linspace(0.01, 1.0, 100)
    assert threshold_for_bpcer(live, 0.01) == live[1]  # rejects exactly one of 100
    assert apcer_bpcer(live, np.array([0.0, 0.5, 0.99]), live[1]) == (2 / 3, 0.01)
    assert roc_auc([2, 3], [0, 1]) == 1.0 and roc_auc([0], [1]) == 0.0 and roc_auc([1], [1]) == 0.5


def test_leave_one_source_out_never_looks_at_the_test_source_or_at_attacks():
    rng = np.random.default_rng(0)
    source = np.repeat(["a", "b", "c"], 200)
    live = np.tile(np.r_[np.ones(100, bool), np.zeros(100, bool)], 3)
    scores = np.where(live, rng.uniform(0.5, 1.0, 600), rng.uniform(0.0, 0.6, 600))
    scores[(source == "c") & live] = rng.uniform(0.2, 0.3, 100)  # a camera whose live faces score low
    table = leave_one_source_out(scores, live, source, ["a", "b", "c"], 0.01)
    assert table["c"]["bpcer"] == 1.0  # judged at a threshold fixed on a and b only
    assert table["a"]["threshold"] == multi_source_threshold(scores, live, source, ["b", "c"], 0.01) < 0.3
    moved = scores.copy()
    moved[(source == "a") & ~live] = 0.99  # attacks never move a threshold
    assert leave_one_source_out(moved, live, source, ["a", "b", "c"], 0.01)["b"]["threshold"] == table["b"]["threshold"]


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_sources_are_unpacked_by_folder_label_with_exact_duplicates_dropped(tmp_path, monkeypatch):
    from convert import pad_data

    mirrors = tmp_path / "mirrors"
    repo = mirrors / "someone+webcam" / "repo"
    (repo / "Dataset" / "Real").mkdir(parents=True)
    (repo / "Dataset" / "Fake").mkdir(parents=True)
    a, b = (DEMO / "probe/obama3.jpg").read_bytes(), (DEMO / "probe/biden.jpg").read_bytes()
    (repo / "Dataset/Real/17000000002.jpg").write_bytes(a)
    (repo / "Dataset/Real/17000000001.jpg").write_bytes(b)
    (repo / "Dataset/Real/17000000001.txt").write_text("1 0.5 0.5 0.2 0.2")  # YOLO label: ignored
    (repo / "Dataset/Fake/17000000003.jpg").write_bytes(a)  # same blob as a live frame: dropped
    (repo / "Dataset/Fake/17000000004.jpg").write_bytes(a + b"\0")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setattr(pad_data, "SOURCES", [pad_data.Source("webcam", "someone/webcam", "frames", "Dataset/Real",
                                                               "Dataset/Fake", "screen replay")])
    manifest = pad_data.build(mirrors, None, tmp_path / "out", log=lambda *_: None)
    o = lambda stem: pad_data.order_key(stem + ".jpg")[1]  # noqa: E731
    assert [(m["label"], m["order"]) for m in manifest] == [("live", o("17000000001")), ("live", o("17000000002")),
                                                            ("attack", o("17000000004"))]
    assert (tmp_path / "out/webcam/live/17000000002.jpg").read_bytes() == a
    assert json.loads((tmp_path / "out/manifest.json").read_text()) == manifest


@pytest.mark.skipif(not MINIFAS.exists() or importlib.util.find_spec("torch") is None,
                    reason="needs ../shared/weights/minifasnet and PyTorch")
def test_our_minifasnet_conversion_equals_upstream_and_the_shipped_model():
    import torch

    from convert.minifasnet import load
    from edge.liveness import Liveness, live_probability
    from edge.modelcard import load_card, models_dir
    from edge.pipeline import FaceFinder, read_image

    finder = FaceFinder(None)
    liveness = Liveness(load_card(models_dir() / "facelatch_liveness.json", kind="liveness"))
    patches = []
    for p in sorted(DEMO.glob("*/*.jpg")):
        rgb = read_image(p)
        patches.append(liveness.patch(rgb, finder.find(rgb, chips="none")[0].face))
    stacked = np.stack(patches)
    patches = stacked[..., :3]  # the first member: MiniFASNetV2 on the 2.7x patch
    assert liveness.scales[0] == 2.7
    keras_logits = load(MINIFAS)(patches.astype(np.float32)).numpy()
    # upstream arithmetic, written independently with torch.nn.functional (BGR input, as upstream feeds it)
    import sys

    sys.path.insert(0, str(DEMO.parent.parent / "benchmarks"))
    from pad_finetune import forward

    state = {k.removeprefix("module."): v.float() for k, v in
             torch.load(MINIFAS, map_location="cpu", weights_only=True).items() if "num_batches" not in k}
    torch_logits = forward(state, torch.from_numpy(patches[..., ::-1].copy()).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(keras_logits - torch_logits).max() < 1e-4
    shipped = np.stack([liveness.model.run(liveness.model.pixels(p))[0].reshape(-1)[-liveness.n_logits:][:3]
                        for p in stacked])  # the shipped model's logits of that member
    assert np.abs(live_probability(shipped) - live_probability(keras_logits)).max() < 1e-5


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_yolo_sources_take_the_label_file_across_the_history_and_drop_what_disagrees(tmp_path, monkeypatch):
    from convert import pad_data

    mirrors = tmp_path / "mirrors"
    repo = mirrors / "someone+yolo" / "repo"
    photos = sorted(DEMO.glob("*/*.jpg"))
    img = [p.read_bytes() for p in photos[:6]]
    files = {
        "Dataset/All/17000000001.jpg": img[0], "Dataset/All/17000000001.txt": b"1 0.5 0.5 0.2 0.2\n",  # live
        "Dataset/All/17000000002.jpg": img[1], "Dataset/All/17000000002.txt": b"0 0.5 0.5 0.2 0.2\n",  # attack
        "Dataset/All/17000000003.jpg": img[2], "Dataset/All/17000000003.txt": b"0 .5 .5 .2 .2\n1 .4 .4 .1 .1\n",  # mixed
        "Dataset/Real/17000000004.jpg": img[3], "Dataset/Real/17000000004.txt": b"0 0.5 0.5 0.2 0.2\n",  # folder says real
        "Dataset/SplitData/train/images/17000000005.jpg": img[4],
        "Dataset/SplitData/train/labels/17000000005.txt": b"1 0.5 0.5 0.2 0.2\n",  # live, label in labels/
        "Dataset/All/17000000006.jpg": img[5],  # no label file
    }
    for path, data in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(data)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "frames")
    # later: the frames are deleted, and one of them comes back labelled the other way
    _git(repo, "rm", "-rq", "Dataset")
    (repo / "Dataset/Fake").mkdir(parents=True)
    (repo / "Dataset/Fake/17000000009.jpg").write_bytes(img[4])  # was live in the first commit
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "deleted")
    monkeypatch.setattr(pad_data, "SOURCES", [pad_data.Source("yolo", "someone/yolo", "yolo", "", "", "replay")])
    manifest = pad_data.build(mirrors, None, tmp_path / "out", log=lambda *_: None)
    o = lambda stem: pad_data.order_key(stem + ".jpg")[1]  # noqa: E731
    assert [(m["label"], m["order"]) for m in manifest] == [("live", o("17000000001")), ("attack", o("17000000002"))]
    monkeypatch.setattr(pad_data, "SOURCES", [pad_data.Source("yolo", "someone/yolo", "yolo", "", "", "replay",
                                                               history=False)])
    assert [(m["label"], m["order"]) for m in pad_data.build(mirrors, None, tmp_path / "out2", log=lambda *_: None)] \
        == [("attack", o("17000000009"))]  # HEAD only: the Fake folder's frame, no label file beside it


def test_timestamp_names_order_by_time_whatever_their_number_of_fraction_digits():
    """The YOLO recordings name frames str(time.time()) without the point; Python drops
    trailing zeros, so 16- and 17-digit names mix (about a fifth have 16 or fewer)."""
    from convert.pad_data import order_key

    names = ["1710696075.7851448", "1710696075.9", "1710696076.0512", "1710696623.070912", "1710696623.5"]
    files = [n.replace(".", "") + ".jpg" for n in names]  # as Data_collection.py writes them
    assert sorted(files, key=order_key) == files
    assert order_key("frame_12.jpg")[1] < order_key("frame_13.jpg")[1]  # crops: frame numbers as before
    assert order_key("0.jpg")[1] == 0


def test_capture_order_ranks_many_sequences_without_overflow():
    from convert.pad_stack import capture_order

    seq = np.repeat([f"s{i:02d}" for i in range(30)], 3)[::-1]  # 30 sequences, listed backwards
    order = np.tile([1_710_696_075_785_144_800, 1_710_696_076_000_000_000, 1_710_696_623_070_912_000], 30)[::-1]
    rank = capture_order(seq, order)
    assert sorted(rank) == list(range(90))
    by_rank = np.argsort(rank)
    assert list(seq[by_rank]) == sorted(seq) and all(np.diff(order[by_rank][:3]) > 0)


@pytest.mark.skipif(not (SHARED / "weights" / "minifasnet" / "4_0_0_80x80_MiniFASNetV1SE.pth").exists()
                    or importlib.util.find_spec("torch") is None, reason="needs ../shared/weights/minifasnet and PyTorch")
def test_the_int8_spellings_of_minifasnet_are_exact_in_float():
    """What --int8 converts: PReLU as z + relu((a - 1) z) and the weights range-equalized
    (every layer pair and residual stream, SE included) — the same features and logits."""
    import keras

    from convert.minifasnet import FEATURE_LAYER, activation_ranges, build, equalize, read_pth, streams

    state = read_pth(SHARED / "weights" / "minifasnet" / "4_0_0_80x80_MiniFASNetV1SE.pth")
    x = np.random.default_rng(0).integers(0, 256, (8, 80, 80, 3)).astype(np.float32)
    ranges = activation_ranges(state, x)
    assert len(streams(state)) == 3 and all(st["se"] for st in streams(state))
    eq = equalize(state, ranges)
    assert not np.allclose(eq["conv_23.conv.bn.weight"], state["conv_23.conv.bn.weight"])  # it did rescale

    def outputs(model):
        both = keras.Model(model.input, [model.get_layer(FEATURE_LAYER).output, model.output])
        return [np.asarray(t) for t in both(x)]

    want = outputs(build(state))
    for got in (outputs(build(state, prelu="dwrelu")), outputs(build(eq, prelu="dwrelu"))):
        for g, w in zip(got, want):
            assert np.abs(g - w).max() < 1e-4 * max(1.0, np.abs(w).max())


def test_a_held_out_head_never_saw_its_source_and_its_card_works_at_the_door(tmp_path):
    """nested_loso's head for S is trained without S (flipping S's labels cannot move it);
    fit-liveness-head --held-out writes it as a card the door loads, at S's nested threshold."""
    from convert.cli import _write_held_out_cards
    from convert.pad_stack import judge, nested_loso
    from edge.liveness import Liveness
    from edge.modelcard import load_card

    rng = np.random.default_rng(1)
    source = np.repeat(["a", "b", "c"], 120)
    live = np.tile(np.r_[np.ones(60, bool), np.zeros(60, bool)], 3)
    x = rng.normal(size=(360, 4)) + live[:, None] * [2.0, 0.0, 0.0, 0.0]
    nest = nested_loso(x, live, source, ["a", "b", "c"])
    flipped = nested_loso(x, np.where(source == "c", ~live, live), source, ["a", "b", "c"])
    assert np.array_equal(nest["heads"]["c"]["w"], flipped["heads"]["c"]["w"])
    assert not np.array_equal(nest["heads"]["a"]["w"], flipped["heads"]["a"]["w"])
    # the door's k-of-n windows: a stricter k never lets more windows through
    r = judge(nest["test"]["c"], live[source == "c"], source[source == "c"], np.arange(120), 0.5)
    attack = [r["windows_by_k"][k]["attack"] for k in ("3of5", "4of5", "5of5")]
    resident = [r["windows_by_k"][k]["live"] for k in ("3of5", "4of5", "5of5")]
    assert attack == sorted(attack, reverse=True) and resident == sorted(resident, reverse=True)

    card = load_card(ROOT / "models" / "facelatch_liveness.json", kind="liveness")
    n = len(card.data["head"]["w"])
    head = {"mean": np.zeros(n), "std": np.ones(n), "w": np.zeros(n), "b": 2.0}  # P(live) = sigmoid(2) everywhere
    res = {"rule": "pooled", "held_out": {"c": {"head": {"inputs": "features", "mean": head["mean"].tolist(),
                                                          "std": head["std"].tolist(), "w": head["w"].tolist(),
                                                          "b": 2.0}, "threshold": 0.9}}}
    _write_held_out_cards(card, res, tmp_path / "held")
    held = load_card(tmp_path / "held" / "c.json", kind="liveness")
    assert "without_c" in held.data["name"] and "evaluation" not in held.data
    liveness = Liveness(held)
    patch = np.full((80, 80, 9), 128, np.uint8)
    assert liveness.threshold == 0.9 and abs(liveness.score_patch(patch) - 1 / (1 + np.exp(-2.0))) < 1e-6
    assert not liveness.is_live(liveness.score_patch(patch))  # 0.88 < 0.9: its own threshold, not the card's
