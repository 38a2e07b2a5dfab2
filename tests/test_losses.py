import math

import pytest
import torch

from da_bench.losses import DomainAdversarialLoss, annealed_lr_factor, dann_lambda, grad_reverse
from da_bench.nets import DomainDiscriminator


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_grl_is_identity_forward_and_reverses_scaled_gradient_backward(coeff):
    x = torch.randn(4, 7, requires_grad=True)
    upstream = torch.randn(4, 7)
    y = grad_reverse(x, coeff)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.allclose(x.grad, -coeff * upstream)


def test_grl_only_reverses_the_branch_behind_it():
    x = torch.randn(3, requires_grad=True)
    (x.sum() + grad_reverse(x, 1.0).sum() * 2).backward()
    assert torch.allclose(x.grad, torch.full((3,), 1.0 - 2.0))


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(0.9999092, abs=1e-6)
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values)


def test_annealed_lr_factor():
    assert annealed_lr_factor(0.0) == 1.0
    assert annealed_lr_factor(1.0) == pytest.approx(11 ** -0.75)
    assert annealed_lr_factor(0.5, alpha=10, beta=0.75) == pytest.approx(6 ** -0.75)


def test_domain_adversarial_loss_trains_discriminator_and_reverses_into_features():
    torch.manual_seed(0)
    disc = DomainDiscriminator(5, [8])
    loss_fn = DomainAdversarialLoss(disc)
    f_s = torch.randn(6, 5, requires_grad=True)
    f_t = torch.randn(4, 5, requires_grad=True)
    loss, acc = loss_fn(f_s, f_t, coeff=1.0)
    assert 0.0 <= acc.item() <= 1.0
    loss.backward()
    # the same loss without reversal gives the opposite feature gradient and the same discriminator gradient
    g_feat, g_disc = f_s.grad.clone(), disc.net[0].weight.grad.clone()
    f_s.grad = None
    disc.zero_grad()
    logits = disc(torch.cat([f_s, f_t]))
    target = torch.cat([torch.ones(6), torch.zeros(4)])
    torch.nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
    assert torch.allclose(g_feat, -f_s.grad, atol=1e-6)
    assert torch.allclose(g_disc, disc.net[0].weight.grad, atol=1e-6)


@pytest.mark.parametrize("scheme", ["tf_truncated_normal", "glorot_uniform"])
def test_init_schemes_draw_the_tensorflow_codes_weights(scheme):
    from da_bench.nets import ConvNet, init_weights

    torch.manual_seed(0)
    net = ConvNet(1, 28, 10, convs=[[20, 5, 2, 2], [50, 5, 2, 2]], padding="valid", encoder_fc=[500], head_fc=[])
    init_weights(net, scheme)
    fc500 = next(m for m in reversed(net.encoder) if isinstance(m, torch.nn.Linear))
    weight, bias = fc500.weight.detach(), fc500.bias.detach()
    assert weight.shape == (500, 800)
    if scheme == "glorot_uniform":  # U(-a, a), a = sqrt(6 / (800 + 500)): std a / sqrt(3); biases 0
        bound = math.sqrt(6 / (800 + 500))
        assert weight.abs().max() <= bound and weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
        assert not bias.any()
    else:  # N(0, 0.1) cut at 2 sigma (std 0.088); biases 0.1
        assert weight.abs().max() <= 0.2 and weight.std().item() == pytest.approx(0.088, rel=0.02)
        assert torch.all(bias == 0.1)
    with pytest.raises(ValueError, match="init must be one of"):
        init_weights(net, "xavier")
