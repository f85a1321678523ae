"""The errors a user can cause or meet, as opposed to bugs: each message names the bad value and
the fix, and the command lines print it as one line (exit status 2) instead of a traceback
(:func:`hdrepro.cli_help.run_main`). The modules that raise them re-export them."""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration field of the wrong type or out of range (:mod:`hdrepro.config`)."""


class DataUnavailable(RuntimeError):
    """A data set could not be had from any source; the message names the command that gets it."""


class StoreLocked(RuntimeError):
    """Another live process is writing this results store; the message names it and the fix."""


#: What a command line reports in one line. ValueError covers every validated argument.
EXPECTED_ERRORS = (ValueError, DataUnavailable, StoreLocked)
