"""``python3 -m gatekeeper`` — the same as the ``gatekeeper`` command."""

import sys

from gatekeeper.cli.main import main

sys.exit(main())
