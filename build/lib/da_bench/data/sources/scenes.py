"""Digit scenes for segmentation: the digit-sized stand-in for GTA5 -> Cityscapes that CLAN is tested on here.

A scene is a canvas x canvas image holding 1..max_digits digits of a digit data set (MNIST, USPS) at
random positions; its mask labels each pixel with the class of the digit whose stroke covers it (digit
pixel >= stroke_threshold; a later digit is drawn over an earlier one) and 10 = background elsewhere.
- `background="black"`: the digits on black (1 channel), the source side;
- `background="bsds"`: the same construction blended with BSDS500 train patches exactly as MNIST-M is,
  |patch - scene| per channel (3 channels). The masks stay exact: they come from the digit strokes.
Train scenes use the digit set's train split and test scenes its test split, with separate draws, so no
digit image appears in both. Every draw comes from `np.random.default_rng((seed, split))`: the same
seed gives the same scenes; they are cached in cache_dir after the first build.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from da_bench.data.files import cache_key, cached_arrays
from da_bench.data.sources.base import Source
from da_bench.data.sources.mnistm import blend_mnistm, read_bsds_train

BACKGROUND = 10
BACKGROUNDS = ("black", "bsds")


def compose_scenes(digits: np.ndarray, labels: np.ndarray, num_scenes: int, canvas: int, max_digits: int,
                   stroke_threshold: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """digits N x S x S uint8, labels N -> (scenes num_scenes x canvas x canvas uint8, masks same shape uint8).

    Vectorised over scenes: one fancy-indexed write per digit slot, no per-scene Python.
    """
    size = digits.shape[-1]
    if size > canvas:
        raise ValueError(f"digits of {size} px do not fit a {canvas} px canvas")
    count = rng.integers(1, max_digits + 1, size=num_scenes)
    pick = rng.integers(len(digits), size=(num_scenes, max_digits))
    top = rng.integers(canvas - size + 1, size=(num_scenes, max_digits))
    left = rng.integers(canvas - size + 1, size=(num_scenes, max_digits))
    scenes = np.zeros((num_scenes, canvas, canvas), dtype=np.uint8)
    masks = np.full((num_scenes, canvas, canvas), BACKGROUND, dtype=np.uint8)
    grid = np.arange(size)
    for slot in range(max_digits):
        on = np.nonzero(count > slot)[0]
        where = (on[:, None, None], (top[on, slot, None] + grid)[:, :, None], (left[on, slot, None] + grid)[:, None, :])
        digit = digits[pick[on, slot]]
        stroke = digit >= stroke_threshold
        scenes[where] = np.maximum(scenes[where], digit)
        masks[where] = np.where(stroke, labels[pick[on, slot]].astype(np.uint8)[:, None, None], masks[where])
    return scenes, masks


class DigitScenes(Source):
    """Segmentation scenes built from a digit `Source`: images N x C x canvas x canvas, masks N x canvas x canvas
    (classes 0-9 the digits, 10 background)."""

    name = "digit_scenes"
    num_classes = 11
    label_dtype = np.uint8

    def __init__(self, digits: Source, background: str = "black", canvas: int = 64, digit_size: int = 28,
                 max_digits: int = 3, num_train: int = 10000, num_test: int = 2000, stroke_threshold: int = 128,
                 seed: int = 0):
        super().__init__(digits.root, digits.download, digits.cache_dir)
        if background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, not {background!r}")
        self.digits, self.background = digits, background
        self.canvas, self.digit_size, self.max_digits = canvas, digit_size, max_digits
        self.num_scenes = {"train": num_train, "test": num_test}
        self.stroke_threshold, self.seed = stroke_threshold, seed
        self.name = f"{digits.name}_scenes_{background}"

    def _load(self, split):
        digits, labels = self.digits.load(split)  # checksummed and decoded by the digit set's own reader
        if digits.shape[-1] != self.digit_size:
            resized = F.interpolate(torch.from_numpy(digits).float(), size=(self.digit_size,) * 2, mode="bilinear",
                                    antialias=True, align_corners=False)
            digits = resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
        recipe = (f"{self.background}|{self.canvas}|{self.digit_size}|{self.max_digits}|{self.num_scenes[split]}|"
                  f"{self.stroke_threshold}|{self.seed}|{split}")
        photos_key = ""
        if self.background == "bsds":  # a replaced BSDS500 file gives new scenes
            found = [p for p in (self.root / "BSDS500" / "train.tar", self.root / "BSR_bsds500.tgz") if p.exists()]
            photos_key = cache_key(*found) if found else "new"
        key = hashlib.sha1((recipe + photos_key).encode() + digits.tobytes() + labels.tobytes()).hexdigest()[:12]

        def build():
            rng = np.random.default_rng((self.seed, split == "test"))
            scenes, masks = compose_scenes(digits[:, 0], labels, self.num_scenes[split], self.canvas,
                                           self.max_digits, self.stroke_threshold, rng)
            if self.background == "black":
                return scenes[:, None], masks
            photos = read_bsds_train(self.root, self.download)
            return blend_mnistm(scenes, photos, int(rng.integers(2**31)), size=self.canvas), masks

        return cached_arrays(self.cache_dir / f"{self.name}_{split}_{key}.npz", build)
