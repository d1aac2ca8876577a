"""The command line (the ``causalab`` console script, ``python -m causalab.cli``): the top floor.

``main.py`` parses arguments and prints tables; ``progress.py`` shows progress on stderr
(a bar on a terminal, plain lines elsewhere). Nothing below imports this package.
"""

from causalab.cli.main import main

__all__ = ["main"]
