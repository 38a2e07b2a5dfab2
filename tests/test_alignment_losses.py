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
