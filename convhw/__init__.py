"""convhw: exact, streaming FPGA convolution accelerators in Amaranth HDL."""

from .spec import ConvSpec
from .gateware import Conv2d

__all__ = ["ConvSpec", "Conv2d", "__version__"]

__version__ = "0.1.0"
