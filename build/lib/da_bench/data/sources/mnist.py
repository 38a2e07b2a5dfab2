"""MNIST (LeCun et al. 1998) from the four official IDX .gz files, in torchvision's layout.

Files: <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, checked against torchvision's md5s
and downloaded from torchvision's mirrors when `download=True`.
"""
from __future__ import annotations

import gzip

import numpy as np
from torchvision.datasets import MNIST as _TVMNIST

from da_bench.data.files import DataCorruptError, fetch
from da_bench.data.sources.base import Source

HOW_TO_GET = "MNIST: http://yann.lecun.com/exdb/mnist/ (or torchvision.datasets.MNIST(root, download=True))"


def read_idx(path) -> np.ndarray:
    """Decode an IDX file (.gz): magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian dims, then the data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataCorruptError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataCorruptError(f"{path}: header says {tuple(dims)}, body has {body.size} bytes")
    return body.reshape(tuple(int(d) for d in dims))


class MNIST(Source):
    name = "mnist"

    def _file(self, name: str):
        md5 = dict(_TVMNIST.resources)[name]
        urls = [mirror + name for mirror in _TVMNIST.mirrors]
        return fetch(self.root / "MNIST" / "raw" / name, md5, urls, self.download, HOW_TO_GET)

    def _load(self, split):
        prefix = "train" if split == "train" else "t10k"
        images = read_idx(self._file(f"{prefix}-images-idx3-ubyte.gz"))
        labels = read_idx(self._file(f"{prefix}-labels-idx1-ubyte.gz"))
        return images[:, None], labels
