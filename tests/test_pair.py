import pytest
import torch

from da_bench.data import DataError, Domain, DomainPair
from da_bench.data.pair import StepIndices, fit_channels, fit_geometry, input_stats
from da_bench.data.sources import MNIST, MNISTM, USPS


def test_fit_geometry_pad_crop_resize():
    x = torch.arange(2 * 1 * 28 * 28, dtype=torch.int64).remainder(256).to(torch.uint8).view(2, 1, 28, 28)
    padded = fit_geometry(x, 32, "pad")
    assert padded.shape == (2, 1, 32, 32) and torch.equal(padded[..., 2:30, 2:30], x)
    assert padded[..., :2, :].sum() == 0
    assert torch.equal(fit_geometry(padded, 28, "center_crop"), x)
    resized = fit_geometry(torch.full((1, 1, 16, 16), 200, dtype=torch.uint8), 28, "resize")
    assert resized.shape == (1, 1, 28, 28) and resized.dtype == torch.uint8 and (resized == 200).all()
    assert fit_geometry(x, 28, "pad") is x
    with pytest.raises(ValueError):
        fit_geometry(padded, 28, "pad")


def test_fit_channels():
    grey = torch.randint(0, 256, (3, 1, 4, 4), dtype=torch.uint8)
    rgb = fit_channels(grey, 3)
    assert rgb.shape == (3, 3, 4, 4) and all(torch.equal(rgb[:, c], grey[:, 0]) for c in range(3))
    assert torch.equal(fit_channels(rgb, 1), grey)


@pytest.mark.parametrize("mode", ["pixel_mean", "minus_half", "unit", "standardize"])
def test_input_stats(mode):
    x = torch.randint(0, 256, (50, 3, 6, 6), dtype=torch.uint8)
    mean, std = input_stats([x[:20], x[20:]], mode)  # the two domains' training sets, pooled
    normalised = (x.float() / 255 - mean) / std
    ref = x.float() / 255
    if mode == "pixel_mean":
        assert torch.allclose(normalised, (x.float() - x.float().mean((0, 2, 3), keepdim=True)) / 255, atol=1e-5)
    elif mode == "minus_half":
        assert torch.allclose(normalised, (ref - 0.5) / 0.5)
    elif mode == "unit":
        assert torch.equal(normalised, ref)
    else:
        assert torch.allclose(normalised.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
        assert torch.allclose(normalised.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


def make_pair(root, resident=True, **kw):
    return DomainPair(Domain(MNIST(root), binarize=True), Domain(MNISTM(root, variant="published"), "center_crop"),
                      image_size=28, channels=3, num_classes=10, batch_size=8, resident=resident, **kw)


def test_resident_batches_hide_target_labels_and_cover_each_epoch(fixture_data):
    pair = make_pair(fixture_data)
    pair.setup()
    batch = next(iter(pair.train_dataloader()))
    assert set(batch) == {"src_x", "src_y", "tgt_x"}
    assert batch["src_x"].shape == (8, 3, 28, 28) and batch["src_x"].dtype == torch.float32
    pair = make_pair(fixture_data, expose_target_labels=True)
    pair.setup()
    it = iter(pair.train_dataloader())
    n = len(pair.splits["tgt_train"][1])
    seen = torch.cat([next(it)["tgt_y"] for _ in range(n // 8)])
    assert "tgt_y" in next(iter(pair.train_dataloader()))
    # one epoch of a domain draws each image at most once: label counts cannot exceed the split's
    counts = torch.bincount(seen, minlength=10)
    assert (counts <= torch.bincount(pair.splits["tgt_train"][1], minlength=10)).all()


def test_step_indices_are_a_function_of_the_step():
    def first(stream, k):
        it = iter(stream)
        return [next(it).tolist() for _ in range(k)]

    full = first(StepIndices(10, 3, seed=0, domain=0), 9)  # 3 batches per epoch, the 10th image left out
    for epoch in range(3):
        drawn = sum(full[3 * epoch: 3 * epoch + 3], [])
        assert len(set(drawn)) == 9  # each epoch draws every image at most once
    assert full[:3] != full[3:6]  # a new permutation per epoch
    for start in (1, 3, 5):  # a resumed stream is the tail of the uninterrupted one
        assert first(StepIndices(10, 3, seed=0, domain=0, start_step=start), 9 - start) == full[start:]
    assert first(StepIndices(10, 3, seed=1, domain=0), 3) != full[:3]
    assert first(StepIndices(10, 3, seed=0, domain=1), 3) != full[:3]


def test_binarize_and_pixel_mean_are_applied(fixture_data):
    pair = make_pair(fixture_data)
    pair.prepare_data()
    src = pair.splits["src_train"][0]
    assert set(src.unique().tolist()) <= {0, 255}
    both = torch.cat([src, pair.splits["tgt_train"][0]]).double()
    assert torch.allclose(pair.mean.view(3).double(), both.mean((0, 2, 3)) / 255, atol=1e-6)


def test_dataloader_path_serves_the_same_normalised_images(fixture_data):
    resident, loader = make_pair(fixture_data), make_pair(fixture_data, resident=False)
    resident.setup()
    loader.setup()
    x_r, y_r = next(iter(resident.test_dataloader()[1]))
    x_l, y_l = next(iter(loader.test_dataloader()[1]))
    assert torch.equal(y_r, y_l) and torch.allclose(x_r, x_l)
    batch = next(iter(loader.train_dataloader()))
    assert set(batch) == {"src_x", "src_y", "tgt_x"} and batch["tgt_x"].shape == (8, 3, 28, 28)


def test_train_subset_is_a_fixed_draw_outside_the_val_split(fixture_data):
    a = Domain(USPS(fixture_data), train_subset=20).load_all(28, 1, split_seed=0)
    b = Domain(USPS(fixture_data), train_subset=20).load_all(28, 1, split_seed=0)
    full = Domain(USPS(fixture_data)).load_all(28, 1, split_seed=0)
    assert len(a["train"][1]) == 20 and torch.equal(a["train"][0], b["train"][0])
    # 50 training images: 5 (10 %) held out, 45 left to train on
    assert len(full["val"][1]) == 5 and len(full["train"][1]) == 45 and torch.equal(a["val"][0], full["val"][0])
    assert len(a["test"][1]) == 30


def test_val_split_is_held_out_of_train_and_fixed_by_the_data_seed(fixture_data):
    x, _ = MNIST(fixture_data).load("train")
    splits = Domain(MNIST(fixture_data)).load_all(28, 1, split_seed=0)
    other = Domain(MNIST(fixture_data)).load_all(28, 1, split_seed=1)
    again = Domain(MNIST(fixture_data)).load_all(28, 1, split_seed=0)
    rows = lambda t: {bytes(img.numpy().tobytes()) for img in t}
    train, val = rows(splits["train"][0]), rows(splits["val"][0])
    assert len(splits["val"][1]) == 6 and len(splits["train"][1]) == 54  # fixture: 60 training images
    assert not train & val and len(train | val) == len({bytes(img.tobytes()) for img in x})
    assert torch.equal(again["val"][0], splits["val"][0]) and not torch.equal(other["val"][0], splits["val"][0])
    pair = make_pair(fixture_data)
    pair.prepare_data()
    assert pair.split_sizes == {"src_train": 54, "src_val": 6, "src_test": 30,
                                "tgt_train": 45, "tgt_val": 5, "tgt_test": 30}
    x_val, _ = next(iter(pair.val_dataloader()[0]))
    x_test, _ = next(iter(pair.test_dataloader()[0]))
    assert len(x_val) == 6 and len(x_test) == 30


def test_a_split_smaller_than_a_batch_is_a_clear_error(fixture_data):
    pair = make_pair(fixture_data)
    pair.batch_size = 1000
    with pytest.raises(DataError, match="fewer than data.batch_size=1000"):
        pair.prepare_data()
