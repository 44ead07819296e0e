"""`python -m renderer` is the `nrender` command."""

import sys

from .cli import main

sys.exit(main())
