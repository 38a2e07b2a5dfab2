"""SVHN cropped digits (Netzer et al. 2011): <root>/SVHN/{train,test}_32x32.mat, 73,257 / 26,032 RGB 32 x 32.

Checked against torchvision's md5s and downloadable through torchvision; label 10 means digit 0.
"""
from __future__ import annotations

import numpy as np
from torchvision.datasets import SVHN as _TVSVHN

from da_bench.data.files import DataCorruptError, cached_arrays, cache_key, fetch
from da_bench.data.sources.base import Source

HOW_TO_GET = "SVHN: http://ufldl.stanford.edu/housenumbers/ (format 2, {train,test}_32x32.mat)"


class SVHN(Source):
    name = "svhn"

    def _load(self, split):
        url, filename, md5 = _TVSVHN.split_list[split]
        path = fetch(self.root / "SVHN" / filename, md5, [url], self.download, HOW_TO_GET)

        return cached_arrays(self.cache_dir / f"svhn_{split}_{cache_key(path)}.npz", lambda: read_digits_mat(path))


def read_digits_mat(path):
    """The SVHN .mat layout (also used by SYN NUMBERS): X is H x W x 3 x N uint8, y is N x 1, 10 means 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
        images, labels = mat["X"], mat["y"].astype(np.int64).reshape(-1)
    except Exception as err:
        raise DataCorruptError(f"{path} is not a readable digits .mat file (X, y): {err}") from err
    if images.ndim != 4 or images.shape[2] != 3 or images.shape[3] != len(labels):
        raise DataCorruptError(f"{path}: X has shape {images.shape}, expected H x W x 3 x {len(labels)}")
    labels[labels == 10] = 0
    return np.transpose(images, (3, 2, 0, 1)), labels
