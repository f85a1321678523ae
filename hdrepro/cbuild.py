"""C++ sources of the package compiled on first use into cached shared libraries, called
through ctypes: no torch headers, so a build takes about a second, and a machine without a
compiler runs on (each user of a library has a pure-torch path).

The cache folder is ``$HDREPRO_KERNEL_CACHE``, else ``hdrepro/kernels`` in the user cache
(``$XDG_CACHE_HOME``, else ``~/.cache``). A library's file name hashes its source, the flags,
the compiler's version and the CPU (``-march=native`` builds for this machine only). It is
written under a temporary name and renamed, so that two processes building at once both end
with a whole file.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path


#: the flags of the package's kernels: built for this CPU, OpenMP threads, and no multiply-add
#: fused or reassociated beyond what the source writes (no -ffast-math), so that they round as
#: the source says
FLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-shared",
         "-fPIC"]


class Library:
    """One C++ source of a package (`package`, `source`), built with `flags` on first use, once
    per process; :meth:`get` gives the loaded library or None, :meth:`reason` why it is None."""

    def __init__(self, package: str, source: str, flags: list[str]):
        self.package, self.source, self.flags = package, source, list(flags)
        self._lib: ctypes.CDLL | None = None
        self._reason: str | None = None
        self._tried = False

    def get(self) -> ctypes.CDLL | None:
        if not self._tried:
            self._tried = True
            try:
                self._lib = ctypes.CDLL(str(self.build()))
            except (OSError, RuntimeError) as err:
                self._reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return self._lib

    def reason(self) -> str | None:
        self.get()
        return self._reason

    def build(self) -> Path:
        """The shared library's path: from the cache, else compiled into it."""
        text = resources.files(self.package).joinpath(self.source).read_text()
        return compile_cached(text, Path(self.source).stem, self.flags)


def compile_cached(text: str, stem: str, flags: list[str]) -> Path:
    """The shared library built from C++ source `text` with `flags`: from the cache, else compiled
    into it (as ``{stem}_{hash}.so``); RuntimeError where it cannot be built."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise RuntimeError("no C++ compiler (c++ or g++) on PATH")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([text, " ".join(flags), version, _cpu()]).encode())
    target = cache_dir() / f"{stem}_{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hdrepro_build_") as tmp:
        src, lib = Path(tmp) / "k.cpp", Path(tmp) / "k.so"
        src.write_text(text)
        done = subprocess.run([compiler, *flags, "-o", str(lib), str(src)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no message"])[0]
            raise RuntimeError(f"{compiler} failed: {first}")
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(lib, partial)
        os.replace(partial, target)
    return target


def cache_dir() -> Path:
    """``$HDREPRO_KERNEL_CACHE``, else ``hdrepro/kernels`` in the user cache
    (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    if os.environ.get("HDREPRO_KERNEL_CACHE"):
        return Path(os.environ["HDREPRO_KERNEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hdrepro" / "kernels"


def _cpu() -> str:
    """What -march=native depends on: the machine and its CPU's feature flags."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                flags += line
    except OSError:
        pass
    return platform.machine() + platform.processor() + flags
