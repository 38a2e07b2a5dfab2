#!/usr/bin/env python
"""Training throughput: steps/s per method and pair, for each data path (device-resident data, the DataLoader
path, a torchvision-style PIL pipeline) and weight layout (NCHW, channels-last); each pair is decoded once.

    python scripts/bench.py                                  # CPU: source_only, dann, adda x mnist_mnistm, svhn_mnist
    python scripts/bench.py --device cuda --precision 32-true bf16-mixed
    python scripts/bench.py --paths resident --layouts nchw channels_last --pairs mnist_mnistm mnist_usps
    python scripts/bench.py --steps 300 --out results/bench/bench.md
    python scripts/bench.py --device cuda --updates-per-step 1 8    # also K=8 updates per Lightning step
    python scripts/bench.py --device cuda --graphs off on           # also the CUDA-graph fast path

Each cell trains the real method with the pair's config (net, batch size per domain) for --warmup steps
untimed, then --steps timed steps (no validation, logging or checkpoints). Pairs whose data is not under
--data-dir run on generated data of the same shapes and formats (marked 'synthetic'): throughput does not
depend on pixel values. Measured on the 2-core CPU of the development machine: see results/bench/bench.md for the
figures and the commit they came from.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import get_class, instantiate  # noqa: E402

from da_bench.callbacks import ChannelsLast  # noqa: E402
from da_bench.data.files import DataError  # noqa: E402
from da_bench.fast_path import GraphedUpdates  # noqa: E402
from da_bench.runners import EagerUpdates  # noqa: E402
from da_bench.run_dir import register_resolvers  # noqa: E402
from da_bench.provenance import cpu_name, git_commit  # noqa: E402

FIRST_FILE = {"mnist_mnistm": "MNIST/raw/train-images-idx3-ubyte.gz", "svhn_mnist": "SVHN/train_32x32.mat",
              "mnist_usps": "USPS/usps.h5", "usps_mnist": "USPS/usps.h5", "syn_svhn": "SynNumbers/synth_train_32x32.mat",
              "synsigns_gtsrb": "SynSigns/synthetic_data/train_labelling.txt"}


class StepTimer(pl.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.start, self.first = warmup, None, None

    def _sync(self, trainer):
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step >= self.warmup and self.start is None:
            self._sync(trainer)
            self.start, self.first = time.perf_counter(), trainer.global_step

    def on_train_end(self, trainer, *args):
        self._sync(trainer)
        timed = trainer.global_step - self.first if self.start is not None else 0
        self.steps_per_s = timed / (time.perf_counter() - self.start) if timed else float("nan")  # none timed


class PILItems(torch.utils.data.Dataset):
    """The common torchvision pipeline: a PIL image per sample, then ToTensor + Normalize."""

    def __init__(self, x, y, mean, std):
        from torchvision import transforms

        self.x, self.y = x.permute(0, 2, 3, 1).numpy(), y
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image

        image = self.x[i]
        return self.transform(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)), self.y[i]


def use_pil_pipeline(datamodule, workers):
    """Replace the pair's training batches with torchvision-style DataLoaders (bench only)."""
    from torch.utils.data import DataLoader

    from da_bench.data.pair import HideTargetLabels, LoaderBatches

    mean, std = datamodule.mean.view(-1).tolist(), datamodule.std.view(-1).tolist()
    loaders = {name: DataLoader(PILItems(*datamodule.splits[f"{name}_train"], mean, std), datamodule.batch_size,
                                shuffle=True, drop_last=True, num_workers=workers, persistent_workers=workers > 0)
               for name in ("src", "tgt")}
    expose = datamodule.expose_target_labels
    datamodule.train_dataloader = lambda: (LoaderBatches(loaders) if expose else HideTargetLabels(LoaderBatches(loaders)))


PATHS = ("resident", "dataloader", "torchvision")
LAYOUTS = ("nchw", "channels_last")


DECODED: dict = {}  # pair -> (splits, mean, std) on the CPU: each pair is read and decoded once per bench


def measure(data_root, method, pair, path, args, precision, out_dir, channels_last: bool, updates: int,
            graphs: bool = False) -> float:
    """Training steps (updates) per second of one cell."""
    resident = path == "resident"
    Path(out_dir).mkdir(parents=True, exist_ok=True)  # methods that write images (DSN) write them here
    overrides = [f"method={method}", f"data={pair}", f"paths.data_dir={data_root}", f"paths.output_dir={out_dir}",
                 f"data.resident={str(resident).lower()}", f"data.num_workers={0 if resident else args.workers}"]
    with initialize_config_dir(str(REPO / "da_bench" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    uses_target_labels = get_class(cfg.method._target_).uses_target_labels
    datamodule = instantiate(cfg.data, updates_per_step=updates, expose_target_labels=uses_target_labels)
    if pair in DECODED:
        splits, datamodule.mean, datamodule.std = DECODED[pair]
        datamodule.splits = dict(splits)  # setup() replaces entries with device copies, never the cached ones
    datamodule.prepare_data()
    DECODED.setdefault(pair, (dict(datamodule.splits), datamodule.mean, datamodule.std))
    runner = (GraphedUpdates(updates, rehearse=args.device != "cuda") if graphs else EagerUpdates(updates))
    module = instantiate(cfg.method, net=instantiate(cfg.net), runner=runner, _convert_="all")
    if path == "torchvision":
        datamodule.setup()
        use_pil_pipeline(datamodule, args.workers)
    timer = StepTimer(args.warmup)
    trainer = pl.Trainer(accelerator=args.device, devices=1, max_steps=args.warmup + args.steps, max_epochs=-1,
                         default_root_dir=out_dir,
                         precision=precision, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                         callbacks=[timer] + ([ChannelsLast()] if channels_last else []))
    trainer.fit(module, datamodule=datamodule)
    return timer.steps_per_s


def hardware(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{cpu_name()}, torch threads {torch.get_num_threads()}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["source_only", "dann", "adda"])
    parser.add_argument("--pairs", nargs="+", default=["mnist_mnistm", "svhn_mnist"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", nargs="+", default=["32-true"])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS, help="data paths to time")
    parser.add_argument("--layouts", nargs="+", default=["channels_last"], choices=LAYOUTS,
                        help="memory layouts of the conv weights to time (channels_last: the training default)")
    parser.add_argument("--updates-per-step", nargs="+", type=int, default=[1], metavar="K",
                        help="updates per Lightning training_step to time (updates_per_step; 1: the default)")
    parser.add_argument("--graphs", nargs="+", default=["off"], choices=["off", "on"],
                        help="time the CUDA-graph fast path too (runner=cuda_graphs; on a CPU: rehearsed)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the DataLoader path")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--data-dir", default=os.environ.get("DA_BENCH_DATA", "data"))
    parser.add_argument("--out", default=None, help="write the table here (e.g. results/bench/bench.md)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    register_resolvers()
    pl.seed_everything(0, verbose=False)

    tmp = Path(tempfile.mkdtemp(prefix="da_bench_bench_"))
    synthetic_root = None
    rows, columns = [], [(path, layout, k, graphs == "on") for path in args.paths for layout in args.layouts
                         for k in args.updates_per_step for graphs in args.graphs]
    for pair in args.pairs:
        root, source = Path(args.data_dir), "real"
        if not (root / FIRST_FILE[pair]).exists():
            if synthetic_root is None:
                from tests.fixtures import make_all

                synthetic_root = tmp / "synthetic"
                os.environ["DA_BENCH_EXTRA_CHECKSUMS"] = str(make_all(synthetic_root, scale=8))
            root, source = synthetic_root, "synthetic"
        for method in args.methods:
            for precision in args.precision:
                try:
                    speed = [measure(root, method, pair, path, args, precision, tmp / "run", layout == "channels_last",
                                     k, graphs) for path, layout, k, graphs in columns]
                except DataError as err:
                    print(f"skip {pair}: {err}", file=sys.stderr)
                    break
                rows.append((method, pair, source, precision, *speed, *(s / speed[0] for s in speed[1:])))
                print(" | ".join(f"{v:.2f}" if isinstance(v, float) else v for v in rows[-1]), flush=True)
                report(rows, columns, args, argv)

    text = report(rows, columns, args, argv)
    print("\n" + text)
    if args.out:
        print(f"wrote {args.out}")


def report(rows: list, columns: list, args, argv) -> str:
    names = [f"{path} {layout}" + (f" x{k}" if k > 1 else "") + (" graphs" if graphs else "")
             for path, layout, k, graphs in columns]
    table = ["| method | pair | data | precision | " + " | ".join(f"{n} steps/s" for n in names)
             + "".join(f" | {n} / {names[0]}" for n in names[1:]) + " |",
             "|---" * (4 + 2 * len(names) - 1) + "|"]
    table += ["| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else v for v in r) + " |" for r in rows]
    text = (f"# Training throughput\n\nCommand: `python scripts/{Path(__file__).name} {' '.join(argv or sys.argv[1:])}`\n"
            f"Commit: {git_commit()}; device: {args.device} ({hardware(args.device)}); torch {torch.__version__}; "
            f"{args.warmup} warm-up + {args.steps} timed steps per cell; DataLoader path with "
            f"{args.workers} workers.\n"
            f"Batch = the pair's batch_size per domain (a step sees batch source + batch target images).\n"
            f"Paths: resident = data.resident=true (uint8 on the device, batched indexing + normalisation); "
            f"dataloader = data.resident=false (per-sample uint8 tensors, default collate); torchvision = the common "
            f"alternative, a PIL image per sample through ToTensor + Normalize (bench only). Layouts: nchw, or "
            f"channels_last (conv weights in NHWC memory, callbacks.channels_last: the training default); "
            f"xK = updates_per_step=K (K updates per Lightning step); graphs = the CUDA-graph fast path "
            f"(runner=cuda_graphs; rehearsed eagerly off CUDA).\n\n"
            + "\n".join(table) + "\n")
    if args.out:  # after every row: a bench stopped by a time limit keeps the rows it finished
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return text


if __name__ == "__main__":
    main()
