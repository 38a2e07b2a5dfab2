"""USPS handwritten digits (Hull 1994), 16 x 16 grey, 7,291 train / 2,007 test.

Two published versions, never to be mixed in one experiment (their pixel preprocessing differs):
- `variant="libsvm"`: torchvision's files <root>/USPS/usps.bz2 and usps.t.bz2 (LIBSVM text format,
  values in [-1, 1]), checked against torchvision's md5s, downloadable.
- `variant="h5"`: the ESL zip.train / zip.test digits as <root>/USPS/usps.h5 (Kaggle layout: train/data,
  train/target, test/data, test/target; values in [0, 1]).
"""
from __future__ import annotations

import bz2

import numpy as np
from torchvision.datasets import USPS as _TVUSPS

from da_bench.data.files import DataCorruptError, cached_arrays, cache_key, fetch
from da_bench.data.sources.base import Source

USPS_H5_MD5 = "355df6b942eb766252e0340bc019b0b9"  # the Kaggle "usps.h5" file (see shared/data/SOURCES.md)
HOW_TO_GET = (
    "USPS: torchvision.datasets.USPS(root/'USPS', download=True) fetches usps.bz2 / usps.t.bz2 (variant=libsvm);\n"
    "the ESL version usps.h5 (variant=h5) is the Kaggle data set 'bistaumanga/usps-dataset'."
)


class USPS(Source):
    name = "usps"

    def __init__(self, root, download=False, cache_dir=None, variant: str = "h5"):
        super().__init__(root, download, cache_dir)
        if variant not in ("h5", "libsvm"):
            raise ValueError(f"USPS variant must be 'h5' or 'libsvm', not {variant!r}")
        self.variant = variant

    def _load(self, split):
        return self._load_h5(split) if self.variant == "h5" else self._load_libsvm(split)

    def _load_h5(self, split):
        import h5py

        path = fetch(self.root / "USPS" / "usps.h5", USPS_H5_MD5, (), False, HOW_TO_GET)
        with h5py.File(path, "r") as f:
            data = np.asarray(f[split]["data"], dtype=np.float32)
            target = np.asarray(f[split]["target"])
        if data.ndim != 2 or data.shape[1] != 256:
            raise DataCorruptError(f"{path}: {split}/data has shape {data.shape}, expected (N, 256)")
        images = np.clip(np.rint(data * 255), 0, 255).astype(np.uint8).reshape(-1, 1, 16, 16)
        return images, target.astype(np.int64)

    def _load_libsvm(self, split):
        url, filename, md5 = _TVUSPS.split_list[split]
        path = fetch(self.root / "USPS" / filename, md5, [url], self.download, HOW_TO_GET)

        def decode():
            # as torchvision reads it: "label idx:value ..." lines, labels 1..10 -> 0..9, [-1, 1] -> uint8
            with bz2.open(path) as f:
                rows = [line.decode().split() for line in f]
            values = np.asarray([[t.split(":")[-1] for t in r[1:]] for r in rows], dtype=np.float32)
            if values.ndim != 2 or values.shape[1] != 256:
                raise DataCorruptError(f"{path}: expected 256 values per line")
            images = ((values.reshape(-1, 1, 16, 16) + 1) / 2 * 255).astype(np.uint8)
            return images, np.asarray([int(r[0]) - 1 for r in rows], dtype=np.int64)

        return cached_arrays(self.cache_dir / f"usps_libsvm_{split}_{cache_key(path)}.npz", decode)
