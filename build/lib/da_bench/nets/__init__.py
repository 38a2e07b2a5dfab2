from da_bench.nets.convnet import ConvNet, init_weights
from da_bench.nets.discriminator import DomainDiscriminator

__all__ = ["ConvNet", "DomainDiscriminator", "init_weights"]
from da_bench.nets.segnet import PixelDiscriminator, SegNet

__all__ += ["SegNet", "PixelDiscriminator"]
