"""Integration tests on the real public files (../shared/data or $DA_BENCH_REAL_DATA); skipped when absent."""
import numpy as np
import pytest

from da_bench.data.sources import MNIST, MNISTM, USPS
from da_bench.train import train
from tests.helpers import make_cfg

pytestmark = pytest.mark.real_data


@pytest.fixture(autouse=True)
def trusted_official_checksums_only(monkeypatch, tmp_path):
    monkeypatch.delenv("DA_BENCH_EXTRA_CHECKSUMS", raising=False)
    monkeypatch.setenv("DA_BENCH_CACHE", str(tmp_path / "cache"))


def test_real_mnist_and_usps(real_data):
    x, y = MNIST(real_data).load("train")
    assert x.shape == (60000, 1, 28, 28) and np.bincount(y)[0] == 5923
    x, y = USPS(real_data).load("train")
    assert x.shape == (7291, 1, 16, 16) and np.bincount(y).tolist()[:3] == [1194, 1005, 731]
    h5_test, h5_labels = USPS(real_data).load("test")
    _, libsvm_labels = USPS(real_data, variant="libsvm").load("test")
    assert np.array_equal(h5_labels, libsvm_labels)  # same digits, same order (SOURCES.md)


def test_real_mnistm_published_and_generated_geometry(real_data):
    pub, labels = MNISTM(real_data, variant="published").load("test")
    mnist, mnist_labels = MNIST(real_data).load("test")
    assert pub.shape == (9001, 3, 32, 32) and np.array_equal(labels, mnist_labels[:9001])
    gen, gen_labels = MNISTM(real_data, variant="generated").load("test")
    assert gen.shape == (10000, 3, 32, 32) and np.array_equal(gen_labels, mnist_labels)
    # both put the digit padded by 2: the centre crop correlates with the MNIST digit at offset (2, 2)
    def corr(images, offset, n=500):
        a = images[:n].mean(1)[:, offset : offset + 28, offset : offset + 28].reshape(n, -1)
        b = mnist[:n, 0].reshape(n, -1).astype(float)
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        return np.abs((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))).mean()
    for images in (pub, gen):
        assert corr(images, 2) > corr(images, 0) + 0.1


def test_real_generated_mnistm_has_the_published_appearance(real_data):
    from da_bench.data.sources.mnistm import appearance

    digits = MNIST(real_data).load("test")[0][:, 0]
    published = appearance(MNISTM(real_data, variant="published").load("test")[0], digits)
    generated = appearance(MNISTM(real_data, variant="generated").load("test")[0], digits)
    # published test split (measured): edges 147.5, centres 147.2, background 107.8, means 117.5 / 118.4 / 104.8
    assert abs(published["edge"] - published["centre"]) < 2
    for key, value in published.items():
        assert abs(generated[key] - value) < 3, (key, generated[key], value)


def test_short_real_dann_run_learns_the_source(real_data, tmp_path):
    metrics = train(make_cfg(real_data, tmp_path, ["method=dann", "data=mnist_mnistm", "trainer.max_steps=150",
                                                  "trainer.val_check_interval=1000"], debug=None))
    assert metrics["steps"] == 150 and metrics["test/src_acc"] > 0.8 and metrics["test/tgt_acc"] > 0.2


def test_real_digit_scenes(real_data):
    from da_bench.data.sources import DigitScenes
    from da_bench.data.sources.scenes import BACKGROUND

    mnist = MNIST(real_data)
    x_src, y_src = DigitScenes(mnist, "black", num_train=500, num_test=200, seed=0).load("train")
    x_tgt, y_tgt = DigitScenes(mnist, "bsds", num_train=500, num_test=200, seed=1).load("train")
    assert x_src.shape == (500, 1, 64, 64) and x_tgt.shape == (500, 3, 64, 64)
    assert set(np.unique(y_src)) == set(range(11)) and set(np.unique(y_tgt)) == set(range(11))
    digit_share = (y_tgt != BACKGROUND).mean()
    assert 0.01 < digit_share < 0.15  # thin strokes on a mostly background canvas
    assert not np.array_equal(y_src, y_tgt)  # other layouts on the target side
    # blended target: the photo shows through the background, and strokes differ from it
    background = x_tgt.transpose(0, 2, 3, 1)[y_tgt == BACKGROUND].std()
    assert background > 20
    usps_x, usps_y = DigitScenes(USPS(real_data), "black", num_train=100, num_test=50).load("test")
    assert usps_x.shape == (50, 1, 64, 64) and (usps_y != BACKGROUND).any()
