"""CLAN-style segmentation: its losses on hand-made inputs, the digit scenes, and every method end to end."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from da_bench.data.sources import MNIST, DigitScenes
from da_bench.data.sources.scenes import BACKGROUND, compose_scenes
from da_bench.losses.clan import disagreement_weight, weight_discrepancy, weighted_bce_with_logits
from da_bench.train import train
from tests.helpers import assert_same_weights, last_checkpoint, make_cfg, run_cli

SEG_METHODS = ["seg_source_only", "seg_adv", "clan", "seg_target_only"]
SEG_PAIRS = ["mnist_mnistm_seg", "usps_mnist_seg"]
# a few dozen scenes per split keep the tests fast; the defaults are 10,000 / 2,000
SMALL_SCENES = [f"data.{side}.source.{key}={n}" for side in ("source", "target")
                for key, n in (("num_train", 48), ("num_test", 24))]


def one_hot_map(classes, num_classes=4):
    """B x H x W class ids -> B x K x H x W one-hot probability maps."""
    return F.one_hot(torch.as_tensor(classes), num_classes).permute(0, 3, 1, 2).float()


def test_disagreement_weight_is_epsilon_where_heads_agree_and_lambda_plus_epsilon_where_orthogonal():
    p = torch.softmax(torch.randn(2, 5, 3, 4), 1)
    assert torch.allclose(disagreement_weight(p, p, 40.0, 0.4), torch.full((2, 3, 4), 0.4), atol=1e-5)
    p1, p2 = one_hot_map([[[0, 1], [2, 3]]]), one_hot_map([[[1, 1], [3, 3]]])
    expected = torch.tensor([[[40.4, 0.4], [40.4, 0.4]]])
    assert torch.allclose(disagreement_weight(p1, p2, 40.0, 0.4), expected, atol=1e-5)
    # a hand-computed partial disagreement: cos((1,0), (1,1)/2) = 1/sqrt(2)
    half = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    first = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    assert disagreement_weight(first, half, 10.0, 0.0).item() == pytest.approx(10 * (1 - 2 ** -0.5), rel=1e-5)


def test_weight_discrepancy_is_cosine_plus_one():
    w = [torch.randn(3, 4, 1, 1), torch.randn(3)]
    assert weight_discrepancy(w, w).item() == pytest.approx(2.0, abs=1e-6)
    assert weight_discrepancy(w, [-t for t in w]).item() == pytest.approx(0.0, abs=1e-6)
    a, b = [torch.tensor([1.0, 0.0]), torch.tensor([0.0])], [torch.tensor([0.0, 2.0]), torch.tensor([0.0])]
    assert weight_discrepancy(a, b).item() == pytest.approx(1.0, abs=1e-6)
    a, b = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, 1.0])]
    assert weight_discrepancy(a, b).item() == pytest.approx(1 + 5 / (5 ** 0.5 * 10 ** 0.5), rel=1e-6)


def test_weighted_bce_scales_each_pixel():
    logits = torch.randn(2, 1, 3, 3)
    plain = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    assert weighted_bce_with_logits(logits, 1.0).item() == pytest.approx(plain.item(), rel=1e-6)
    assert weighted_bce_with_logits(logits, 1.0, torch.full((2, 3, 3), 2.0)).item() == pytest.approx(2 * plain.item(), rel=1e-6)
    weight = torch.zeros(2, 3, 3)
    weight[0, 1, 1] = 9.0
    per_pixel = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    assert weighted_bce_with_logits(logits, 1.0, weight).item() == pytest.approx(per_pixel[0, 0, 1, 1].item() * 9 / 18, rel=1e-5)


def test_scene_masks_follow_the_strokes():
    digits = np.zeros((3, 8, 8), dtype=np.uint8)
    digits[:, 2:6, 3] = 255  # a vertical stroke
    digits[:, 1, 1] = 100     # a faint pixel below the stroke threshold
    labels = np.array([4, 7, 9])
    scenes, masks = compose_scenes(digits, labels, 50, 20, 1, 128, np.random.default_rng(0))
    assert scenes.shape == masks.shape == (50, 20, 20)
    for scene, mask in zip(scenes, masks):
        stroke = scene >= 128
        assert stroke.sum() == 4 and (mask[stroke] != BACKGROUND).all() and (mask[~stroke] == BACKGROUND).all()
        assert len(set(mask[stroke].tolist())) == 1 and mask[stroke][0] in labels
        assert (scene == 100).sum() == 1  # faint pixels are drawn but labelled background
    again, again_masks = compose_scenes(digits, labels, 50, 20, 1, 128, np.random.default_rng(0))
    assert (again == scenes).all() and (again_masks == masks).all()


def test_digit_scenes_from_real_format_files(fixture_data, tmp_path):
    mnist = MNIST(fixture_data, cache_dir=tmp_path)
    black = DigitScenes(mnist, "black", num_train=40, num_test=20, seed=3)
    blended = DigitScenes(mnist, "bsds", num_train=40, num_test=20, seed=3)
    x, y = black.load("train")
    xb, yb = blended.load("train")
    assert x.shape == (40, 1, 64, 64) and xb.shape == (40, 3, 64, 64) and y.shape == (40, 64, 64)
    assert y.dtype == np.uint8 and set(np.unique(y)) <= set(range(11)) and (y != BACKGROUND).any()
    assert (yb == y).all()  # the blend changes pixels, never the masks
    assert xb[:, :, y[0] == BACKGROUND].std() > 0  # a photo behind the digits
    x_test, _ = black.load("test")
    assert x_test.shape[0] == 20 and not np.array_equal(x_test[:20], x[:20])
    assert (DigitScenes(mnist, "black", num_train=40, num_test=20, seed=3).load("train")[0] == x).all()


# every method on one pair; the other pair (the same net) with clan, the method that exercises the most
@pytest.mark.parametrize("method,pair", [(m, SEG_PAIRS[0]) for m in SEG_METHODS] + [("clan", p) for p in SEG_PAIRS[1:]])
def test_every_seg_method_and_every_seg_pair(fixture_data, tmp_path, method, pair):
    metrics = train(make_cfg(fixture_data, tmp_path, [f"method={method}", f"data={pair}", *SMALL_SCENES]))
    assert metrics["steps"] == 6 and metrics["target_metric"] == "test/tgt_miou"
    # loadable as a resume loads it (weights only): a pickled optimiser factory would make the run unresumable
    assert last_checkpoint(tmp_path)["global_step"] == 6
    for key in ("test/tgt_miou", "test/src_miou", "test/tgt_pixel_acc", "test/tgt_iou_0", "test/tgt_iou_bg"):
        assert 0.0 <= metrics[key] <= 1.0
    per_class = [metrics[f"test/tgt_iou_{c}"] for c in [*range(10), "bg"]]
    assert metrics["test/tgt_miou"] == pytest.approx(sum(per_class) / 11, abs=1e-5)
    from PIL import Image

    with Image.open(tmp_path / "predictions.png") as im:  # rows: scene, true mask, prediction
        assert im.size[1] >= 3 * 64


def test_clan_counts_iterations_and_uses_its_weights_after_preheat(fixture_data, tmp_path):
    train(make_cfg(fixture_data, tmp_path, ["method=clan", "data=mnist_mnistm_seg", "method.preheat_fraction=0.5",
                                            "trainer.log_every_n_steps=1", *SMALL_SCENES]))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 6
    generator = state["optimizer_states"][0]
    assert all(int(s["step"]) == 6 for s in generator["state"].values())  # no parameter stepped twice
    adam = state["optimizer_states"][1]["state"]
    assert all(int(s["step"]) == 6 for s in adam.values())  # one discriminator step per iteration
    assert [s["last_epoch"] for s in state["lr_schedulers"]] == [6, 6]
    import csv

    rows = list(csv.DictReader(open(tmp_path / "csv" / "metrics.csv")))
    weights = [float(r["train/weight_mean"]) for r in rows if r.get("train/weight_mean")]
    discrepancy = [float(r["train/loss_weight"]) for r in rows if r.get("train/loss_weight")]
    assert len(weights) == 3 and all(0.4 <= w <= 40.4 for w in weights)  # steps 3, 4, 5: past the preheat
    assert discrepancy and all(0.0 <= d <= 2.0 for d in discrepancy)


def test_classification_and_segmentation_do_not_mix(fixture_data, tmp_path):
    # Hydra wraps the method's ValueError; the CLI prints it as a config error
    with pytest.raises(Exception, match="method=seg_source_only"):
        train(make_cfg(fixture_data, tmp_path / "a", ["method=dann", "data=mnist_mnistm_seg", *SMALL_SCENES]))
    with pytest.raises(Exception, match="data=mnist_mnistm_seg"):
        train(make_cfg(fixture_data, tmp_path / "b", ["method=clan", "data=mnist_mnistm"]))


def test_cli_says_which_methods_fit_a_segmentation_pair(fixture_data, tmp_path):
    result = run_cli(["method=dann", "data=mnist_mnistm_seg", f"paths.data_dir={fixture_data}",
                      f"paths.log_dir={tmp_path}", "debug=fast", *SMALL_SCENES])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "config error" in result.stderr and "method=seg_source_only, seg_adv or clan" in result.stderr


def test_clan_trains_each_head_as_a_classifier_and_keeps_the_weight_map_gradient(fixture_data, tmp_path):
    from hydra.utils import instantiate

    cfg = make_cfg(fixture_data, tmp_path, ["method=clan", "data=mnist_mnistm_seg", *SMALL_SCENES])
    clan = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    logits = [torch.randn(2, 11, 8, 8, requires_grad=True) for _ in range(2)]
    labels = torch.randint(0, 11, (2, 8, 8))
    expected = F.cross_entropy(logits[0], labels) + F.cross_entropy(logits[1], labels)
    assert clan.segmentation_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert clan.segmentation_loss(logits, labels).item() != pytest.approx(
        F.cross_entropy(logits[0] + logits[1], labels).item(), rel=1e-3)
    clan.trainer = type("T", (), {"max_steps": 100, "global_step": 50})()  # past the preheat
    clan.log_train = lambda *a, **k: None
    weight = clan.pixel_weight(logits)
    weight.sum().backward()
    assert logits[0].grad is not None and logits[0].grad.abs().sum() > 0  # the map carries a gradient
    # the regulariser is the doubled weight discrepancy
    from da_bench.losses.clan import weight_discrepancy
    doubled = 2 * 0.01 * weight_discrepancy(clan.heads[0].parameters(), clan.heads[1].parameters())
    assert clan.generator_regularizer().item() == pytest.approx(doubled.item(), rel=1e-6)


def test_clan_heads_train_at_ten_times_the_trunk_lr_after_a_warm_up(fixture_data, tmp_path):
    from hydra.utils import instantiate

    cfg = make_cfg(fixture_data, tmp_path, ["method=clan", "data=mnist_mnistm_seg", "method.preheat_fraction=0.25",
                                            *SMALL_SCENES])
    clan = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    clan.trainer = type("T", (), {"max_steps": 20, "global_step": 0})()
    factors = [clan.lr_factor(i) for i in range(8)]
    assert factors[:5] == [0.0, 0.2, 0.4, 0.6, 0.8] and factors[5] == pytest.approx((1 - 5 / 20) ** 0.9)
    (generator, discriminator), schedulers = clan.configure_optimizers()
    trunk, heads = generator.param_groups
    assert len(heads["params"]) == 4 and len(trunk["params"]) == len(list(clan.net.encoder.parameters()))
    assert {id(p) for p in heads["params"]} == {id(p) for p in clan.heads.parameters()}
    for _ in range(7):
        for scheduler in schedulers:
            scheduler["scheduler"].step()
    expected = 1e-3 * (1 - 7 / 20) ** 0.9
    assert trunk["lr"] == pytest.approx(expected) and heads["lr"] == pytest.approx(10 * expected)
    assert discriminator.param_groups[0]["lr"] == pytest.approx(1e-4 * (1 - 7 / 20) ** 0.9)


def test_an_interrupted_clan_run_ends_as_an_uninterrupted_one(fixture_data, tmp_path):
    # CLAN steps two optimisers and takes a second optimiser factory: both must survive a stop and relaunch
    from da_bench.errors import RunInterrupted

    base = ["method=clan", "data=mnist_mnistm_seg", *SMALL_SCENES]
    with pytest.raises(RunInterrupted):
        train(make_cfg(fixture_data, tmp_path, [*base, "+callbacks.term._target_=tests.helpers.SignalAt",
                                                "+callbacks.term.step=3"]))
    assert not (tmp_path / "metrics.json").exists()
    metrics = train(make_cfg(fixture_data, tmp_path, base))
    assert metrics["steps"] == 6 and metrics["resumed_from"].endswith("last.ckpt")
    assert [s["last_epoch"] for s in last_checkpoint(tmp_path)["lr_schedulers"]] == [6, 6]
    train(make_cfg(fixture_data, tmp_path / "uninterrupted", base))
    assert_same_weights(tmp_path, tmp_path / "uninterrupted")  # the weights of a run that was never stopped
