"""Progress bars: tqdm's when it is installed (the experiments extra), else a silent stand-in, so
that training runs in a light install (torch and numpy only)."""
from __future__ import annotations


def progress_bar(**kwargs):
    """``tqdm.auto.tqdm(**kwargs)``, or an object with its update/close that shows nothing."""
    try:
        from tqdm.auto import tqdm
    except ModuleNotFoundError:
        return _Silent()
    return tqdm(**kwargs)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
