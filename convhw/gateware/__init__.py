"""Amaranth 0.5 gateware: the streaming convolution datapaths, one idea per module."""

from .layouts import pixel_layout, coefficient_port_signature
from .conv2d import Conv2d
from .conv1d import Conv1d
from .chain import Chain

__all__ = ["Conv2d", "Conv1d", "Chain", "pixel_layout", "coefficient_port_signature"]
