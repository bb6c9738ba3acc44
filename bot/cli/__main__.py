"""`python -m bot.cli`: the `cutover` command."""

import sys

from bot.cli.entry import main

sys.exit(main())
