"""``python -m berry``: the ``berry`` command."""

import sys

from berry.cli import main

sys.exit(main())
