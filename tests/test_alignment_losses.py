import math

import pytest
import torch

from da_bench.losses import MMD, coral_loss
from da_bench.losses.coral import covariance


def test_mmd_of_a_batch_with_itself_is_zero_and_grows_with_a_mean_shift():
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    mmd = MMD((0.5, 1.0, 2.0))
    assert mmd(x, x).abs() < 1e-6
    values = [mmd(x, torch.randn(64, 8) + shift).item() for shift in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[-1] > 10 * max(values[0], 1e-3)


def test_multi_kernel_mmd_is_the_weighted_sum_of_single_kernel_terms():
    torch.manual_seed(1)
    f_s, f_t = torch.randn(32, 5), torch.randn(40, 5) + 0.3
    multipliers, weights = (0.25, 1.0, 4.0), (0.2, 0.5, 0.3)
    total = MMD(multipliers, weights)(f_s, f_t)
    singles = [MMD((m,))(f_s, f_t) for m in multipliers]
    assert total == pytest.approx(sum(w * s for w, s in zip(weights, singles)).item(), rel=1e-5)


def test_coral_is_zero_for_equal_covariances_and_matches_a_hand_computation():
    torch.manual_seed(2)
    x = torch.randn(50, 4)
    assert coral_loss(x, x + 3.0) < 1e-10  # a shift keeps the covariance
    f_s = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])  # cov = diag(4/3, 4/3)
    f_t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # cov = diag(1/3, 1/3)
    assert torch.allclose(covariance(f_s), torch.eye(2) * 4 / 3)
    # ||diag(1, 1)||_F^2 / (4 * 2^2) = 2 / 16
    assert coral_loss(f_s, f_t).item() == pytest.approx(2 / 16)


def test_gradient_penalty_vanishes_for_a_unit_norm_linear_critic():
    from da_bench.losses import gradient_penalty, wasserstein_estimate

    critic = torch.nn.Linear(6, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.nn.functional.normalize(torch.randn(1, 6), dim=1))
    h_s, h_t = torch.randn(16, 6), torch.randn(16, 6) + 1
    assert gradient_penalty(critic, h_s, h_t).item() < 1e-10
    with torch.no_grad():
        critic.weight.mul_(3)
    assert gradient_penalty(critic, h_s, h_t).item() == pytest.approx(4.0, rel=1e-4)  # (3 - 1)^2
    # W of a linear critic is w . (mean h_s - mean h_t)
    expected = critic(h_s).mean() - critic(h_t).mean()
    assert wasserstein_estimate(critic, h_s, h_t).item() == pytest.approx(expected.item())


def test_difference_loss_is_zero_for_orthogonal_codes_and_positive_otherwise():
    from da_bench.losses import difference_loss

    torch.manual_seed(3)
    # codes whose features are orthogonal over the batch (zero-mean, active on disjoint samples)
    v, w = torch.randn(5), torch.randn(4)
    shared, private = torch.zeros(8, 5), torch.zeros(8, 4)
    shared[0], shared[1] = v, -v
    private[2], private[3] = w, -w
    assert difference_loss(shared, private).item() == pytest.approx(0.0, abs=1e-10)
    # the explicit form: mean of the squared correlation matrix of the normalised codes
    a, b = torch.randn(8, 5), torch.randn(8, 4)
    h_a = torch.nn.functional.normalize(a - a.mean(0), dim=1)
    h_b = torch.nn.functional.normalize(b - b.mean(0), dim=1)
    assert difference_loss(a, b).item() == pytest.approx((h_a.T @ h_b).square().mean().item(), rel=1e-5)
    assert difference_loss(a, a).item() > difference_loss(a, b).item()


def test_scale_invariant_mse_ignores_a_global_shift():
    from da_bench.losses import scale_invariant_mse

    x = torch.randn(4, 3, 8, 8)
    assert scale_invariant_mse(x, x + 0.7).item() == pytest.approx(0.0, abs=1e-6)
    assert scale_invariant_mse(x, torch.zeros_like(x)).item() > 0.5


def test_daan_dynamic_factor_follows_the_authors_code():
    from da_bench.methods.daan import dynamic_factor, proxy_a_distance

    # omega = 1 - d_g / (d_g + d_l) is the local term's share; the global term gets d_g / (d_g + d_l)
    assert dynamic_factor(0.2, 1.8) == pytest.approx(0.9)  # domains hard to tell apart globally: global weight .1
    assert dynamic_factor(1.8, 0.2) == pytest.approx(0.1)
    assert dynamic_factor(1.0, 1.0) == 0.5 and dynamic_factor(0.0, 0.0) == 0.5
    assert dynamic_factor(0.0, 1.5) == 1.0
    for d_g, d_l in [(0.2, 1.8), (1.8, 0.2), (0.0, 0.0), (0.0, 1.5)]:  # on the device: the same factor
        assert dynamic_factor(torch.tensor(d_g), torch.tensor(d_l)).item() == pytest.approx(dynamic_factor(d_g, d_l))
    # d = 2 (1 - 2 loss) on the scaled losses: chance-level BCE (log 2) at scale .05 gives 2 (1 - .1 log 2)
    assert proxy_a_distance(0.05 * math.log(2)) == pytest.approx(2 * (1 - 0.1 * math.log(2)))
    assert proxy_a_distance(0.0) == 2.0 and proxy_a_distance(0.7) == 0.0


def test_daan_re_estimates_omega_from_the_mean_distances_of_each_interval(fixture_data, tmp_path):
    from hydra.utils import instantiate

    from da_bench.methods.daan import dynamic_factor, proxy_a_distance
    from tests.helpers import make_cfg

    cfg = make_cfg(fixture_data, tmp_path, ["method=daan", "method.omega_interval=2"])
    daan = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    losses = [(0.02, 0.05), (0.04, 0.15)]  # (scaled global, scaled local summed over the 10 classes)
    for step, (loss_g, loss_l) in enumerate(losses):
        daan.trainer = type("T", (), {"global_step": step})()
        daan._accumulate(torch.tensor(loss_g), torch.tensor(loss_l))
        if step == 0:
            assert daan.omega.item() == 0.5 and daan.distance_sums[2].item() == 1  # not yet re-estimated
    d_g = sum(proxy_a_distance(g) for g, _ in losses) / 2
    d_l = sum(proxy_a_distance(l / 10) for _, l in losses) / 2
    assert daan.omega.item() == pytest.approx(dynamic_factor(d_g, d_l), rel=1e-5)
    assert daan.distance_sums.abs().sum().item() == 0


def test_linear_mmd_is_the_squared_mean_difference():
    from da_bench.losses import linear_mmd

    torch.manual_seed(3)
    f_s, f_t = torch.randn(16, 5), torch.randn(24, 5) + 0.5
    expected = ((f_s.mean(0) - f_t.mean(0)) ** 2).sum()
    assert linear_mmd(f_s, f_t).item() == pytest.approx(expected.item(), rel=1e-6)
    assert linear_mmd(f_s, f_s + 0.0).item() == 0.0
    # a hand case: means (1, 0) and (0, 3) -> 1 + 9
    assert linear_mmd(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([[0.0, 3.0]])).item() == 10.0


def test_ddc_aligns_its_adaptation_layer_with_the_linear_mmd():
    from da_bench.losses import linear_mmd
    from da_bench.methods import DDC
    from da_bench.nets import ConvNet

    net = ConvNet(1, 28, 10, [[4, 5, 2, 2]], head_fc=[100, 100])
    ddc = DDC(net, optimizer=None)
    f_s, f_t = torch.randn(8, 100), torch.randn(8, 100)
    assert ddc.discrepancy(f_s, f_t) == linear_mmd(f_s, f_t) and ddc.hparams.layers == (-2,)
