"""``python -m distill``: the same as the ``distill`` command.

Usage:
    python -m distill run
"""

from distill.cli import main

raise SystemExit(main())
