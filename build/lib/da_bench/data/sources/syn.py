"""Ganin & Lempitsky's synthetic source domains (ICML 2015).

- SYN NUMBERS ("SynDigits"): Windows-font digits rendered with varied position, orientation, stroke,
  blur and background; published as synth_{train,test}_32x32.mat in SVHN's .mat layout (X: 32x32x3xN,
  y: Nx1), 479,400 / 9,553 images. Expected at <root>/SynNumbers/.
- SYN SIGNS: 100,000 synthetic traffic signs of the 43 GTSRB classes (Moiseev et al. 2013), published as
  the folder synthetic_data/ (or synthetic_data.zip) with train_labelling.txt lines "<image path> <class> ...".
  The release has no test split: the last `test_size` lines (default 10,000) form the source test set.

Neither release has a stable download URL with a published checksum, so no download is attempted and
the files are checked by structure (shapes, label range) instead of md5.
"""
from __future__ import annotations

import numpy as np
from torchvision.datasets.utils import extract_archive

from da_bench.data.files import DataCorruptError, cached_arrays, cache_key, require_any
from da_bench.data.sources.base import Source
from da_bench.data.sources.gtsrb import decode_images
from da_bench.data.sources.svhn import read_digits_mat

SYN_NUMBERS_HOW = "SYN NUMBERS: the SynDigits archive from Ganin's DANN project page, unpacked into <root>/SynNumbers/"
SYN_SIGNS_HOW = "SYN SIGNS: synthetic_data.zip from Ganin's DANN project page, into <root>/SynSigns/ (zip or unpacked)"


class SynNumbers(Source):
    name = "syn_numbers"

    def _load(self, split):
        path = require_any([self.root / "SynNumbers" / f"synth_{split}_32x32.mat"], SYN_NUMBERS_HOW)
        return cached_arrays(self.cache_dir / f"synnumbers_{split}_{cache_key(path)}.npz", lambda: read_digits_mat(path))


class SynSigns(Source):
    name = "syn_signs"
    num_classes = 43

    def __init__(self, root, download=False, cache_dir=None, size: int = 40, test_size: int = 10000):
        super().__init__(root, download, cache_dir)
        self.size, self.test_size = size, test_size

    def _labelling(self):
        base = self.root / "SynSigns"
        found = require_any(
            [base / "synthetic_data" / "train_labelling.txt", base / "synthetic_data.zip"], SYN_SIGNS_HOW
        )
        if found.suffix == ".zip":
            extract_archive(str(found), str(base))
            found = base / "synthetic_data" / "train_labelling.txt"
            if not found.exists():
                raise DataCorruptError(f"{base / 'synthetic_data.zip'} holds no synthetic_data/train_labelling.txt")
        return found

    def _load(self, split):
        labelling = self._labelling()

        def decode():
            rows = [line.split() for line in labelling.read_text().splitlines() if line.strip()]
            paths = [labelling.parent / r[0] for r in rows]
            labels = np.asarray([int(r[1]) for r in rows], dtype=np.int64)
            return decode_images(paths, self.size), labels

        images, labels = cached_arrays(
            self.cache_dir / f"synsigns_{self.size}_{cache_key(labelling)}.npz", decode
        )
        n_test = min(self.test_size, len(labels) // 2)
        cut = len(labels) - n_test
        return (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])
