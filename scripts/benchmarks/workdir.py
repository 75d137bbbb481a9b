"""The benchmarks' working folder (`--workdir`): corpora (made once and reused by the next run), caches and
outputs, several GB at TinyStories' size. Every run says where it is and how big; `--clean` removes it.

A folder is removed only if a benchmark made it (`MARKER` inside, or the default folder's name): `--clean
--workdir ~` must never be a way to lose a home folder.
"""
import os
import shutil
from pathlib import Path

from tinystories_hf.errors import TinyStoriesError

MARKER = ".tinystories-hf-bench"
DEFAULT_NAME = "tinystories-hf-bench"


def claim(workdir: Path) -> Path:
    """Create `workdir` if needed and mark it as the benchmarks' own."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).touch()
    return workdir


def size(folder: Path) -> int:
    """Bytes of the files under `folder` (links not followed, each hard-linked file once)."""
    seen, total = set(), 0
    for root, _, files in os.walk(folder):
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def human(nbytes: int) -> str:
    """`5.9 GB`, `3.0 MB`, `12 bytes` (decimal units, as `du --si`)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def summary(workdir: Path) -> str:
    """Where the benchmark's files are, how big, and how to remove them.

    Example:
        >>> summary(Path("/tmp/tinystories-hf-bench"))  # doctest: +SKIP
        'benchmark files: /tmp/tinystories-hf-bench holds 5.9 GB (the corpora are reused by the next run); ...'
    """
    option = "" if workdir.name == DEFAULT_NAME else f" --workdir {workdir}"
    return (f"benchmark files: {workdir} holds {human(size(workdir))} (the corpora are reused by the next run); "
            f"remove them with: python scripts/benchmark.py --clean{option}")


def clean(workdir: Path) -> str:
    """Remove the benchmarks' folder; returns the line to print. Raises `TinyStoriesError` for a folder no
    benchmark made."""
    if not os.path.lexists(workdir):
        return f"nothing to clean: {workdir} does not exist"
    if workdir.is_symlink() or not workdir.is_dir():
        raise TinyStoriesError(f"{workdir} is not a folder the benchmarks made; remove it yourself if you mean to")
    if not (workdir / MARKER).is_file() and workdir.name != DEFAULT_NAME:
        raise TinyStoriesError(f"{workdir} holds no {MARKER}, so no benchmark made it: nothing removed; remove it "
                               "yourself if you mean to")
    freed = size(workdir)
    shutil.rmtree(workdir)
    return f"removed {workdir} ({human(freed)} freed)"
