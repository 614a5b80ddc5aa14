"""``python -m aimc.energy``: see :mod:`aimc.energy.cli`."""

import sys

from .cli import main

sys.exit(main())
