"""One reader per public data set; each returns (uint8 N x C x H x W images, int64 labels, or uint8 masks for DigitScenes)."""
from da_bench.data.sources.base import Source
from da_bench.data.sources.gtsrb import GTSRB
from da_bench.data.sources.mnist import MNIST
from da_bench.data.sources.mnistm import MNISTM
from da_bench.data.sources.scenes import DigitScenes
from da_bench.data.sources.svhn import SVHN
from da_bench.data.sources.syn import SynNumbers, SynSigns
from da_bench.data.sources.usps import USPS

__all__ = ["Source", "MNIST", "MNISTM", "USPS", "SVHN", "GTSRB", "SynNumbers", "SynSigns", "DigitScenes"]
