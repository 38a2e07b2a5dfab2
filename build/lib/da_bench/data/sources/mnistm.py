"""MNIST-M (Ganin & Lempitsky 2015): MNIST digits blended over random colour patches of BSDS500 photos,
out = |patch - 255 * [digit > 0]| per channel, 32 x 32 RGB, the digit padded by 2 px (the published
files' geometry).

- `variant="generated"` builds it from MNIST and the 200 BSDS500 *train* photos as the authors' files
  were made: each digit is binarised first (any ink -> 255, as the public tf-dann `create_mnistm.py` does;
  the published pixels agree: thin stroke edges come out as bright as stroke centres), then, for every
  MNIST digit of the split, a photo drawn at random and a random 32 x 32 patch of it; drawn from
  `np.random.default_rng(seed)`, so the same seed gives the same pixels; cached after the first build.
  It keeps all 60,000 / 10,000 digits where the published files stop at 59,001 / 9,001.
  BSDS500 is read from <root>/BSDS500/train.tar (train/<id>.jpg) or the official BSR_bsds500.tgz.
- `variant="published"` reads the authors' files: <root>/MNIST-M/mnist_m_{split}_images.npy.xz with
  mnist_m_{split}_labels.txt (the published PNGs' pixels, see shared/data/SOURCES.md), or the unpacked
  mnist_m.tar.gz (mnist_m/mnist_m_{split}/*.png + labels).
"""
from __future__ import annotations

import io
import lzma
import tarfile

import numpy as np
from PIL import Image

from da_bench.data.files import DataCorruptError, cached_arrays, cache_key, fetch, require_any
from da_bench.data.sources.base import Source
from da_bench.data.sources.mnist import MNIST

BSDS_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
BSDS_TRAIN_TAR_MD5 = "31bc290511a38ea495658b9fea8e7de9"
PUBLISHED_MD5 = {
    "mnist_m_train_images.npy.xz": "5246161f252aff12a5fbac1f2155500b",
    "mnist_m_test_images.npy.xz": "cac4db1b794922f968bc4bcedf8abbb1",
    "mnist_m_train_labels.txt": "4596843fcbbadff974d2765166936fe3",
    "mnist_m_test_labels.txt": "eef2efa5f76048d5bee5fd6d817f0944",
}
HOW_TO_GET_BSDS = f"BSDS500: {BSDS_URL} (or train.tar of BSDS500/data/images/train/*.jpg at <root>/BSDS500/)"
HOW_TO_GET_PUBLISHED = "MNIST-M: mnist_m.tar.gz from Ganin's DANN project page (http://yaroslav.ganin.net/)"


def read_bsds_train(root, download: bool = False) -> list[np.ndarray]:
    """The 200 BSDS500 training photos as H x W x 3 uint8 arrays, in file-name order."""
    tar_path = root / "BSDS500" / "train.tar"
    if tar_path.exists():
        path, prefix = fetch(tar_path, BSDS_TRAIN_TAR_MD5), "train/"
    else:
        # no md5 is published for the official archive: checked by its content (200 decodable JPEGs)
        path = root / "BSR_bsds500.tgz"
        if not path.exists():
            if not download:
                require_any([tar_path, path], HOW_TO_GET_BSDS)
            fetch(path, None, [BSDS_URL], True, HOW_TO_GET_BSDS)
        prefix = "BSR/BSDS500/data/images/train/"
    photos = []
    with tarfile.open(path) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.name.startswith(prefix) and m.name.endswith(".jpg")),
            key=lambda m: m.name,
        )
        for m in members:
            with Image.open(io.BytesIO(tar.extractfile(m).read())) as im:
                photos.append(np.asarray(im.convert("RGB")))
    if not photos:
        raise DataCorruptError(f"{path} holds no BSDS500 train/*.jpg images")
    return photos


def blend_mnistm(digits: np.ndarray, photos: list[np.ndarray], seed: int, size: int = 32) -> np.ndarray:
    """|patch - 255 * [digit > 0]| for each digit (N x 28 x 28 uint8) -> N x 3 x size x size uint8.

    Each digit is binarised, zero-padded to `size`, replicated to 3 channels, and blended with a random
    size x size patch of a random photo. Vectorised per photo: no per-digit Python.
    """
    rng = np.random.default_rng(seed)
    digits = np.where(digits > 0, 255, 0).astype(np.uint8)
    pad = (size - digits.shape[-1]) // 2
    padded = np.pad(digits, ((0, 0), (pad, size - digits.shape[-1] - pad), (pad, size - digits.shape[-2] - pad)))
    which = rng.integers(len(photos), size=len(digits))
    out = np.empty((len(digits), size, size, 3), dtype=np.uint8)
    grid = np.arange(size)
    for p, photo in enumerate(photos):
        idx = np.nonzero(which == p)[0]
        if idx.size == 0:
            continue
        top = rng.integers(photo.shape[0] - size + 1, size=idx.size)
        left = rng.integers(photo.shape[1] - size + 1, size=idx.size)
        rows = (top[:, None] + grid)[:, :, None]
        cols = (left[:, None] + grid)[:, None, :]
        patches = photo[rows, cols].astype(np.int16)  # n x size x size x 3
        out[idx] = np.abs(patches - padded[idx, :, :, None]).astype(np.uint8)
    return out.transpose(0, 3, 1, 2)


class MNISTM(Source):
    name = "mnistm"

    def __init__(self, root, download=False, cache_dir=None, variant: str = "generated", seed: int = 0):
        super().__init__(root, download, cache_dir)
        if variant not in ("generated", "published"):
            raise ValueError(f"MNIST-M variant must be 'generated' or 'published', not {variant!r}")
        self.variant, self.seed = variant, seed

    def _load(self, split):
        return self._generate(split) if self.variant == "generated" else self._published(split)

    def _generate(self, split):
        mnist = MNIST(self.root, self.download, self.cache_dir)
        digits, labels = mnist.load(split)
        raw = self.root / "MNIST" / "raw"
        bsds = [p for p in (self.root / "BSDS500" / "train.tar", self.root / "BSR_bsds500.tgz") if p.exists()]
        key = cache_key(*sorted(raw.glob("*.gz")), *bsds) if bsds else "new"
        # split-specific seed: train and test scenes never share a patch sequence
        seed = self.seed * 2 + (split == "test")
        build = lambda: (blend_mnistm(digits[:, 0], read_bsds_train(self.root, self.download), seed), labels)
        # "bin": binarised digits; caches of the earlier grey-digit blend are never read as this one
        return cached_arrays(self.cache_dir / f"mnistm_generated_bin_{split}_seed{self.seed}_{key}.npz", build)

    def _published(self, split):
        base = self.root / "MNIST-M"
        xz = base / f"mnist_m_{split}_images.npy.xz"
        png_dir = self.root / "mnist_m" / f"mnist_m_{split}"
        found = require_any([xz, png_dir], HOW_TO_GET_PUBLISHED)
        if found == xz:
            label_file = fetch(base / f"mnist_m_{split}_labels.txt", PUBLISHED_MD5[f"mnist_m_{split}_labels.txt"])
            fetch(xz, PUBLISHED_MD5[xz.name])

            def decode():
                with lzma.open(xz) as f:
                    return np.load(f).transpose(0, 3, 1, 2), read_labels(label_file)[1]
        else:
            label_file = require_any([self.root / "mnist_m" / f"mnist_m_{split}_labels.txt"], HOW_TO_GET_PUBLISHED)

            def decode():
                names, labels = read_labels(label_file)
                images = np.stack([np.asarray(Image.open(png_dir / n).convert("RGB")) for n in names])
                return images.transpose(0, 3, 1, 2), labels

        return cached_arrays(self.cache_dir / f"mnistm_published_{split}_{cache_key(found)}.npz", decode)


def read_labels(path):
    """mnist_m_{split}_labels.txt: one "<file name> <label>" line per image, in image order."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [r[0] for r in rows], np.asarray([int(r[1]) for r in rows], dtype=np.int64)


def appearance(images: np.ndarray, digits: np.ndarray) -> dict[str, float]:
    """How MNIST-M images (N x 3 x 32 x 32) render their MNIST digits (N x 28 x 28, the same digits in order):
    mean brightness where the digit has thin stroke edges (MNIST 1-63), stroke centres (>= 192) and no ink
    (0), and the per-channel means. On the published test files: edges ~147, centres ~147, background ~108."""
    n = min(len(images), len(digits))
    inner = images[:n, :, 2:30, 2:30].astype(np.float64).mean(1)  # the digit sits padded by 2
    digits = digits[:n]
    stats = {name: float(inner[mask].mean()) for name, mask in
             (("edge", (digits > 0) & (digits < 64)), ("centre", digits >= 192), ("background", digits == 0))}
    stats.update({f"mean_{c}": float(images[:n, i].mean()) for i, c in enumerate("rgb")})
    return stats
