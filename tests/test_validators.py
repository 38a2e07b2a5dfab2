"""Validators on hand-made logits, and the snapshot selection end to end on fixtures."""
import json
import math

import pytest
import torch

from da_bench.errors import ConfigError
from da_bench.rules import VALIDATOR_NAMES, reported
from da_bench.train import train
from da_bench.validators import (VALIDATORS, Snapshot, batch_nuclear_norm, dev, dev_risk, domain_weights,
                                 information_maximization, iwcv, oracle, score_all, soft_neighborhood_density,
                                 source_accuracy, source_loss, target_entropy)
from tests.helpers import make_cfg


def one_hot_logits(labels, classes=10, scale=20.0):
    return torch.nn.functional.one_hot(labels, classes).float() * scale


def test_entropy_of_a_uniform_prediction_is_log_c():
    assert target_entropy(Snapshot(tgt_logits=torch.zeros(7, 10))) == pytest.approx(-math.log(10), abs=1e-6)
    assert target_entropy(Snapshot(tgt_logits=one_hot_logits(torch.arange(7)))) == pytest.approx(0, abs=1e-6)


def test_im_and_bnm_reward_confident_and_diverse_predictions():
    diverse = Snapshot(tgt_logits=one_hot_logits(torch.arange(100) % 10))
    collapsed = Snapshot(tgt_logits=one_hot_logits(torch.zeros(100, dtype=torch.long)))
    uniform = Snapshot(tgt_logits=torch.zeros(100, 10))
    assert information_maximization(diverse) == pytest.approx(math.log(10), abs=1e-4)
    assert information_maximization(collapsed) == pytest.approx(0, abs=1e-4)
    assert information_maximization(uniform) == pytest.approx(0, abs=1e-4)
    # one-hot rows over 10 classes, 10 each: singular values sqrt(10) x 10 -> ||P||_* / N = 10 sqrt(10) / 100
    assert batch_nuclear_norm(diverse) == pytest.approx(math.sqrt(10) / 10, abs=1e-4)
    assert batch_nuclear_norm(collapsed) == pytest.approx(1 / 10, abs=1e-4)  # one singular value sqrt(100)


def test_snd_separates_a_clustered_from_a_scattered_target_set():
    g = torch.Generator().manual_seed(0)
    clustered = one_hot_logits(torch.arange(200) % 4, scale=8.0) + 0.1 * torch.randn(200, 10, generator=g)
    scattered = 3.0 * torch.randn(200, 10, generator=g)
    assert soft_neighborhood_density(Snapshot(tgt_logits=clustered)) > \
        soft_neighborhood_density(Snapshot(tgt_logits=scattered)) + 0.5


def test_source_rules_and_oracle():
    labels = torch.tensor([0, 1, 2, 3])
    logits = one_hot_logits(torch.tensor([0, 1, 2, 0]))
    s = Snapshot(src_logits=logits, src_labels=labels, tgt_logits=logits, tgt_labels=torch.tensor([0, 0, 0, 0]))
    assert source_accuracy(s) == 0.75 and oracle(s) == 0.5
    assert source_loss(s) == pytest.approx(-20 / 4, abs=1e-3)  # one sample wrong by a margin of 20


def test_iwcv_and_dev_with_equal_domains_are_plain_source_accuracy_and_risk():
    g = torch.Generator().manual_seed(1)
    # one distribution; 2,000 training features per domain, as a snapshot samples (data/pair.py)
    train_src, train_tgt, val = (torch.randn(n, 5, generator=g) for n in (2000, 2000, 300))
    labels = torch.randint(0, 10, (300,), generator=g)
    logits = torch.randn(300, 10, generator=g)
    s = Snapshot(src_logits=logits, src_labels=labels, src_features=val, src_train_features=train_src,
                 tgt_train_features=train_tgt)
    weights = domain_weights(train_src, train_tgt, val)
    # ~1 up to the fit's estimation noise: ||w|| ~ sqrt(d / n) = 0.04 x sqrt(5) on standardised features, so the
    # log-weights spread by ~0.09 and 95 % lie within ~0.18 of 0
    assert weights.mean().item() == pytest.approx(1.0, abs=0.03) and (weights - 1).abs().quantile(0.95) < 0.25
    assert iwcv(s) == pytest.approx(source_accuracy(s), abs=0.01)
    assert dev(s) == pytest.approx(source_loss(s), abs=0.02)  # minus the plain source cross-entropy
    assert dev(s, error="01") == pytest.approx(-(1 - source_accuracy(s)), abs=0.01)


def test_dev_control_variate_cancels_the_weights_noise():
    weights = torch.tensor([3.0, 0.2, 0.1, 0.5, 1.7])
    assert dev_risk(weights, torch.full((5,), 0.25)) == pytest.approx(0.25, abs=1e-6)  # plain IW: 0.25 * 1.1
    assert dev_risk(torch.ones(4), torch.tensor([1.0, 0, 0, 0])) == pytest.approx(0.25, abs=1e-6)


def test_iwcv_and_dev_weight_the_source_samples_that_look_like_the_target():
    g = torch.Generator().manual_seed(2)

    def source(n):  # half of the source lies where the target does, half far from it
        return torch.cat([torch.randn(n, 2, generator=g) + torch.tensor([3.0, 0.0]),
                          torch.randn(n, 2, generator=g) - torch.tensor([3.0, 0.0])])

    train_src, val = source(300), source(200)
    train_tgt = torch.randn(600, 2, generator=g) + torch.tensor([3.0, 0.0])
    weights = domain_weights(train_src, train_tgt, val)
    assert weights[:200].mean() > 10 * weights[200:].mean()
    # fitted on the training features only: a val row's weight does not depend on the other val rows
    assert domain_weights(train_src, train_tgt, val[:1]) == pytest.approx(weights[:1], rel=1e-5)
    labels = torch.zeros(400, dtype=torch.long)
    right_near = Snapshot(src_logits=one_hot_logits(torch.cat([torch.zeros(200), torch.ones(200)]).long()),
                          src_labels=labels, src_features=val, src_train_features=train_src,
                          tgt_train_features=train_tgt)
    right_far = Snapshot(**{**right_near.__dict__, "source_weights": None,
                            "src_logits": one_hot_logits(torch.cat([torch.ones(200), torch.zeros(200)]).long())})
    assert source_accuracy(right_near) == source_accuracy(right_far) == 0.5
    assert iwcv(right_near) > 0.9 > 0.1 > iwcv(right_far)
    assert dev(right_near) > dev(right_far)


def test_only_the_oracle_reads_target_labels():
    assert [name for name, v in VALIDATORS.items() if v.uses_target_labels] == ["oracle"]
    g = torch.Generator().manual_seed(3)
    s = Snapshot(src_logits=torch.randn(20, 10, generator=g), src_labels=torch.arange(20) % 10,
                 src_features=torch.randn(20, 4, generator=g), tgt_logits=torch.randn(20, 10, generator=g),
                 tgt_features=torch.randn(20, 4, generator=g), tgt_labels=None,
                 src_train_features=torch.randn(30, 4, generator=g), tgt_train_features=torch.randn(30, 4, generator=g))
    blind = [n for n in VALIDATORS if n != "oracle"]
    assert set(score_all(s, blind)) == set(blind)  # no blind rule needs the labels
    with pytest.raises(AttributeError):
        oracle(s)


def test_the_names_the_config_check_and_the_tables_read_are_the_validators():
    assert VALIDATOR_NAMES == tuple(VALIDATORS)  # rules.py lists them without importing torch


def test_a_short_run_writes_every_rule_to_metrics(fixture_data, tmp_path):
    metrics = train(make_cfg(fixture_data, tmp_path, ["method=dann", "trainer.max_steps=8", "snapshots=4",
                                                      f"callbacks.snapshots.save_dir={tmp_path}/picks"], debug=None))
    assert sorted(p.name for p in (tmp_path / "picks").iterdir()) == sorted(f"pick_{r}.pt" for r in VALIDATORS)
    steps = [h["step"] for h in metrics["snapshots"]]
    assert steps == [2, 4, 6, 8]
    assert set(metrics["selections"]) == {"last_step", *VALIDATORS}
    for rule, pick in metrics["selections"].items():
        assert pick["uses_target_labels"] == (rule == "oracle")
        assert 0.0 <= pick["test/tgt_acc"] <= 1.0
        if rule != "last_step":
            assert pick["step"] in steps
            assert pick["score"] == max(h[rule] for h in metrics["snapshots"])
            assert pick["step"] == next(h["step"] for h in metrics["snapshots"] if h[rule] == pick["score"])
        if pick["step"] == 8:  # the last snapshot's test numbers are the run's own
            assert pick["test/tgt_acc"] == pytest.approx(metrics["test/tgt_acc"], abs=1e-6)
    assert metrics["selections"]["last_step"]["test/tgt_acc"] == metrics["test/tgt_acc"]
    assert json.loads((tmp_path / "metrics.json").read_text())["selections"] == metrics["selections"]


def test_selection_names_the_reported_rule(fixture_data, tmp_path):
    metrics = train(make_cfg(fixture_data, tmp_path / "snd", ["method=source_only", "selection=snd"]))
    assert metrics["selection"] == "snd"
    assert reported(metrics) == metrics["selections"]["snd"]["test/tgt_acc"]
    with pytest.raises(ConfigError, match="selection='best'"):
        train(make_cfg(fixture_data, tmp_path / "bad", ["selection=best"]))
    with pytest.raises(ConfigError, match="selection=snd"):
        train(make_cfg(fixture_data, tmp_path / "none", ["method=source_only", "selection=snd", "~callbacks.snapshots"]))


def test_segmentation_snapshots_score_sampled_pixels_and_report_miou(fixture_data, tmp_path):
    from tests.test_segmentation import SMALL_SCENES

    metrics = train(make_cfg(fixture_data, tmp_path, ["method=clan", "data=mnist_mnistm_seg", "selection=entropy",
                                                      *SMALL_SCENES]))
    assert metrics["target_metric"] == "test/tgt_miou" and len(metrics["snapshots"]) == 2  # steps 3 and 6
    assert set(metrics["selections"]) == {"last_step", *VALIDATORS}
    for rule, pick in metrics["selections"].items():
        assert set(pick) >= {"test/tgt_miou", "test/src_miou"}
        if pick["step"] == 6:
            assert pick["test/tgt_miou"] == pytest.approx(metrics["test/tgt_miou"], abs=1e-5)
    assert reported(metrics) == metrics["selections"]["entropy"]["test/tgt_miou"]


def test_snapshot_picks_survive_an_interruption(fixture_data, tmp_path):
    from da_bench.errors import RunInterrupted

    base = ["method=dann", "trainer.max_steps=8", "trainer.val_check_interval=2"]
    interrupt = ["+callbacks.interrupt._target_=tests.helpers.InterruptAt", "+callbacks.interrupt.step=5"]
    with pytest.raises(RunInterrupted):
        train(make_cfg(fixture_data, tmp_path, base + interrupt))
    metrics = train(make_cfg(fixture_data, tmp_path, base))
    assert metrics["resumed_from"] and [h["step"] for h in metrics["snapshots"]] == [2, 4, 6, 8]
    assert {pick["step"] for pick in metrics["selections"].values()} <= {2, 4, 6, 8}


def test_a_pick_at_the_checkpoints_own_step_is_stored_once_and_a_resume_tests_it_the_same(fixture_data, tmp_path):
    from da_bench.snapshots import SAME_AS_MODEL
    from tests.helpers import last_checkpoint

    cfg = make_cfg(fixture_data, tmp_path, ["method=dann", "trainer.max_steps=8", "trainer.val_check_interval=2"])
    first = train(cfg)
    (state,) = [v for k, v in last_checkpoint(tmp_path)["callbacks"].items() if "SnapshotSelection" in k]
    assert 8 in {pick["step"] for pick in first["selections"].values()}  # the last snapshot is some rule's pick
    assert state["weights"][8] == SAME_AS_MODEL  # the checkpoint's own weights, not a second copy
    assert all(isinstance(w, dict) for step, w in state["weights"].items() if step != 8)
    (tmp_path / "metrics.json").unlink()
    again = train(cfg)  # resumes at max_steps: no step trains, every pick is tested from the checkpoint
    assert again["selections"] == first["selections"]


def test_plot_and_validator_table_scripts(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.test_tables import selection_run

    repo = Path(__file__).resolve().parents[1]
    run = selection_run("mnist_usps", "dann", 0, {r: (0.5, 0.8) for r in VALIDATORS}, 0.8)
    run["snapshots"] = [{"step": s, **{r: s / 10 for r in VALIDATORS}} for s in (1, 2, 3)]
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "metrics.json").write_text(json.dumps(run))
    tables = subprocess.run(["da-bench-tables", str(tmp_path / "runs"), "--out", str(tmp_path),
                             "--name", "v", "--validators"], cwd=repo, capture_output=True, text=True)
    assert tables.returncode == 0, tables.stderr
    assert "## Validators against the oracle" in (tmp_path / "v.md").read_text()
    pytest.importorskip("matplotlib")
    plot = subprocess.run(["da-bench-plot", "validators", str(tmp_path / "runs"), "--out",
                           str(tmp_path / "png")], cwd=repo, capture_output=True, text=True)
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "png" / "mnist_usps_dann_seed0.png").stat().st_size > 10_000


def test_a_sweep_objective_is_a_rules_pick_score_and_never_the_last_step(tmp_path):
    from da_bench.rules import objective

    metrics = {"selections": {"last_step": {"score": None, "test/tgt_acc": 0.9},
                              "im": {"score": 1.7, "test/tgt_acc": 0.8}}}
    assert objective(metrics, "im") == 1.7 and objective(metrics, "last_step") is None
    assert objective({"selections": {}}, "im") is None  # a run without snapshots
    with pytest.raises(ConfigError, match="optimized_metric='last_step'"):
        train(make_cfg(tmp_path / "no-data-here", tmp_path, ["optimized_metric=last_step"]))


def test_a_score_that_is_not_finite_is_never_a_pick(monkeypatch):
    """DEV's weights can overflow (a domain classifier that separates the domains): such a snapshot is no
    candidate for that rule, even as the first one, and the rule still picks among the finite scores."""
    from types import SimpleNamespace

    import da_bench.snapshots as snapshots

    scores = iter([float("nan"), -0.5, float("inf"), -0.2, float("-inf")])
    monkeypatch.setattr(snapshots, "score_all", lambda snapshot, rules: {"src_loss": next(scores)})
    selection = snapshots.SnapshotSelection(rules=["src_loss"])
    net, finite = torch.nn.Linear(2, 2), torch.zeros(4, 2)
    for step in (1, 2, 3, 4, 5):
        selection.record(SimpleNamespace(global_step=step, loggers=[]), net,
                         Snapshot(src_features=finite, src_logits=finite, tgt_features=finite, tgt_logits=finite))
    assert selection.best == {"src_loss": {"step": 4, "score": -0.2}}
    assert [h["step"] for h in selection.history] == [1, 2, 3, 4, 5]  # every score is kept in the history
