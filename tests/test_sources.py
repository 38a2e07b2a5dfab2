import gzip
import shutil

import numpy as np
import pytest

from da_bench.data.files import DataCorruptError, DataMissingError
from da_bench.data.sources import GTSRB, MNIST, MNISTM, SVHN, USPS, SynNumbers, SynSigns
from da_bench.data.sources.mnistm import appearance, blend_mnistm


@pytest.mark.parametrize("make, channels, size, classes", [
    (lambda r: MNIST(r), 1, 28, 10),
    (lambda r: USPS(r), 1, 16, 10),
    (lambda r: USPS(r, variant="libsvm"), 1, 16, 10),
    (lambda r: SVHN(r), 3, 32, 10),
    (lambda r: SynNumbers(r), 3, 32, 10),
    (lambda r: GTSRB(r), 3, 40, 43),
    (lambda r: SynSigns(r), 3, 40, 43),
    (lambda r: MNISTM(r, variant="published"), 3, 32, 10),
    (lambda r: MNISTM(r, variant="generated"), 3, 32, 10),
])
def test_every_source_reads_its_real_format(fixture_data, make, channels, size, classes):
    source = make(fixture_data)
    for split in ("train", "test"):
        x, y = source.load(split)
        assert x.dtype == np.uint8 and x.shape[1:] == (channels, size, size)
        assert y.dtype == np.int64 and len(y) == len(x) > 0
        assert 0 <= y.min() and y.max() < classes


def test_readers_recover_the_written_labels_and_pixels(fixture_data):
    # every fixture is patterned(n, ...) with labels arange(n) % 10; the .mat files store 0 as 10
    for source in (MNIST(fixture_data), SVHN(fixture_data), USPS(fixture_data), USPS(fixture_data, variant="libsvm")):
        x, y = source.load("test")
        assert list(y[:12]) == [i % 10 for i in range(12)]
        # the bright bar of class y sits at row 2 + y * (size - 6) // 9
        size = x.shape[-1]
        rows = 2 + (y * (size - 6)) // 9
        assert all(x[i, 0, rows[i] + 1, size // 2] >= 250 for i in range(len(y)))


def test_missing_file_names_the_path_and_how_to_get_it(fixture_data, tmp_path):
    with pytest.raises(DataMissingError) as err:
        MNIST(tmp_path).load("train")
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in msg
    assert "download=true" in msg and "yann.lecun.com" in msg
    with pytest.raises(DataMissingError, match="SynNumbers"):
        SynNumbers(tmp_path).load("train")
    shutil.copytree(fixture_data / "MNIST", tmp_path / "MNIST")
    with pytest.raises(DataMissingError, match="BSDS500"):
        MNISTM(tmp_path, variant="generated", seed=99).load("test")


@pytest.mark.parametrize("relpath", ["MNIST/raw/train-images-idx3-ubyte.gz", "USPS/usps.h5", "SVHN/test_32x32.mat",
                                     "MNIST-M/mnist_m_test_images.npy.xz", "BSDS500/train.tar"])
def test_truncated_file_fails_its_checksum(fixture_data, tmp_path, relpath):
    root = tmp_path / "copy"
    shutil.copytree(fixture_data, root)
    target = root / relpath
    target.write_bytes(target.read_bytes()[:-100])
    source = {"MNIST": MNIST(root), "USPS": USPS(root), "SVHN": SVHN(root),
              "MNIST-M": MNISTM(root, variant="published"), "BSDS500": MNISTM(root, variant="generated", seed=7)}
    with pytest.raises(DataCorruptError, match="failed its checksum"):
        source[relpath.split("/")[0]].load("train" if "train" in relpath else "test")


def test_unchecked_idx_file_with_a_bad_header_is_rejected(tmp_path):
    from da_bench.data.sources.mnist import read_idx

    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + b"\x00" * 12)
    with pytest.raises(DataCorruptError, match="header says"):
        read_idx(path)


def test_mnistm_blend_is_abs_difference_with_a_random_patch():
    digits = np.zeros((5, 28, 28), dtype=np.uint8)
    digits[:, 10:14, 10:14] = 255
    photo = np.arange(40 * 50 * 3, dtype=np.int64).reshape(40, 50, 3) % 251
    photo = photo.astype(np.uint8)
    out = blend_mnistm(digits, [photo], seed=3)
    again = blend_mnistm(digits, [photo], seed=3)
    assert out.shape == (5, 3, 32, 32) and np.array_equal(out, again)
    assert not np.array_equal(out, blend_mnistm(digits, [photo], seed=4))
    for img in out.transpose(0, 2, 3, 1):
        # where the digit is 0 the output is the patch itself: find it in the photo
        matches = [(r, c) for r in range(40 - 31) for c in range(50 - 31)
                   if np.array_equal(photo[r, c : c + 32], img[0])]
        assert matches
        r, c = matches[0]
        patch = photo[r : r + 32, c : c + 32].astype(int)
        padded = np.pad(digits[0], 2).astype(int)[..., None]
        assert np.array_equal(img, np.abs(patch - padded).astype(np.uint8))


def test_mnistm_blend_binarises_the_digit_like_the_published_files():
    # a digit with a faint edge (value 30) and a full centre (255): both become 255 before the blend, as the
    # authors' files were made, so on a flat grey photo both render as |120 - 255| = 135
    digits = np.zeros((4, 28, 28), dtype=np.uint8)
    digits[:, 10:14, 10:14] = 255
    digits[:, 10:14, 9] = 30
    photo = np.full((40, 40, 3), 120, dtype=np.uint8)
    out = blend_mnistm(digits, [photo], seed=0)
    assert (out[:, :, 12:16, 11] == 135).all() and (out[:, :, 12:16, 13] == 135).all()
    assert (out[:, :, 0, 0] == 120).all()
    stats = appearance(out, digits)
    assert stats["edge"] == stats["centre"] == 135.0 and stats["background"] == 120.0
    assert stats["mean_r"] == stats["mean_g"] == stats["mean_b"]


def test_generated_mnistm_matches_the_published_appearance_on_fixtures(fixture_data):
    # the fixture photos are uniform noise (mean ~127.5): the digit's ink, faint or not, renders near
    # 255 - 127.5 on average, the same at edges and centres
    digits, _ = MNIST(fixture_data).load("train")
    images, _ = MNISTM(fixture_data, seed=1).load("train")
    stats = appearance(images, digits[:, 0])
    assert abs(stats["edge"] - stats["centre"]) < 8 and abs(stats["background"] - 127.5) < 8


def test_generated_mnistm_is_cached_and_reproducible(fixture_data):
    a, ya = MNISTM(fixture_data, seed=5).load("train")
    b, yb = MNISTM(fixture_data, seed=5).load("train")
    c, _ = MNISTM(fixture_data, seed=6).load("train")
    mnist, labels = MNIST(fixture_data).load("train")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(ya, labels)
    test, _ = MNISTM(fixture_data, seed=5).load("test")
    assert not np.array_equal(test[:5], a[:5])
