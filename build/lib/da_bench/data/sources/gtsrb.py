"""GTSRB, the German Traffic Sign Recognition Benchmark (Stallkamp et al. 2012): 43 classes, PPM images
of varying size, resized here once to `size` x `size` (DANN uses 40 x 40) and cached.

torchvision's layout under <root>/gtsrb: the official zips GTSRB-Training_fixed.zip,
GTSRB_Final_Test_Images.zip and GTSRB_Final_Test_GT.zip (torchvision's md5s; downloadable), extracted to
GTSRB/Training/<class>/*.ppm, GTSRB/Final_Test/Images/*.ppm and GT-final_test.csv.
"""
from __future__ import annotations

import csv

import numpy as np
from PIL import Image
from tqdm import tqdm
from torchvision.datasets.folder import make_dataset
from torchvision.datasets.utils import extract_archive

from da_bench.data.files import DataCorruptError, cached_arrays, cache_key, fetch
from da_bench.data.sources.base import Source

BASE_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
ARCHIVES = {
    "train": [("GTSRB-Training_fixed.zip", "513f3c79a4c5141765e10e952eaa2478")],
    "test": [
        ("GTSRB_Final_Test_Images.zip", "c7e4e6327067d32654124b0fe9e82185"),
        ("GTSRB_Final_Test_GT.zip", "fe31e9c9270bbcd7b84b7f21a9d9d9e5"),
    ],
}
HOW_TO_GET = "GTSRB: https://benchmark.ini.rub.de/gtsrb_dataset.html (the official zips, into <root>/gtsrb/)"


def decode_images(paths, size: int) -> np.ndarray:
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc=f"decoding {len(paths)} images", disable=len(paths) < 1000)):
        try:
            with Image.open(p) as im:
                im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        except OSError as err:
            raise DataCorruptError(f"cannot decode {p}: {err}") from err
        out[i] = np.asarray(im).transpose(2, 0, 1)
    return out


class GTSRB(Source):
    name = "gtsrb"
    num_classes = 43

    def __init__(self, root, download=False, cache_dir=None, size: int = 40):
        super().__init__(root, download, cache_dir)
        self.size = size

    def _samples(self, split):
        base = self.root / "gtsrb"
        folder = base / "GTSRB" / ("Training" if split == "train" else "Final_Test/Images")
        if not folder.is_dir() or (split == "test" and not (base / "GT-final_test.csv").exists()):
            for name, md5 in ARCHIVES[split]:
                archive = fetch(base / name, md5, [BASE_URL + name], self.download, HOW_TO_GET)
                extract_archive(str(archive), str(base))
        if split == "train":
            return folder, make_dataset(str(folder), extensions=(".ppm",))
        with open(base / "GT-final_test.csv") as f:
            rows = csv.DictReader(f, delimiter=";", skipinitialspace=True)
            return folder, [(str(folder / r["Filename"]), int(r["ClassId"])) for r in rows]

    def _load(self, split):
        folder, samples = self._samples(split)
        if not samples:
            raise DataCorruptError(f"no GTSRB images found under {folder}")

        def decode():
            paths, labels = zip(*samples)
            return decode_images(paths, self.size), np.asarray(labels, dtype=np.int64)

        key = cache_key(folder)
        return cached_arrays(self.cache_dir / f"gtsrb_{split}_{self.size}_{len(samples)}_{key}.npz", decode)
