"""The contract every data set reader follows."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from da_bench.data.files import default_cache_dir


class Source:
    """A public data set on disk. `load(split)` -> (uint8 images N x C x H x W, int64 labels N, or uint8
    masks N x H x W for segmentation sources).

    Subclasses set `name`, `num_classes` and implement `_load(split)`; `root` is the data root
    (paths.data_dir), `download` allows fetching missing files, decoded arrays are cached in `cache_dir`.
    """

    name = "source"
    num_classes = 10
    splits = ("train", "test")
    label_dtype = np.int64  # segmentation masks (N x H x W) are kept as uint8

    def __init__(self, root: str | Path, download: bool = False, cache_dir: str | Path | None = None):
        self.root = Path(root).expanduser()
        self.download = download
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()

    def load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in self.splits:
            raise ValueError(f"{self.name} has splits {self.splits}, not {split!r}")
        images, labels = self._load(split)
        images = np.ascontiguousarray(images, dtype=np.uint8)
        labels = np.asarray(labels, dtype=self.label_dtype)
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"{self.name}/{split}: bad shapes {images.shape} / {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"{self.name}/{split}: labels outside 0..{self.num_classes - 1}")
        return images, labels

    def _load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"
