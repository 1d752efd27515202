"""The convolution accelerator on an FPGA board, behind a UART (see docs/boards.md).

:class:`UARTAccelerator` is the design, :class:`BoardClient` the host side, and
:class:`SimulatedSerial` connects the two in the Amaranth simulator. Building for a board
(:mod:`convhw.board.build`) needs the ``board`` and ``toolchain`` extras; a real serial port needs
pyserial.
"""

from . import protocol
from .accelerator import DEFAULT_TIMEOUT, UARTAccelerator
from .host import BoardClient, BoardError, FrameResult
from .transport import SimulatedSerial, open_serial

__all__ = ["protocol", "DEFAULT_TIMEOUT", "UARTAccelerator", "BoardClient", "BoardError",
           "FrameResult", "SimulatedSerial", "open_serial"]
