"""``python -m convhw``: the same as the ``convhw`` command."""

import sys

from .cli import main

sys.exit(main())
