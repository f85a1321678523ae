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


class MissingExtra(RuntimeError):
    """A command needs a package of an optional extra that is not installed."""


#: the packages of the "experiments" extra (pyproject.toml), by import name
EXPERIMENTS_EXTRA = ("scipy", "matplotlib", "seaborn", "tqdm", "pandas", "distributed", "dask")


def missing_extra(err: ModuleNotFoundError, what: str) -> Exception:
    """A one-line MissingExtra for a package of the experiments extra, else the error itself."""
    top = (err.name or "").split(".")[0]
    if top in EXPERIMENTS_EXTRA:
        return MissingExtra(f"{what} needs {top}, from the experiments extra: pip install "
                            "'hdrepro[experiments]' (./run_all.sh installs it)")
    return err


#: What a command line reports in one line. ValueError covers every validated argument.
EXPECTED_ERRORS = (ValueError, DataUnavailable, StoreLocked, MissingExtra)
