"""Tiny data sets written in the real public file formats, and the md5 table that lets the readers accept them.

Images carry a class-dependent pattern (a bright bar whose position encodes the label) so a few steps
of training can learn something; sizes are a few dozen images per split.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import io
import json
import lzma
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(1234)


def patterned(n: int, size: int, channels: int, num_classes: int = 10):
    labels = np.arange(n) % num_classes
    images = RNG.integers(0, 60, size=(n, size, size, channels), dtype=np.uint8)
    for i, y in enumerate(labels):
        row = 2 + (y * (size - 6)) // max(1, num_classes - 1)
        images[i, row : row + 3, 2 : size - 2] = 255
    return images, labels.astype(np.int64)


def write_idx(path: Path, array: np.ndarray, magic: int):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, n_train=60, n_test=30):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = patterned(n, 28, 1)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", x[..., 0], 0x803)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", y, 0x801)


def make_usps(root: Path, n_train=50, n_test=30):
    import h5py

    folder = root / "USPS"
    folder.mkdir(parents=True)
    with h5py.File(folder / "usps.h5", "w") as f:
        for split, n in (("train", n_train), ("test", n_test)):
            x, y = patterned(n, 16, 1)
            f.create_dataset(f"{split}/data", data=(x.reshape(n, 256) / 255.0).astype(np.float32))
            f.create_dataset(f"{split}/target", data=y)
    for name, n in (("usps.bz2", n_train), ("usps.t.bz2", n_test)):
        x, y = patterned(n, 16, 1)
        values = x.reshape(n, 256) / 255.0 * 2 - 1
        lines = [f"{label + 1} " + " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(row))
                 for label, row in zip(y, values)]
        (folder / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))


def write_digits_mat(path: Path, n: int):
    import scipy.io

    x, y = patterned(n, 32, 3)
    y = np.where(y == 0, 10, y)  # the .mat convention: 10 is the digit 0
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"X": x.transpose(1, 2, 3, 0), "y": y.reshape(-1, 1).astype(np.uint8)})


def make_svhn(root: Path, n_train=50, n_test=30):
    write_digits_mat(root / "SVHN" / "train_32x32.mat", n_train)
    write_digits_mat(root / "SVHN" / "test_32x32.mat", n_test)


def make_syn_numbers(root: Path, n_train=50, n_test=30):
    write_digits_mat(root / "SynNumbers" / "synth_train_32x32.mat", n_train)
    write_digits_mat(root / "SynNumbers" / "synth_test_32x32.mat", n_test)


def ppm_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PPM")
    return buf.getvalue()


def make_gtsrb(root: Path, classes=4, per_class=6, n_test=20):
    """The official zips (GTSRB-Training_fixed.zip, GTSRB_Final_Test_Images.zip, GTSRB_Final_Test_GT.zip)."""
    base = root / "gtsrb"
    base.mkdir(parents=True)
    with zipfile.ZipFile(base / "GTSRB-Training_fixed.zip", "w") as z:
        x, y = patterned(classes * per_class, 45, 3, classes)
        for i, (img, label) in enumerate(zip(x, y)):
            z.writestr(f"GTSRB/Training/{label:05d}/00000_{i:05d}.ppm", ppm_bytes(img))
    x, y = patterned(n_test, 38, 3, classes)
    with zipfile.ZipFile(base / "GTSRB_Final_Test_Images.zip", "w") as z:
        for i, img in enumerate(x):
            z.writestr(f"GTSRB/Final_Test/Images/{i:05d}.ppm", ppm_bytes(img))
    rows = io.StringIO()
    w = csv.writer(rows, delimiter=";")
    w.writerow(["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"])
    for i, label in enumerate(y):
        w.writerow([f"{i:05d}.ppm", 38, 38, 5, 5, 33, 33, label])
    with zipfile.ZipFile(base / "GTSRB_Final_Test_GT.zip", "w") as z:
        z.writestr("GT-final_test.csv", rows.getvalue())


def make_syn_signs(root: Path, n=40, classes=4):
    folder = root / "SynSigns" / "synthetic_data"
    (folder / "train").mkdir(parents=True)
    x, y = patterned(n, 40, 3, classes)
    lines = []
    for i, (img, label) in enumerate(zip(x, y)):
        Image.fromarray(img).save(folder / "train" / f"{i:05d}.png")
        lines.append(f"train/{i:05d}.png {label} 1")
    (folder / "train_labelling.txt").write_text("\n".join(lines) + "\n")


def make_mnistm_published(root: Path):
    folder = root / "MNIST-M"
    folder.mkdir(parents=True)
    for split, n in (("train", 50), ("test", 30)):
        x, y = patterned(n, 32, 3)
        buf = io.BytesIO()
        np.save(buf, x)
        (folder / f"mnist_m_{split}_images.npy.xz").write_bytes(lzma.compress(buf.getvalue()))
        (folder / f"mnist_m_{split}_labels.txt").write_text(
            "".join(f"{i:08d}.png {label}\n" for i, label in enumerate(y)))


def make_bsds(root: Path, photos=3):
    folder = root / "BSDS500"
    folder.mkdir(parents=True)
    with tarfile.open(folder / "train.tar", "w") as tar:
        for i in range(photos):
            img = RNG.integers(0, 256, size=(72 + 8 * i, 80, 3), dtype=np.uint8)  # >= the 64 px scene canvas
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95)
            info = tarfile.TarInfo(f"train/{1000 + i}.jpg")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)


def make_all(root: Path, scale: int = 1) -> Path:
    """Write every data set under `root` (`scale` x the default sizes for the digit sets); returns the JSON
    file of their md5s (for DA_BENCH_EXTRA_CHECKSUMS)."""
    make_mnist(root, 60 * scale, 30 * scale)
    make_usps(root, 50 * scale, 30 * scale)
    make_svhn(root, 50 * scale, 30 * scale)
    make_syn_numbers(root, 50 * scale, 30 * scale)
    for make in (make_gtsrb, make_syn_signs, make_mnistm_published, make_bsds):
        make(root)
    sums = {p.name: hashlib.md5(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and p.suffix in (".gz", ".h5", ".bz2", ".mat", ".zip", ".xz",
                                                                     ".txt", ".tar")}
    table = root / "fixture_checksums.json"
    table.write_text(json.dumps(sums, indent=1))
    return table
