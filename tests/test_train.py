import csv
import json
import sys

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from da_bench.errors import RunInterrupted
from da_bench.train import train
from tests.helpers import CONF, assert_same_weights, last_checkpoint, make_cfg, run_cli

METHODS = ["source_only", "target_only", "dann", "adda", "ddc", "dan", "coral", "wdgrl", "dsn", "daan"]
PAIRS = ["mnist_mnistm", "svhn_mnist", "mnist_usps", "usps_mnist", "syn_svhn", "synsigns_gtsrb"]
ONE_PAIR_PER_NET = ["mnist_mnistm", "svhn_mnist", "mnist_usps", "synsigns_gtsrb"]  # dann_mnist, dann_svhn, lenet, dann_gtsrb
# the methods that build networks of their own from the net's dimensions (a discriminator, a critic, private
# encoders and a decoder, per-class heads, a target encoder); the others only read the head's activations
BUILDERS = ["dann", "adda", "wdgrl", "dsn", "daan"]
# every method on three nets; on dann_svhn (the largest, 4 s a cell) the builders; the pairs that share a net
# (usps_mnist: lenet, syn_svhn: dann_svhn) with dann only
CELLS = ([(m, p) for m in METHODS for p in ONE_PAIR_PER_NET if p != "svhn_mnist" or m in BUILDERS]
         + [("dann", p) for p in PAIRS if p not in ONE_PAIR_PER_NET])


@pytest.mark.parametrize("method,pair", CELLS)
def test_every_method_on_every_net_and_every_pair(fixture_data, tmp_path, method, pair):
    # 3 steps (one in-training validation at step 3): the 42 cells stay within the test budget
    cfg = make_cfg(fixture_data, tmp_path, [f"method={method}", f"data={pair}", "trainer.max_steps=3"])
    metrics = train(cfg)
    for key in ("method", "data", "seed", "test/tgt_acc", "test/src_acc", "steps", "wall_s", "commit", "selection"):
        assert key in metrics
    assert metrics["method"] == method and metrics["data"] == pair and metrics["steps"] == 3
    assert 0.0 <= metrics["test/tgt_acc"] <= 1.0 and metrics["selection"] == "last_step"
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    # loadable as a resume loads it (weights only): a pickled optimiser factory would make the run unresumable
    assert last_checkpoint(tmp_path)["global_step"] == 3


def test_the_dataloader_path_trains_the_resident_paths_model(fixture_data, tmp_path):
    # both draw the batches of StepIndices; on the CPU they are the same tensors, so the same weights
    runs = {path: train(make_cfg(fixture_data, tmp_path / path, ["method=dann", f"data.resident={path == 'resident'}"]))
            for path in ("resident", "dataloader")}
    assert runs["dataloader"]["steps"] == 6 and runs["dataloader"]["test/tgt_acc"] == runs["resident"]["test/tgt_acc"]
    assert_same_weights(tmp_path / "dataloader", tmp_path / "resident")


def test_finished_run_is_skipped(fixture_data, tmp_path):
    cfg = make_cfg(fixture_data, tmp_path, ["method=source_only"])
    first = train(cfg)
    (tmp_path / "checkpoints" / "last.ckpt").unlink()
    assert train(cfg) == first  # no training: the checkpoint is not rewritten
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def read_ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_interrupted_run_resumes_and_schedules_continue(fixture_data, tmp_path):
    interrupt = ["+callbacks.interrupt._target_=tests.helpers.InterruptAt", "+callbacks.interrupt.step=4"]
    base = ["method=dann", "trainer.max_steps=10", "trainer.val_check_interval=100"]
    with pytest.raises(RunInterrupted) as interrupted:  # Ctrl-C: the on-exception checkpoint, then exit 130
        train(make_cfg(fixture_data, tmp_path, base + interrupt))
    assert interrupted.value.exit_code == 130
    assert not (tmp_path / "metrics.json").exists()
    first = read_ckpt(tmp_path / "checkpoints" / "last.ckpt")
    assert first["global_step"] == 4
    assert first["callbacks"]["Timer"]["time_elapsed"]["train"] > 0
    first["callbacks"]["Timer"]["time_elapsed"]["train"] = 1000.0  # a long first segment, to see it counted
    torch.save(first, tmp_path / "checkpoints" / "last.ckpt")

    metrics = train(make_cfg(fixture_data, tmp_path, base))
    assert metrics["steps"] == 10 and metrics["resumed_from"].endswith("last.ckpt")
    assert 1000.0 < metrics["wall_s"] < 1000.0 + 300  # both segments count
    ckpt = read_ckpt(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 10
    lr = ckpt["optimizer_states"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(0.01 * (1 + 10 * 1.0) ** -0.75)
    # the GRL coefficient continued from step 4: logged values never restart at 0
    import csv
    rows = list(csv.DictReader(open(tmp_path / "csv" / "metrics.csv")))
    lambdas = [(int(r["step"]), float(r["train/grl_lambda"])) for r in rows if r.get("train/grl_lambda")]
    assert [s for s, _ in lambdas] == sorted(s for s, _ in lambdas)
    assert all(b >= a for (_, a), (_, b) in zip(lambdas, lambdas[1:]))
    # the curve survived the resume: the first segment's steps are still there, none twice
    steps = [s for s, _ in lambdas]
    assert steps[0] <= 2 and steps[-1] >= 9 and len(steps) == len(set(steps))


def test_adda_reuses_a_finished_source_only_run(fixture_data, tmp_path):
    src_dir = tmp_path / "src"
    train(make_cfg(fixture_data, src_dir, ["method=source_only", "data=mnist_usps"]))
    cfg = make_cfg(fixture_data, tmp_path / "adda",
                   ["method=adda", "data=mnist_usps", f"method.source_checkpoint={src_dir}"])
    metrics = train(cfg)
    source_state = read_ckpt(src_dir / "checkpoints" / "last.ckpt")["state_dict"]
    adda_state = read_ckpt(tmp_path / "adda" / "checkpoints" / "last.ckpt")["state_dict"]
    # stage 1 skipped: the source net is the source_only net, untouched by the 6 adaptation steps
    assert all(torch.equal(adda_state[k], v) for k, v in source_state.items() if k.startswith("net."))
    assert not torch.equal(adda_state["target_encoder.0.weight"], source_state["net.encoder.0.weight"])
    assert not any(k.startswith("target_classifier.") for k in adda_state)  # the paper's shared C by default
    source_only = json.loads((src_dir / "metrics.json").read_text())
    assert metrics["test/src_acc"] == pytest.approx(source_only["test/src_acc"])
    # the stage-1 column is the source model on the target test set: the source_only run's own number
    assert metrics["test/tgt_acc_stage1"] == pytest.approx(source_only["test/tgt_acc"])
    assert "val/tgt_acc_stage1_oracle" in metrics


def test_oracle_alone_sees_target_labels(fixture_data, tmp_path):
    seen = {}
    from da_bench.methods import DANN, TargetOnly

    for name, cls in (("dann", DANN), ("target_only", TargetOnly)):
        original = cls.update

        def spy(self, batch, _name=name, _orig=original):
            seen.setdefault(_name, set(batch))
            return _orig(self, batch)

        cls.update = spy
        try:
            train(make_cfg(fixture_data, tmp_path / name, [f"method={name}"]))
        finally:
            cls.update = original
    assert "tgt_y" not in seen["dann"] and "tgt_y" in seen["target_only"]


def config_names(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("name", config_names("domain"))
def test_every_domain_config_instantiates_a_reader(fixture_data, tmp_path, name):
    cfg = make_cfg(fixture_data, tmp_path, debug=None)
    where = {"root": str(fixture_data), "download": False, "cache_dir": str(tmp_path)}
    node = OmegaConf.load(CONF / "domain" / f"{name}.yaml")
    if "digits" in node:  # digit scenes: the reader of their digit set is nested
        node = OmegaConf.merge(node, {"digits": where, "num_train": 16, "num_test": 8})
    else:
        node = OmegaConf.merge(node, where)
    x, y = instantiate(node).load("test")
    assert len(x) == len(y) > 0 and cfg.paths.data_dir == str(fixture_data)


@pytest.mark.parametrize("group, name", [(g, n) for g in ("data", "method", "net", "trainer", "logger", "callbacks",
                                                        "debug", "table", "schedule", "hparams_search", "experiment")
                                         for n in config_names(g)])
def test_every_config_composes_and_instantiates(fixture_data, tmp_path, group, name):
    pairing = []  # segmentation methods and pairs go together
    if group == "method" and (name.startswith("seg_") or name == "clan"):
        pairing = ["data=mnist_mnistm_seg"]
    elif group == "data" and name.endswith("_seg"):
        pairing = ["method=seg_source_only"]
    if pairing or group == "net" and name.startswith("seg"):
        pairing += ["data.source.source.num_train=16", "data.target.source.num_train=16"]
    if group == "net" and name.startswith("seg"):
        pairing += ["data=mnist_mnistm_seg", "method=seg_source_only"]
    cfg = make_cfg(fixture_data, tmp_path, [f"{group}={name}", "data.batch_size=8", *pairing], debug=None)
    instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    instantiate(cfg.data).prepare_data()
    for node in [*(cfg.logger or {}).values(), *(cfg.callbacks or {}).values()]:
        instantiate(node)
    if cfg.trainer.get("accelerator") != "gpu" or torch.cuda.is_available():
        instantiate(cfg.trainer)


def test_an_experiment_preset_is_the_overrides_it_names(fixture_data, tmp_path):
    preset = make_cfg(fixture_data, tmp_path, ["experiment=adda_authors_code", "data=mnist_usps"], debug=None)
    spelled = make_cfg(fixture_data, tmp_path, ["method=adda", "data=mnist_usps", "data.normalize=unit",
                                                "net.init=glorot_uniform", "method.adapt_classifier=true",
                                                "method.pretrain_optimizer.weight_decay=2.5e-5"], debug=None)
    for key in ("method", "net", "data"):
        assert preset[key] == spelled[key], key
    long = make_cfg(fixture_data, tmp_path, ["experiment=dann_paper_long"], debug=None)
    spelled = make_cfg(fixture_data, tmp_path, ["method=dann", "data=mnist_mnistm", "schedule=paper_long"], debug=None)
    for key in ("method", "net", "data", "trainer"):
        assert long[key] == spelled[key], key
    assert long.trainer.max_steps == 43_000 and long.method._target_.endswith("DANN")


def test_paper_long_is_dann_jmlr_batch_for_fifty_source_epochs(fixture_data, tmp_path):
    """JMLR 2016 sec. 5.2.2: 128-image batches, half source; 50 epochs of MNIST's 55,000 training images."""
    cfg = make_cfg(fixture_data, tmp_path, ["method=dann", "schedule=paper_long"], debug=None)
    assert cfg.data.batch_size == 64
    assert cfg.trainer.max_steps * cfg.data.batch_size >= 50 * 55_000
    assert cfg.trainer.val_check_interval == cfg.trainer.max_steps // cfg.snapshots


def test_cli_missing_data_is_a_clear_error(tmp_path):
    result = run_cli([f"paths.data_dir={tmp_path / 'nowhere'}", f"paths.log_dir={tmp_path}", "debug=fast"])
    assert result.returncode == 2
    assert "missing data file" in result.stderr and str(tmp_path / "nowhere" / "MNIST" / "raw") in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def run_cli_without_torch(args):
    """The command line in a process where importing torch or Lightning fails."""
    code = ("import runpy, sys; sys.modules.update(torch=None, pytorch_lightning=None); "
            "runpy.run_module('da_bench.train', run_name='__main__')")
    return run_cli(args, command=(sys.executable, "-c", code))


def test_help_and_config_errors_answer_before_torch_is_imported(tmp_path):
    result = run_cli_without_torch(["--help"])
    assert result.returncode == 0, result.stderr[-1500:]
    for word in ("method=dann data=mnist_mnistm", "trainer.max_steps", "paths.data_dir", "method:", "data:"):
        assert word in result.stdout
    result = run_cli_without_torch(["seed=-1", f"paths.log_dir={tmp_path}"])
    lines = [line for line in result.stderr.splitlines() if line.startswith("da_bench:")]
    assert result.returncode == 2 and lines == ["da_bench: config error: seed=-1: must be >= 0"], result.stderr[-1500:]
    assert "Traceback" not in result.stderr + result.stdout
    assert not list(tmp_path.rglob("*"))  # the refused config left no run directory behind


def test_dsn_is_the_papers_model_with_its_terms_off_before_the_start_step(fixture_data, tmp_path):
    """h_c is the shared net's first fully connected layer (dann_mnist: fc3, 100-d), the private codes and the
    decoder input match it, and before da_start_step only the task loss trains (debug=fast logs every step)."""
    cfg = make_cfg(fixture_data, tmp_path / "dsn", ["method=dsn", "data=mnist_mnistm", "method.da_start_step=3"])
    method = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    x = torch.randn(8, 3, 28, 28)
    assert method.shared_code(x).shape == (8, 100) and method.private["tgt"](x).shape == (8, 100)
    assert method.decoder(method.shared_code(x)).shape == x.shape
    assert method.net.classifier[2:](method.shared_code(x)).shape == (8, 10)
    train(cfg)
    with open(tmp_path / "dsn" / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss_cls")]
    assert [bool(r.get("train/loss_recon")) for r in rows] == [int(r["step"]) >= 3 for r in rows] == \
        [False, False, False, True, True, True]
    assert all(r.get("train/loss_dom") and r.get("train/loss_diff") for r in rows[3:])
    from PIL import Image

    with Image.open(tmp_path / "dsn" / "reconstructions.png") as im:
        assert im.size[0] > 8 * 28 and im.size[1] > 8 * 28  # 8 images x (2 domains x 4 rows)


def test_daan_logs_omega(fixture_data, tmp_path):
    train(make_cfg(fixture_data, tmp_path / "daan", ["method=daan", "method.omega_interval=2"]))
    omegas = [float(r["train/omega"]) for r in csv.DictReader(open(tmp_path / "daan" / "csv" / "metrics.csv"))
              if r.get("train/omega")]
    assert omegas and all(0.0 <= w <= 1.0 for w in omegas)


def test_adda_adapt_classifier_trains_a_target_copy_of_the_head(fixture_data, tmp_path):
    src_dir = tmp_path / "src"
    train(make_cfg(fixture_data, src_dir, ["method=source_only", "data=mnist_usps"]))
    cfg = make_cfg(fixture_data, tmp_path / "adda", ["method=adda", "data=mnist_usps", "method.adapt_classifier=true",
                                                      f"method.source_checkpoint={src_dir}"])
    train(cfg)
    source_state = read_ckpt(src_dir / "checkpoints" / "last.ckpt")["state_dict"]
    adda_state = read_ckpt(tmp_path / "adda" / "checkpoints" / "last.ckpt")["state_dict"]
    heads = [k[len("net."):] for k in source_state if k.startswith("net.classifier.")]
    assert heads and all(torch.equal(adda_state[f"net.{k}"], source_state[f"net.{k}"]) for k in heads)
    assert any(not torch.equal(adda_state[f"target_{k}"], source_state[f"net.{k}"]) for k in heads)
    adda = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    adda.load_state_dict(adda_state)
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(adda.classify(x, "tgt"), adda.target_classifier(adda.target_encoder(x)))
    assert torch.allclose(adda.classify(x, "src"), adda.net.classifier(adda.net.encoder(x)))
    assert torch.allclose(adda.embed(x, "tgt")[1], adda.classify(x, "tgt"))


@pytest.mark.parametrize("net, adversary_input, width", [("dann_mnist", "logits", 10), ("dann_mnist", "features", 2352),
                                                         ("lenet", "logits", 10), ("lenet", "features", 500)])
def test_adda_discriminates_the_output_layer_by_default(fixture_data, tmp_path, net, adversary_input, width):
    cfg = make_cfg(fixture_data, tmp_path, [f"net={net}", "method=adda", f"method.adversary_input={adversary_input}"])
    adda = instantiate(cfg.method, net=instantiate(cfg.net), _convert_="all")
    assert adda.discriminator.net[0].in_features == width
    default = instantiate(make_cfg(fixture_data, tmp_path, [f"net={net}", "method=adda"]).method,
                          net=instantiate(cfg.net), _convert_="all")
    assert default.hparams.adversary_input == "logits"


def test_metrics_record_the_splits_and_the_val_curves(fixture_data, tmp_path):
    metrics = train(make_cfg(fixture_data, tmp_path, ["method=dann"]))
    assert metrics["splits"] == {"src_train": 54, "src_val": 6, "src_test": 30,
                                 "tgt_train": 54, "tgt_val": 6, "tgt_test": 30}  # generated from the 60 digits
    assert {"val/src_acc", "val/tgt_acc_oracle", "test/src_acc", "test/tgt_acc"} <= set(metrics)
    assert metrics["collapsed"] == (metrics["val/src_acc"] < 0.2)
    import csv
    columns = set(next(csv.reader(open(tmp_path / "csv" / "metrics.csv"))))
    assert "val/tgt_acc" not in columns and "val/tgt_acc_oracle" in columns


def test_train_values_reach_lightning_only_on_the_logged_steps(fixture_data, tmp_path, monkeypatch):
    """Method.log_train: self.log costs ~1 ms of Python, so the runner hands the values to Lightning on the
    steps the loggers write, and the CSV curve is the same as if every step had logged."""
    import csv

    from da_bench.methods.dann import DANN

    calls, log_dict = [], DANN.log_dict

    def counted(self, values, **kwargs):
        if any(name.startswith("train/") for name in values):  # (the lr-* values go on the same steps)
            calls.append(self.global_step)
        return log_dict(self, values, **kwargs)

    monkeypatch.setattr(DANN, "log_dict", counted)
    train(make_cfg(fixture_data, tmp_path, ["method=dann", "trainer.max_steps=6", "trainer.log_every_n_steps=3"]))
    rows = [r for r in csv.DictReader(open(tmp_path / "csv" / "metrics.csv")) if r.get("train/loss_cls")]
    # the runner logs after the update, when the global step already counts it: updates 2 and 5 of 0-5
    assert calls == [3, 6] and [int(r["step"]) for r in rows] == [2, 5]


@pytest.mark.parametrize("net, pair", [("dann_mnist", "mnist_mnistm"), ("dann_svhn", "svhn_mnist"),
                                       ("dann_gtsrb", "synsigns_gtsrb"), ("lenet", "mnist_usps"),
                                       ("seg_digits", "mnist_mnistm_seg")])
def test_channels_last_is_the_same_model(tmp_path, net, pair):
    """callbacks.channels_last changes the memory layout of the weights, not the model: the same outputs and
    gradients for the same weights and batch, within float tolerance."""
    import copy

    from da_bench.callbacks import ChannelsLast

    cfg = make_cfg(tmp_path, tmp_path, [f"net={net}", f"data={pair}"])
    torch.manual_seed(0)
    nchw = instantiate(cfg.net)
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    x = torch.randn(4, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    outputs = []
    for model in (nchw, nhwc):
        out = model(x)
        out.square().mean().backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(nchw.named_parameters(), nhwc.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-6, msg=name)
        if a.dim() == 4:
            assert b.is_contiguous(memory_format=torch.channels_last) and a.is_contiguous(), name
    assert isinstance(instantiate(cfg.callbacks.channels_last), ChannelsLast)  # on by default


def test_a_run_trains_in_channels_last(fixture_data, tmp_path):
    train(make_cfg(fixture_data, tmp_path, ["method=dann"]))
    state = read_ckpt(tmp_path / "checkpoints" / "last.ckpt")["state_dict"]
    assert state["net.encoder.0.weight"].is_contiguous(memory_format=torch.channels_last)
    train(make_cfg(fixture_data, tmp_path / "nchw", ["method=dann", "~callbacks.channels_last"]))
    state = read_ckpt(tmp_path / "nchw" / "checkpoints" / "last.ckpt")["state_dict"]
    assert not state["net.encoder.0.weight"].is_contiguous(memory_format=torch.channels_last)  # 3 input channels
