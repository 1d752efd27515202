"""Amaranth 0.5 gateware: the streaming convolution datapath, one idea per module."""

from .layouts import pixel_layout, coefficient_port_signature
from .conv2d import Conv2d

__all__ = ["Conv2d", "pixel_layout", "coefficient_port_signature"]
