"""``python -m causalab.cli``: the same as the ``causalab`` console script."""

import sys

from causalab.cli.main import main

sys.exit(main())
