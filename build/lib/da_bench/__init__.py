"""da_bench: unsupervised domain adaptation benchmarks on Hydra + PyTorch Lightning."""

__version__ = "0.1.0"
