"""From scratch, end to end: a tiny encoder trained for a few steps with semi-hard
triplet loss on the committed fixture faces separates held-out pairs better than
at initialization — as a float Keras model and after full-int8 quantization."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from conftest import DEMO  # noqa: E402


@pytest.fixture(scope="module")
def fixture_chips():
    """Chips of the fixture identities through the device's own finder: the
    enrolment/probe photos and the six people of the group photo."""
    from edge.align import Aligner
    from edge.modelcard import load_card, models_dir
    from edge.pipeline import FaceFinder, read_image

    card = load_card(models_dir() / "facelatch_dlib_resnet_int8.json")
    finder = FaceFinder(Aligner.from_card(card))
    chips, labels = [], []
    for label, path in enumerate([DEMO / "enroll/obama.jpg", DEMO / "probe/biden.jpg", DEMO / "probe/tom_hanks.png",
                                  DEMO / "probe/astronaut.jpg"]):
        chips.append(finder.find(read_image(path))[0].chip)
        labels.append(label)
    for i, r in enumerate(finder.find(read_image(DEMO / "probe/group_photo.jpg"), chips="all")):
        chips.append(r.chip)
        labels.append(4 + i)
    return np.stack(chips), np.array(labels)


def views(chips, labels, per, seed, strong):
    """``per`` augmented views of every chip (a different seed gives unseen views)."""
    from convert.data import Augment

    aug = Augment(seed, rotate_deg=8, zoom=0.1, shift_px=6, blur_p=0.5, contrast=0.3) if strong else Augment(seed)
    idx = np.repeat(np.arange(len(chips)), per)
    return aug(chips[idx]), labels[idx]


def auc(model_embed, chips, labels):
    from convert.train import l2n

    e = l2n(model_embed(chips))
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    iu = np.triu_indices(len(labels), 1)
    same = (labels[:, None] == labels[None])[iu]
    g, i = d[iu][same], d[iu][~same]
    return float((g[:, None] < i[None]).mean())


def test_semihard_training_separates_held_out_pairs_float_and_int8(fixture_chips, tmp_path):
    import keras

    from convert.data import Chips
    from convert.quantize import to_tflite
    from convert.train import small_encoder, train, with_batch
    from edge.runtime import TFLiteModel

    chips, labels = fixture_chips
    train_x, train_y = views(chips, labels, 4, seed=1, strong=False)
    test_x, test_y = views(chips, labels, 3, seed=99, strong=True)  # unseen, harder views

    keras.utils.set_random_seed(0)
    model = small_encoder(150, 32, width=8)
    embed = lambda x: model(x.astype(np.float32), training=False).numpy()  # noqa: E731
    before = auc(embed, test_x, test_y)
    state = train(model, Chips(train_x, train_y, []), tmp_path / "run", loss="triplet-semihard", epochs=2, steps=25,
                  p=8, k=4, lr=3e-3, log=lambda *a: None)
    after = auc(embed, test_x, test_y)
    losses = [h["loss"] for h in state["history"]]
    assert losses[-1] < losses[0] + 1e-9 or losses[-1] < 0.2  # the loss does not grow
    assert after > before + 0.05, (before, after)

    tfl_path = tmp_path / "tiny.tflite"
    tfl_path.write_bytes(to_tflite(with_batch(model, 1), train_x[:64]))
    tfl = TFLiteModel(tfl_path)
    assert tfl.input_dtype == np.uint8
    embed8 = lambda x: np.stack([tfl.run(c[None].astype(np.float32))[0].reshape(-1) for c in x])  # noqa: E731
    after8 = auc(embed8, test_x, test_y)
    assert after8 > before + 0.05 and abs(after8 - after) < 0.05, (before, after, after8)


def test_training_resumes_from_its_checkpoint(fixture_chips, tmp_path):
    import keras

    from convert.data import Chips
    from convert.train import small_encoder, train

    chips, labels = fixture_chips
    x, y = views(chips, labels, 4, seed=1, strong=False)
    data = Chips(x, y, [])
    keras.utils.set_random_seed(0)
    first = small_encoder(150, 16, width=4)
    train(first, data, tmp_path, epochs=1, steps=3, p=4, k=4, log=lambda *a: None)
    logged = []
    second = small_encoder(150, 16, width=4)  # a fresh process would build a fresh model
    state = train(second, data, tmp_path, epochs=2, steps=3, p=4, k=4, log=logged.append)
    assert any("resumed" in m and "epoch 1" in m for m in logged)
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss") and [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
