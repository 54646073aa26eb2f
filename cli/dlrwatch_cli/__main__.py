"""``python -m dlrwatch_cli``: the same as the ``dlrwatch`` command."""

from __future__ import annotations

import sys

from dlrwatch_cli.main import main

sys.exit(main())
