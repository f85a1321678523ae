"""Shared pieces of every command line's help: the formatter and the wording of the options that
recur (data folder, profile). The library modules, the drivers and the benchmarks import them
from here, so no library module depends on the ``hdrepro`` command dispatcher."""
from __future__ import annotations

import argparse

DATA_HELP = "data folder (default $HDREPRO_DATA or <repo>/data)"
PROFILE_HELP = "scale: smoke (seconds), quick (minutes on a CPU) or full (the papers' scale)"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default after its help, except None and False: there the help says
    what happens (e.g. "default results/<profile>"), and "(default: None)" would only confuse."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)
