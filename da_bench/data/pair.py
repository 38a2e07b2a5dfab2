"""The LightningDataModule of a source -> target pair.

Each domain's split is read once as uint8 (N x C x H x W), brought to the pair's geometry (size and
channels), and kept as uint8. Two ways to serve it:
- resident (default): the tensors live on the training device; batches are drawn by index with shuffled
  epochs and normalised there in one tensor op, so the hot loop has no per-sample Python;
- `resident=false`: an ordinary torch DataLoader over per-sample items, for data that does not fit.

Splits: each domain's training split is divided, by a fixed data seed (`split_seed`, not the run seed),
into `train` and a held-out `val` (min(val_size, 10 %) of it); `test` is the published test split. Curves
are drawn on the val splits; the test splits are read once, after training, for the reported numbers.

A training batch is a dict: src_x, src_y, tgt_x (and tgt_y only when the method declares it trains on
target labels, i.e. the oracle: unsupervised methods never see them). Evaluation batches are (x, y), from
two loaders: source (index 0) and target (index 1), val splits during training, test splits at the end.
The target val labels are read only by curves logged as oracle (`val/tgt_acc_oracle`).
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from da_bench.data.files import DataError
from da_bench.data.sources.base import Source

log = logging.getLogger(__name__)
GEOMETRIES = ("resize", "pad", "center_crop")
NORMALISATIONS = ("pixel_mean", "minus_half", "unit", "standardize")


class Domain:
    """One side of a pair: a `Source` plus how its images are brought to the pair's input.

    geometry: 'resize' (bilinear, antialiased), 'pad' (zero-pad centred) or 'center_crop';
    binarize: threshold at > 0 (the tf-dann MNIST preprocessing); val_size: images held out of the
    training split for validation (at most 10 % of it); train_subset: keep a fixed random subset of what
    remains for training (the ADDA protocol's 2,000 MNIST / 1,800 USPS), drawn with subset_seed.
    """

    def __init__(self, source: Source, geometry: str = "resize", binarize: bool = False,
                 train_subset: int | None = None, subset_seed: int = 0, val_size: int = 5000):
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, not {geometry!r}")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, not {val_size}")
        self.source, self.geometry, self.binarize = source, geometry, binarize
        self.train_subset, self.subset_seed, self.val_size = train_subset, subset_seed, val_size

    def load_all(self, size: int, channels: int, split_seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{'train', 'val', 'test'}: the training split divided by `split_seed` into train and val, and test."""
        images, labels = self.source.load("train")
        order = np.random.default_rng(split_seed).permutation(len(labels))
        n_val = min(self.val_size, len(labels) // 10)
        val, rest = np.sort(order[:n_val]), order[n_val:]
        if self.train_subset and self.train_subset < len(rest):
            rest = rest[np.random.default_rng(self.subset_seed).permutation(len(rest))[: self.train_subset]]
        return {"train": self.prepare(images[np.sort(rest)], labels[np.sort(rest)], size, channels),
                "val": self.prepare(images[val], labels[val], size, channels),
                "test": self.load("test", size, channels)}

    def load(self, split: str, size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One published split, whole, at the pair's shape."""
        return self.prepare(*self.source.load(split), size, channels)

    def prepare(self, images: np.ndarray, labels: np.ndarray, size: int, channels: int):
        x = torch.from_numpy(images if images.flags.writeable else images.copy())
        if labels.ndim == 3 and x.shape[-1] != size:  # resampling would blur a mask's classes
            raise ValueError(f"{self.source.name}: segmentation scenes are {x.shape[-1]} px; set data.image_size to "
                             f"the scenes' canvas ({size} given)")
        if self.binarize:
            x = (x > 0).to(torch.uint8) * 255
        x = fit_geometry(x, size, self.geometry)
        return fit_channels(x, channels), torch.from_numpy(labels if labels.flags.writeable else labels.copy())


def fit_geometry(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """uint8 N x C x H x W -> N x C x size x size."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if mode == "resize":
        out = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return out.round_().clamp_(0, 255).to(torch.uint8)
    if mode == "pad":
        if h > size or w > size:
            raise ValueError(f"cannot pad {h}x{w} images to {size}")
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(x, (left, size - w - left, top, size - h - top))
    if h < size or w < size:
        raise ValueError(f"cannot centre-crop {h}x{w} images to {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size].contiguous()


def fit_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    if x.shape[1] == 3 and channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x.float() * w).sum(1, keepdim=True).round_().to(torch.uint8)
    raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}")


def stream_seed(seed: int, rank: int, domain: int, epoch: int) -> int:
    """The seed of one domain epoch's permutation (a pure function: nothing to carry across a resume)."""
    return (((seed * 1_000_003 + rank) * 101 + domain) * 1_000_003 + epoch) % 2**63


class StepIndices:
    """Index batches of one domain as a function of the update step alone: epoch e, of n // batch_size
    batches (the remainder dropped), is a permutation seeded by (seed, rank, domain, e). A run resumed at
    step s therefore draws exactly the batches an uninterrupted run draws from step s on.

    Example: `next(iter(StepIndices(10, 4, seed=0, domain=0, start_step=2)))` is the first batch of epoch 1
    (2 batches per epoch).
    """

    def __init__(self, n: int, batch_size: int, seed: int, domain: int, start_step: int = 0, rank: int = 0,
                 device: torch.device | str = "cpu"):
        self.n, self.batch_size, self.seed, self.domain = n, batch_size, seed, domain
        self.start_step, self.rank, self.device = start_step, rank, torch.device(device)

    def __iter__(self):
        per_epoch = self.n // self.batch_size
        epoch, first = divmod(self.start_step, per_epoch)
        while True:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(stream_seed(self.seed, self.rank, self.domain, epoch))
            perm = torch.randperm(self.n, generator=gen, device=self.device)
            for i in range(first, per_epoch):
                yield perm[i * self.batch_size : (i + 1) * self.batch_size]
            epoch, first = epoch + 1, 0


class ResidentBatches:
    """Endless training batches drawn on the device by `StepIndices`, one per domain. Labels are gathered
    only for the domains in `labelled` (the target's are never touched for unsupervised methods)."""

    def __init__(self, domains: dict, indices: dict, normalise, labelled=("src", "tgt")):
        self.domains, self.indices, self.normalise = domains, indices, normalise
        self.labelled = set(labelled)

    def __iter__(self):
        streams = {name: iter(self.indices[name]) for name in self.domains}
        while True:
            batch = {}
            for name, (x, y) in self.domains.items():
                idx = next(streams[name])
                batch[f"{name}_x"] = self.normalise(x[idx])
                if name in self.labelled:
                    batch[f"{name}_y"] = y[idx]
            yield batch


class ResidentEval:
    """Sequential (x, y) batches over a resident split."""

    def __init__(self, x, y, batch_size: int, normalise):
        self.x, self.y, self.batch_size, self.normalise = x, y, batch_size, normalise

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for i in range(0, len(self.x), self.batch_size):
            yield self.normalise(self.x[i : i + self.batch_size]), self.y[i : i + self.batch_size]


class ItemDataset(Dataset):
    """Per-sample items for the DataLoader path: uint8 -> normalised float, one image at a time."""

    def __init__(self, x, y, normalise):
        self.x, self.y, self.normalise = x, y, normalise

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.normalise(self.x[i : i + 1])[0], self.y[i]


class IndexLists:
    """A DataLoader batch_sampler from index tensors (the DataLoader path draws the resident path's batches)."""

    def __init__(self, indices):
        self.indices = indices

    def __iter__(self):
        return (idx.tolist() for idx in self.indices)


class LoaderBatches:
    """Endless training batches from one DataLoader per domain (a finite one is restarted when exhausted)."""

    def __init__(self, loaders: dict):
        self.loaders = loaders

    def __iter__(self):
        iters = {name: iter(dl) for name, dl in self.loaders.items()}
        while True:
            batch = {}
            for name, dl in self.loaders.items():
                try:
                    x, y = next(iters[name])
                except StopIteration:
                    iters[name] = iter(dl)
                    x, y = next(iters[name])
                batch[f"{name}_x"], batch[f"{name}_y"] = x, y
            yield batch


class DomainPair(pl.LightningDataModule):
    """Source -> target pair at a common input shape (channels x image_size x image_size).

    batch_size is per domain (a DANN step sees batch_size source + batch_size target images).
    normalize: 'pixel_mean' ((x - mean over both training sets) / 255, the tf-dann input scaling),
    'minus_half' ((x/255 - .5) / .5), 'unit' (x/255) or 'standardize' (per-channel mean / std).
    expose_target_labels: training batches carry target labels (the oracle only; hidden otherwise).
    updates_per_step: batches handed to each training_step as one list (methods/base.py).
    """

    def __init__(self, source: Domain, target: Domain, image_size: int, channels: int, num_classes: int,
                 batch_size: int = 64, eval_batch_size: int = 1000, normalize: str = "pixel_mean",
                 resident: bool = True, num_workers: int = 0, seed: int = 0, split_seed: int = 0,
                 expose_target_labels: bool = False, updates_per_step: int = 1):
        super().__init__()
        if normalize not in NORMALISATIONS:
            raise ValueError(f"normalize must be one of {NORMALISATIONS}, not {normalize!r}")
        self.source, self.target = source, target
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.normalize, self.resident, self.num_workers, self.seed = normalize, resident, num_workers, seed
        self.split_seed = split_seed
        self.expose_target_labels, self.updates_per_step = expose_target_labels, updates_per_step
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.mean = self.std = None

    def prepare_data(self):
        """Read, check and decode every split once (downloads happen here when allowed)."""
        if self.splits:
            return
        for dom_name, dom in (("src", self.source), ("tgt", self.target)):
            for split, tensors in dom.load_all(self.image_size, self.channels, self.split_seed).items():
                self.splits[f"{dom_name}_{split}"] = tensors
        for key in ("src_train", "tgt_train"):
            if len(self.splits[key][1]) < self.batch_size:
                raise DataError(f"{key} has {len(self.splits[key][1])} images, fewer than "
                                f"data.batch_size={self.batch_size}")
        self.mean, self.std = input_stats([self.splits["src_train"][0], self.splits["tgt_train"][0]], self.normalize)
        log.info("pair ready: %s", {k: tuple(v[0].shape) for k, v in self.splits.items()})

    def setup(self, stage=None):
        self.prepare_data()
        if self.resident and self.trainer is not None:
            device = self.trainer.strategy.root_device
            self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}
            self.mean, self.std = self.mean.to(device), self.std.to(device)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 N x C x H x W -> float, (x/255 - mean) / std."""
        return (x.float().div_(255) - self.mean.to(x.device)) / self.std.to(x.device)

    def train_dataloader(self):
        rank = self.trainer.global_rank if self.trainer is not None else 0
        step = self.trainer.global_step if self.trainer is not None else 0  # > 0 when resumed
        domains = {"src": self.splits["src_train"], "tgt": self.splits["tgt_train"]}
        device = next(iter(domains.values()))[0].device if self.resident else torch.device("cpu")
        indices = {name: StepIndices(len(y), self.batch_size, self.seed, i, step, rank, device)
                   for i, (name, (_, y)) in enumerate(domains.items())}
        if self.resident:
            labelled = ("src", "tgt") if self.expose_target_labels else ("src",)
            batches = ResidentBatches(domains, indices, self.normalise, labelled)
        else:
            # a generator of its own (it only seeds the workers): starting the loader leaves the global RNG alone
            batches = LoaderBatches({
                name: DataLoader(ItemDataset(x, y, self.normalise), batch_sampler=IndexLists(indices[name]),
                                 num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                                 generator=torch.Generator())
                for name, (x, y) in domains.items()
            })
        batches = HideTargetLabels(batches) if not self.expose_target_labels else batches
        return UpdateGroups(batches, self.updates_per_step) if self.updates_per_step > 1 else batches

    @property
    def split_sizes(self) -> dict[str, int]:
        """Images per split, e.g. {'src_train': 55000, 'src_val': 5000, 'src_test': 10000, ...}."""
        return {k: len(y) for k, (_, y) in self.splits.items()}

    def _eval_loaders(self, split: str):
        loaders = []
        for key in (f"src_{split}", f"tgt_{split}"):
            x, y = self.splits[key]
            if self.resident:
                loaders.append(ResidentEval(x, y, self.eval_batch_size, self.normalise))
            else:
                # a generator of its own: a validation pass must not draw from the global RNG (resume, RandomState)
                loaders.append(DataLoader(ItemDataset(x, y, self.normalise), self.eval_batch_size,
                                          num_workers=self.num_workers, generator=torch.Generator()))
        return loaders

    def val_dataloader(self):
        return self._eval_loaders("val")

    def train_sample_dataloaders(self, size: int = 2000) -> list:
        """[source, target] loaders over a fixed random sample of each training split (at most `size` images,
        drawn with split_seed: the same sample at every snapshot and in every run of the pair), for validators
        that fit on training features (DEV's domain classifier). The target's labels never travel: zeros."""
        loaders = []
        for key in ("src_train", "tgt_train"):
            x, y = self.splits[key]
            generator = torch.Generator().manual_seed(self.split_seed)
            pick = torch.randperm(len(y), generator=generator)[:size].to(x.device)
            labels = y[pick] if key == "src_train" else torch.zeros_like(y[pick])
            loaders.append(ResidentEval(x[pick], labels, self.eval_batch_size, self.normalise))
        return loaders

    def test_dataloader(self):
        return self._eval_loaders("test")


class UpdateGroups:
    """Lists of `size` consecutive batches: the batches of one `training_step` that runs `size` updates
    (`updates_per_step`, methods/base.py). The stream of batches is the same as one at a time."""

    def __init__(self, batches, size: int):
        self.batches, self.size = batches, size

    def __iter__(self):
        it = iter(self.batches)
        while True:
            yield [next(it) for _ in range(self.size)]


class HideTargetLabels:
    """Drops tgt_y from every batch: unsupervised methods cannot read target labels by accident."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        for batch in self.batches:
            batch.pop("tgt_y", None)
            yield batch


def input_stats(images: Sequence[torch.Tensor], mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) in [0, 1] units so that every mode is (x/255 - mean) / std, over all of
    `images` (uint8, N x C x H x W each: the source and target training sets).

    Exact, from each channel's histogram of the 256 pixel values, without a float copy of the images:
    on MNIST -> MNIST-M's 110k training images, 0.8 s on the 2-core CPU instead of 4.2 for float64 sums
    of the concatenated sets, and the same float32 mean and std, bit for bit.
    """
    c = images[0].shape[1]
    ones, zeros = torch.ones(1, c, 1, 1), torch.zeros(1, c, 1, 1)
    if mode == "unit":
        return zeros, ones
    if mode == "minus_half":
        return zeros + 0.5, ones * 0.5
    counts = sum(torch.stack([torch.bincount(x[:, ch].reshape(-1), minlength=256) for ch in range(c)])
                 for x in images).double()  # C x 256
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum(1)
    mean = counts @ values / n
    if mode == "pixel_mean":  # (x - mean) / 255 in pixel units
        return mean.float().view(1, c, 1, 1), ones
    std = (counts @ values.square() / n - mean.square()).clamp_min(1e-12).sqrt()
    return mean.float().view(1, c, 1, 1), std.float().view(1, c, 1, 1)
