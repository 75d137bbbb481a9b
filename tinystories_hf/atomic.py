"""Writing an output folder whole, whatever happens to the run that writes it.

  * one writer per target: `.DIR.lock` beside it (an flock, which holds across containers and PID
    namespaces sharing the filesystem) is held from the start of a run to the end of its replace; a second
    writer stops at once with one line;
  * the new output is written to `.DIR.partial` and swapped with DIR in one atomic exchange (Linux
    renameat2(RENAME_EXCHANGE)); where the OS has none, two renames through `.DIR.previous`;
  * whatever a killed run left beside DIR is recovered by the next lock holder before it writes: a
    `.DIR.previous` without a DIR is put back, every other leftover removed. After a kill at any point and
    one rerun, DIR is the previous or the new complete output and nothing else is left;
  * datasets' temporary files (`tmp*`) of killed runs in the cache folders a run maps into are removed
    when no other run uses that folder (`hold_cache_lease`).

Used for every folder the package writes: a prepared folder (`store`), a report (`report`), a repository
layout (`hub`).
"""
import contextlib
import ctypes
import errno
import fcntl
import glob
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import filelock

from .errors import Run, TinyStoriesError, current_run, flag, writes

CACHE_LEASE = ".tinystories-hf.lock"


def check_output(output, *, overwrite: bool, source_files=(), marker: str = "dataset_dict.json",
                 what: str = "a prepared dataset folder", option: str = "output") -> Path:
    """Refuse an output that exists (without overwrite), that is not `what` (has no `marker` file), that
    lies inside the source, is a mount point or is unwritable; `option` names the caller's option."""
    output = Path(output).expanduser().resolve()
    if output.exists() and not overwrite:
        raise TinyStoriesError(f"{output} already exists; pass {flag('overwrite', True)} to replace it or choose "
                               f"another {flag(option)}")
    if output.exists() and not output.is_dir():
        raise TinyStoriesError(f"{output} is a file, not {what}; refusing to replace it")
    if output.exists() and not (output / marker).exists() and any(output.iterdir()):
        raise TinyStoriesError(f"{output} exists and is not {what}; refusing to replace it")
    if os.path.ismount(output):
        raise TinyStoriesError(f"{output} is a mount point, which cannot be replaced by a rename; write to a folder "
                               f"inside it ({flag(option, str(output / 'prepared'))})")
    for f in source_files:
        source = Path(f).resolve()
        if output == source or source in output.parents or output in source.parents:
            raise TinyStoriesError(f"{flag(option, str(output))} overlaps the source {source}; write it elsewhere")
    parent = output.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise TinyStoriesError(f"cannot write to {output}: {parent} is a file; choose another {flag(option)}")
    try:  # a real probe: os.access says yes to root even on /proc, /sys or a read-only mount
        tempfile.TemporaryDirectory(prefix=f".{output.name}.probe-", dir=parent).cleanup()
        problem = None
    except OSError as e:
        problem = e.strerror
    if problem:  # raised outside the handler: this line, not the probe's file name, is the message
        raise TinyStoriesError(f"cannot write to {parent} ({problem}); choose a writable {flag(option)}")
    writes(output, f"choose another {flag(option)}")
    return output


def _beside(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}"


def _leftovers(target: Path, kind: str) -> list:
    """`.DIR.partial`, `.DIR.previous` (and the `-PID` names of earlier versions) beside `target`."""
    return sorted(Path(p) for p in glob.glob(glob.escape(str(_beside(target, kind))) + "*"))


def recover(target: Path) -> None:
    """Undo what a killed writer left beside `target` (call with its lock held): a previous output renamed
    aside with no new one in its place is put back; every other leftover is removed."""
    for previous in _leftovers(target, "previous"):
        if not target.exists():
            os.rename(previous, target)
        else:
            shutil.rmtree(previous)
    for partial in _leftovers(target, "partial"):
        shutil.rmtree(partial)


_held: dict = {}  # target -> [FileLock, depth]: re-entrant within this process (prepare --report)


@contextlib.contextmanager
def writer_lock(target: Path, *, option: str = "output"):
    """Hold the advisory lock `.DIR.lock` beside `target` while the block runs, after recovering what a
    killed writer left. A second writer (another process, container or PID namespace on the same
    filesystem) gets a one-line `TinyStoriesError` at once, never a wait."""
    target = Path(target)
    if target in _held:
        _held[target][1] += 1
        try:
            yield
        finally:
            _held[target][1] -= 1
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(_beside(target, "lock")))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise TinyStoriesError(f"{target} is being written by another run, which holds {lock.lock_file}; wait "
                               f"for it to finish or choose another {flag(option)}") from None
    _held[target] = [lock, 1]
    try:
        recover(target)
        yield
    finally:
        del _held[target]
        lock.release()


def hold_writer_lock(target: Path, *, option: str = "output") -> None:
    """Take `writer_lock(target)` for the rest of the current API call or command, and name `target` in
    its "interrupted; DIR unchanged" line."""
    run = current_run()
    run.stack.enter_context(writer_lock(target, option=option))
    run.target = target


_renameat2 = None
if hasattr(ctypes.CDLL(None), "renameat2"):
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
AT_FDCWD, RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the OS or
    the filesystem has no such call."""
    if _renameat2 is None:
        return False
    if _renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold SIGINT back while the block runs (it is delivered when the block ends); a no-op off the main
    thread, which Python's signal handlers never run in anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def move_into_place(partial: Path, target: Path) -> None:
    """Make the finished folder `partial` the `target`, replacing an existing one: one atomic exchange (the
    previous output then sits in `partial` and is removed), or where there is none, two renames through
    `.DIR.previous`, which the next writer puts back if a kill falls between them. Call with the lock held."""
    run = current_run() or Run()
    with _ctrl_c_deferred():  # Ctrl-C between the two renames would leave no target until the next run
        if not target.exists():
            os.rename(partial, target)
            leftover = None
        elif exchange(partial, target):
            leftover = partial
        else:
            leftover = _beside(target, "previous")
            os.rename(target, leftover)
            os.rename(partial, target)
        run.replaced = True
    if leftover is not None:
        shutil.rmtree(leftover)


@contextlib.contextmanager
def atomic_folder(output: Path, *, overwrite: bool, lock: Path | None = None, option: str = "output"):
    """Yield the hidden temporary folder `.DIR.partial` beside `output`; when the block succeeds it
    replaces `output` (`move_into_place`), when it fails it is removed, so `output` is never half-written.
    The writer lock of `lock` (default `output`) is held throughout."""
    run = current_run()
    if run is not None and run.target is None:
        run.target = output  # named by "interrupted; DIR unchanged"
    with writer_lock(lock or output, option=option):
        recover(output)  # done by writer_lock already, unless the lock is the enclosing folder's
        partial = _beside(output, "partial")
        try:
            yield partial
            if output.exists() and not overwrite:
                raise TinyStoriesError(f"{output} appeared while writing it; pass {flag('overwrite', True)} to "
                                       "replace it")
            move_into_place(partial, output)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


def _sweep_if_alone(fd: int, folder: Path) -> None:
    """Remove datasets' temporary files in `folder` if no other run holds its lease: they are a killed
    run's (datasets writes a map's output to a `tmp*` file and renames it when the map finishes)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return
    try:
        for tmp in folder.glob("tmp*"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def _lease(folder: Path):
    try:
        fd = os.open(folder / CACHE_LEASE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        yield  # a cache nobody can write to holds no temporary file either: nothing to lease or sweep
        return
    try:
        _sweep_if_alone(fd, folder)
        fcntl.flock(fd, fcntl.LOCK_SH)  # shared: runs on other targets may map into the same folder
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            _sweep_if_alone(fd, folder)  # an interrupted pool's workers are terminated before they clean up
    finally:
        os.close(fd)


def hold_cache_lease(*dataset_list) -> None:
    """For the rest of the current run, lease the datasets cache folders the datasets' maps write into;
    killed runs' temporary files there are removed at the start and at the end, when no run uses them."""
    folders = sorted({Path(f["filename"]).parent for ds in dataset_list for f in ds.cache_files})
    for folder in folders:
        current_run().stack.enter_context(_lease(folder))
