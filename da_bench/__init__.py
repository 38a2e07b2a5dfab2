"""da_bench: unsupervised domain adaptation benchmarks on Hydra + PyTorch Lightning."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("da_bench")  # set from git when the package is built (setuptools-scm)
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
