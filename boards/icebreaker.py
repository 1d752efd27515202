"""iCEBreaker (iCE40 UP5K, 12 MHz): ``python -m boards.icebreaker build [options]``.

The FT2232H makes 2 Mbaud exactly (6 clocks per bit here). The user button resets the design;
the green LED shows activity, the red one errors.
"""

import sys

from amaranth_boards.icebreaker import ICEBreakerPlatform

from convhw.board.build import main
from convhw.board.defaults import BOARD_BAUDS
from convhw.board.top import BoardInfo

ICEBREAKER = BoardInfo(
    name="icebreaker", platform=ICEBreakerPlatform, baud=BOARD_BAUDS["icebreaker"],
    reset=("button", 0), leds=(("led_g", 0), ("led_r", 0), None),
    fifo_depth=4096, programmer=("ICEPROG", "iceprog"), dsps=8,
    build_options=(("synth_opts", "-dsp"),))          # runtime coefficients in SB_MAC16

if __name__ == "__main__":
    sys.exit(main(ICEBREAKER))
