"""Shared pieces of every command line: the help formatter, the wording of the options that
recur (data folder, profile), and :func:`run_main`, which ends a command with one line for an
expected error. The library modules, the drivers and the benchmarks import them from here, so no
library module depends on the ``hdrepro`` command dispatcher."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn

from .errors import EXPECTED_ERRORS

DATA_HELP = "data folder (default $HDREPRO_DATA or <repo>/data)"
PROFILE_HELP = "scale: smoke (seconds), quick (minutes on a CPU) or full (the papers' scale)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default after its help, except None and False: there the help says
    what happens (e.g. "default results/<profile>"), and "(default: None)" would only confuse."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def run_main(main: Callable[[], object], prog: str | None = None) -> NoReturn:
    """Run a command's main() and exit with its status; an expected error (a bad value, data not
    fetched, a results store in use) ends it with one line on stderr and status 2."""
    try:
        status = main()
    except EXPECTED_ERRORS as e:
        print(f"{prog or Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status if isinstance(status, int) else 0)
