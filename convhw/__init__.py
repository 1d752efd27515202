"""convhw: exact, streaming FPGA convolution accelerators in Amaranth HDL."""

from .spec import ConvSpec
from .spec1d import Conv1dSpec
from .chain import ChainSpec
from .gateware import Chain, Conv1d, Conv2d

__all__ = ["ConvSpec", "Conv1dSpec", "ChainSpec", "Conv2d", "Conv1d", "Chain", "__version__"]

__version__ = "0.1.0"
