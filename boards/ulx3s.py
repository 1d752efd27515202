"""ULX3S with an ECP5-85F (25 MHz): ``python -m boards.ulx3s build [options]``.

The FT231X makes 3 Mbaud exactly (8 1/3 clocks per bit here; the UART's fractional bit timing
keeps it exact). The FIRE1 button resets the design; LEDs 0, 1, 2 show activity, errors, busy.
"""

import sys

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from convhw.board.build import main
from convhw.board.defaults import BOARD_BAUDS
from convhw.board.top import BoardInfo

ULX3S = BoardInfo(
    name="ulx3s", platform=ULX3S_85F_Platform, baud=BOARD_BAUDS["ulx3s"],
    reset=("button_fire", 0), leds=(("led", 0), ("led", 1), ("led", 2)),
    fifo_depth=8192, programmer=("OPENFPGALOADER", "openFPGALoader"), dsps=156,
    tie_high=(("esp32", 0, "gpio0"),))      # keeps the ESP32 from rebooting the board

if __name__ == "__main__":
    sys.exit(main(ULX3S))
