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
import sys
import tempfile
from pathlib import Path

import filelock

from ..errors import TinyStoriesError, flag, reason
from ..supervision import Run, current_run, signals_deferred, writes

CACHE_LEASE = ".tinystories-hf.lock"


def resolve(path, option: str = "output", *, api_option: str | None = None) -> Path:
    """`path` made absolute with its symlinks resolved, as an output folder is written: through a symlink to
    a folder, into that folder. A symlink to nothing (dangling, or a loop) on the way is an error naming
    it, not a folder created wherever it points."""
    path = Path(path).expanduser().absolute()
    for link in (path, *path.parents):
        if os.path.islink(link) and not link.exists():
            raise TinyStoriesError(f"{link} is a symlink to {os.readlink(link)}, which does not exist (or a symlink "
                                   f"loop); create the folder it points to or choose another "
                                   f"{_option(option, api_option)}")
    try:
        return path.resolve()
    except (OSError, RuntimeError) as e:  # a loop made while we looked (Python < 3.13 raises RuntimeError)
        raise TinyStoriesError(f"{path}: cannot be resolved ({reason(e)}); choose another "
                               f"{_option(option, api_option)}") from None


def _option(option: str, api_option: str | None, value=None) -> str:
    """`flag(option, value)`, for an API whose argument has another name than the CLI flag."""
    if api_option is None:
        return flag(option, value)
    return flag(option, value, api=api_option if value is None else f"{api_option}={value!r}")


def replace_file(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` whole: into `tmp-NAME.PID` beside it, then renamed over it, so a reader
    sees the old file or the new one, never a part. Raises OSError (the temporary file removed)."""
    path = Path(path)
    partial = path.with_name(f"tmp-{path.name}.{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def check_output(output, *, overwrite: bool, source_files=(), cache_dir=None, marker: str = "dataset_dict.json",
                 what: str = "a prepared dataset folder", option: str = "output", api_option: str | None = None
                 ) -> Path:
    """Refuse an output that exists (without overwrite), that is not `what` (has no `marker` file), that
    overlaps the source or holds the cache folder, is a mount point or is unwritable; `option` names the
    caller's option (`api_option` the API's argument, where its name differs)."""
    output = resolve(output, option, api_option=api_option)
    if output.exists() and not overwrite:
        raise TinyStoriesError(f"{output} already exists; pass {flag('overwrite', True)} to replace it or choose "
                               f"another {_option(option, api_option)}")
    if output.exists() and not output.is_dir():
        raise TinyStoriesError(f"{output} is a file, not {what}; refusing to replace it")
    if output.exists() and not (output / marker).exists() and any(output.iterdir()):
        raise TinyStoriesError(f"{output} exists and is not {what}; refusing to replace it")
    if os.path.ismount(output):
        raise TinyStoriesError(f"{output} is a mount point, which cannot be replaced by a rename; write to a folder "
                               f"inside it ({_option(option, api_option, str(output / 'prepared'))})")
    for f in source_files:
        source = Path(f).resolve()
        if output == source or source in output.parents or output in source.parents:
            raise TinyStoriesError(f"{_option(option, api_option, str(output))} overlaps the source {source}; write "
                                   "it elsewhere")
    if cache_dir is not None:
        cache = resolve(cache_dir, "cache_dir")
        if cache == output or output in cache.parents:  # the output's replace would delete the cache in use
            raise TinyStoriesError(f"{flag('cache_dir', str(cache))} lies in {_option(option, api_option, str(output))}, "
                                   "which the new output replaces; choose a cache folder outside it")
    parent = output.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise TinyStoriesError(f"cannot write to {output}: {parent} is a file; choose another "
                               f"{_option(option, api_option)}")
    try:  # a real probe: os.access says yes to root even on /proc, /sys or a read-only mount
        tempfile.TemporaryDirectory(prefix=f".{output.name}.probe-", dir=parent).cleanup()
        problem = None
    except OSError as e:
        problem = e.strerror
    if problem:  # raised outside the handler: this line, not the probe's file name, is the message
        raise TinyStoriesError(f"cannot write to {parent} ({problem}); choose a writable {_option(option, api_option)}")
    writes(output, f"choose another {_option(option, api_option)}")
    return output


def _beside(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}"


def _leftovers(target: Path, kind: str) -> list:
    """`.DIR.partial`, `.DIR.previous` (and the `-PID` names of earlier versions) beside `target`."""
    return sorted(Path(p) for p in glob.glob(glob.escape(str(_beside(target, kind))) + "*"))


def remove_tree(path: Path) -> None:
    """`shutil.rmtree(path)`, whose errors name the file by its full path: its fd-based walk names it
    relative to its folder, which an error message would show as a file of the working directory. A symlink
    or a file is unlinked, never followed: a leftover `.DIR.partial` that is a symlink (an exchange with a DIR
    that was one) is removed, not the folder it points to, and never stops the next run."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
        return

    def fail(name, error):
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror, name) from None
        raise error

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=lambda function, name, error: fail(name, error))
    else:
        shutil.rmtree(path, onerror=lambda function, name, info: fail(name, info[1]))


def recover(target: Path) -> None:
    """Undo what a killed writer left beside `target` (call with its lock held): a previous output renamed
    aside with no new one in its place is put back; every other leftover is removed."""
    for previous in _leftovers(target, "previous"):
        if not target.exists():
            os.rename(previous, target)
        else:
            remove_tree(previous)
    for partial in _leftovers(target, "partial"):
        remove_tree(partial)


@contextlib.contextmanager
def writer_lock(target: Path, *, option: str = "output", api_option: str | None = None):
    """Hold the advisory lock `.DIR.lock` beside `target` while the block runs, after recovering what a
    killed writer left. A second writer (another process, container or PID namespace on the same
    filesystem) gets a one-line `TinyStoriesError` at once, never a wait."""
    target = Path(target)
    run = current_run()
    held = run.locks if run is not None else {}  # re-entrant within one run only (prepare --report), never
    if target in held:                           # between two runs, be they in two threads of one process
        held[target] += 1
        try:
            yield
        finally:
            held[target] -= 1
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(_beside(target, "lock")))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise TinyStoriesError(f"{target} is being written by another run, which holds {lock.lock_file}; wait "
                               f"for it to finish or choose another {_option(option, api_option)}") from None
    held[target] = 1
    try:
        recover(target)
        yield
    finally:
        del held[target]
        lock.release()


def hold_writer_lock(target: Path, *, option: str = "output", replaces: bool = True) -> None:
    """Take `writer_lock(target)` for the rest of the current API call or command; when the run `replaces`
    `target` (not only a folder inside it), name it in its "interrupted; DIR unchanged" line."""
    run = current_run()
    run.stack.enter_context(writer_lock(target, option=option))
    if replaces:
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


def move_into_place(partial: Path, target: Path) -> None:
    """Make the finished folder `partial` the `target`, replacing an existing one: one atomic exchange (the
    previous output then sits in `partial` and is removed), or where there is none, two renames through
    `.DIR.previous`, which the next writer puts back if a kill falls between them. Call with the lock held."""
    run = current_run() or Run()
    with signals_deferred():  # Ctrl-C between the two renames would leave no target until the next run
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
    if leftover is None:
        return
    try:
        remove_tree(leftover)
        return
    except OSError as e:
        failed = e
    # Raised outside the handler: this line, which says the target is complete, not the fault's, is the message.
    raise TinyStoriesError(f"{target} was written, but its previous version, moved to {leftover}, could not be "
                           f"removed ({failed.strerror}: {failed.filename}); remove it by hand")


@contextlib.contextmanager
def atomic_folder(output: Path, *, overwrite: bool, lock: Path | None = None, option: str = "output",
                  api_option: str | None = None):
    """Yield the hidden temporary folder `.DIR.partial` beside `output`; when the block succeeds it
    replaces `output` (`move_into_place`), when it fails it is removed, so `output` is never half-written.
    The writer lock of `lock` (default `output`) is held throughout."""
    run = current_run()
    if run is not None and run.target is None:
        run.target = output  # named by "interrupted; DIR unchanged"
    with writer_lock(lock or output, option=option, api_option=api_option):
        recover(output)  # done by writer_lock already, unless the lock is the enclosing folder's
        partial = _beside(output, "partial")
        try:
            yield partial
            if output.exists() and not overwrite:
                raise TinyStoriesError(f"{output} appeared while writing it; pass {flag('overwrite', True)} to "
                                       "replace it")
            move_into_place(partial, output)
        finally:
            with contextlib.suppress(OSError):  # what is left here, the next writer's recover() removes
                remove_tree(partial)


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
                with contextlib.suppress(OSError):  # another run's leftover: never a reason to fail this one
                    tmp.unlink()
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
