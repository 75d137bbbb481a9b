"""One exception type for every problem a user can fix, and the one place that turns a failure into it.

Messages name options the way the caller wrote them: `flag("overwrite", True)` reads `--overwrite` when a
CLI entry point is running and `overwrite=True` from the Python API, so the fix a message suggests can be
typed as it is.

`translate()` maps what a run raises onto one line. The CLIs (`cli_errors`) and the public API functions
(`api_errors`) are its only callers, so no call site needs a try/except of its own:
  * our own errors, also when raised in a datasets worker process: multiprocess sends a worker's exception
    back pickled, which drops its `__cause__`, and attaches the worker's formatted traceback as a
    `RemoteTraceback` cause instead, so the `TinyStoriesError:` line of that text is the error;
  * faults of the machine (no space, read-only, permission, busy, cross-device, I/O, open files) anywhere
    in the chain, also when a caller wrapped them in a message of its own: one line naming the path (the
    error's file name or, where the library dropped it as pyarrow does, the place this run writes whose
    filesystem shows the fault) and the option that moves it;
  * Ctrl-C, also when a library turned it into another error on its way out (datasets' pool ends in a
    `TimeoutError` whose context is the `KeyboardInterrupt`): `interrupted; DIR unchanged`.
Anything else is a bug and keeps its traceback.
"""
import contextlib
import contextvars
import errno
import functools
import os
import re
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

_IN_CLI = contextvars.ContextVar("tinystories_hf_in_cli", default=False)
_RUN = contextvars.ContextVar("tinystories_hf_run", default=None)


class TinyStoriesError(Exception):
    """A user-facing error: its message names the file, row or option at fault and how to fix it.

    Example:
        >>> str(TinyStoriesError("demo.txt: the file is empty; pass a file with stories"))
        'demo.txt: the file is empty; pass a file with stories'
    """


def flag(name: str, value=None) -> str:
    """An option as the running caller spells it: `--vocab-size 300` / `vocab_size=300` for the CLI / the API.

    `value` True or False gives the switch (`--overwrite`, `--no-keep-text` / `overwrite=True`); None names
    the option alone (`--text-column` / `text_column`).

    Example:
        >>> flag("vocab_size", 300), flag("overwrite", True)
        ('vocab_size=300', 'overwrite=True')
    """
    if not _IN_CLI.get():
        return name if value is None else f"{name}={value!r}"
    dashed = "--" + name.replace("_", "-")
    if value is True or value is None:
        return dashed
    if value is False:
        return "--no-" + name.replace("_", "-")
    return f"{dashed} {value}"


# -- the run: what a CLI command or API call holds while it works -----------------------------------------

@dataclass
class Run:
    """What the running command or API call holds (locks, cache leases: released when it ends, however it
    ends) and the places it writes, with the option that moves each, to name them in an error.

    Example:
        >>> run = current_run()  # inside prepare(): the run's stack holds the writer lock  # doctest: +SKIP
        >>> run.target, run.replaced  # doctest: +SKIP
        (PosixPath('/data/tinystories_prepared'), False)
    """

    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    places: list = field(default_factory=list)  # (path, fix), most specific first
    target: Path | None = None  # the folder it replaces, named by "interrupted; DIR unchanged"
    replaced: bool = False  # True once the target holds the new output


def current_run() -> Run | None:
    """The `Run` of the enclosing `api_errors`/`cli_errors` call, or None outside one."""
    return _RUN.get()


def writes(path, fix: str) -> None:
    """Record that the current run writes under `path`; `fix` is how the caller moves it ("choose another
    --output"). OS faults without a file name are attributed to these places."""
    run = current_run()
    if run is not None:
        run.places.insert(0, (Path(path).expanduser().absolute(), fix))


@contextlib.contextmanager
def _run_scope():
    if current_run() is not None:  # nested call (prepare --report): the outer run holds and translates
        yield None
        return
    run = Run()
    token = _RUN.set(run)
    try:
        with run.stack, _sigint_in_this_process_only():
            yield run
    finally:
        _RUN.reset(token)


@contextlib.contextmanager
def _sigint_in_this_process_only():
    """Ctrl-C reaches the whole process group, datasets' forked workers included; a worker that raised
    KeyboardInterrupt would print its own traceback. Workers inherit this handler and ignore the signal;
    this process raises KeyboardInterrupt, and the pool it leaves is terminated by datasets."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # not ours to change: a thread, or an application with its own handler
        return
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() == owner:
            signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# -- translation ------------------------------------------------------------------------------------------

# errno -> (what happened, what to do about the place it happened in)
_FAULTS = {
    errno.ENOSPC: ("no space left on its device", "free space there or {fix}"),
    errno.EDQUOT: ("disk quota exceeded", "free space there or {fix}"),
    errno.EROFS: ("read-only file system", "{fix} on a writable filesystem"),
    errno.EACCES: ("permission denied", "{fix} or fix its permissions"),
    errno.EPERM: ("operation not permitted", "{fix} or fix its permissions"),
    errno.EBUSY: ("busy (a mount point, or in use by another program)",
                  "a mount point cannot be replaced: {fix} (e.g. a folder inside it)"),
    errno.EXDEV: ("on another filesystem than the folder beside it (a mount point?)", "{fix} (not a mount point)"),
    errno.EIO: ("input/output error", "check the disk or network filesystem, or {fix}"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or lower {num_proc}"),
    errno.ENFILE: ("too many open files in the system", "raise the limit or lower {num_proc}"),
}
# A worker's exception as multiprocess prints it into the RemoteTraceback text.
_REMOTE_OUR_ERROR = re.compile(r"^tinystories_hf\.errors\.TinyStoriesError: (.*)$", re.MULTILINE)
# Rust libraries (tokenizers) raise a bare Exception showing std::io::Error: "No space left on device (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_REMOTE_OS_ERROR = re.compile(r"^[\w.]*(?:Error|Exception): \[Errno (\d+)\] ([^\n]*?)(?:: '([^'\n]*)')?$",
                              re.MULTILINE)


def _chain(error: BaseException, *, context: bool = True):
    """`error` and the exceptions it was raised from (and, with `context`, during the handling of)."""
    seen, todo = set(), [error]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__] + ([e.__context__] if context else [])


def _remote_text(error: BaseException) -> str:
    tb = getattr(error, "tb", None)  # multiprocess.pool.RemoteTraceback
    return tb if type(error).__name__ == "RemoteTraceback" and isinstance(tb, str) else ""


def _os_fault(error: BaseException) -> OSError | None:
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno in _FAULTS:
            return e
        found = None if isinstance(e, OSError) else _RUST_OS_ERROR.search(str(e))
        if found and int(found.group(1)) in _FAULTS:
            return OSError(int(found.group(1)), os.strerror(int(found.group(1))))
        found = _REMOTE_OS_ERROR.search(_remote_text(e))
        if found and int(found.group(1)) in _FAULTS:
            return OSError(int(found.group(1)), found.group(2), found.group(3))
    return None


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _fault_place(fault: OSError) -> tuple:
    """(path, fix) of an OS fault: its file name when it has one, else the place of this run whose
    filesystem shows the fault (the fullest, the read-only one...)."""
    run = current_run()
    places = list(run.places if run else [])
    places += [(Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser(),
                "set HF_HOME to another folder"),
               (Path(tempfile.gettempdir()), "set TMPDIR to another folder")]
    if fault.filename:
        path = Path(os.fsdecode(fault.filename)).absolute()
        for place, fix in places:
            if path == place or place in path.parents:
                return path, fix
        return path, "choose another location"

    def stats(place):
        try:
            return os.statvfs(_existing(place))
        except OSError:
            return None

    measured = [(place, fix, stats(place)) for place, fix in places]
    measured = [m for m in measured if m[2] is not None] or [(p, f, None) for p, f in places]
    if fault.errno in (errno.ENOSPC, errno.EDQUOT):
        return min(measured, key=lambda m: m[2].f_bavail * m[2].f_frsize if m[2] else 0)[:2]
    if fault.errno == errno.EROFS:
        return next((m[:2] for m in measured if m[2] and m[2].f_flag & os.ST_RDONLY), measured[0][:2])
    return measured[0][:2]


def _fault_error(fault: OSError) -> "TinyStoriesError":
    what, todo = _FAULTS[fault.errno]
    if fault.errno in (errno.EMFILE, errno.ENFILE) and not fault.filename:  # a limit of the process, no place
        return TinyStoriesError(f"{what}; {todo.format(num_proc=flag('num_proc'))}")
    path, fix = _fault_place(fault)
    return TinyStoriesError(f"{path}: {what}; {todo.format(fix=fix, num_proc=flag('num_proc'))}")


def _interrupted() -> KeyboardInterrupt:
    run = current_run()
    if run is None or run.target is None:
        return KeyboardInterrupt("interrupted")
    state = "was already written (complete)" if run.replaced else "unchanged"
    return KeyboardInterrupt(f"interrupted; {run.target} {state}")


def translate(error: BaseException) -> BaseException | None:
    """The one-line error for `error`: a `TinyStoriesError`, a `KeyboardInterrupt` whose message is the line
    to print, or None for a bug (keep the traceback). See the module docstring for what is translated.

    Example:
        >>> str(translate(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out")))
        '/mnt/ro/out: read-only file system; choose another location on a writable filesystem'
    """
    if isinstance(error, (SystemExit, GeneratorExit)):
        return None
    if any(isinstance(e, KeyboardInterrupt) for e in _chain(error)):
        return _interrupted()
    fault = _os_fault(error)
    if fault is not None:  # the machine's fault, not the source's, even when a caller said "could not read"
        return _fault_error(fault)
    for e in _chain(error, context=False):
        if isinstance(e, TinyStoriesError):
            return e
        found = _REMOTE_OUR_ERROR.search(_remote_text(e))
        if found:
            return TinyStoriesError(found.group(1))
    return None


def reason(error: BaseException) -> str:
    """The first line of an error's message, or its type: what a one-line error quotes of another."""
    return (str(error).splitlines() or [type(error).__name__])[0] or type(error).__name__


def api_errors(function):
    """Decorate a public API function: it runs as a `Run` (released when it returns or raises), and what it
    raises leaves it translated: a `TinyStoriesError`, or a `KeyboardInterrupt` saying what was kept."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with _run_scope() as run:
            if run is None:
                return function(*args, **kwargs)
            try:
                return function(*args, **kwargs)
            except BaseException as e:
                mapped = translate(e)
                if mapped is None or mapped is e:
                    raise
                raise mapped from None

    return wrapper


def cli_errors(main):
    """Run a CLI entry point: a failure becomes `error: <message>` and exit code 2, Ctrl-C one
    `interrupted; ...` line and exit code 130, no traceback; while it runs, `flag()` spells options as
    command-line flags."""

    @functools.wraps(main)
    def wrapper(argv=None):
        token = _IN_CLI.set(True)
        try:
            with _run_scope():
                try:
                    return main(argv)
                except BaseException as e:
                    mapped = translate(e)
                    if mapped is None:
                        raise
                    line, code = (str(mapped), 130) if isinstance(mapped, KeyboardInterrupt) else \
                        (f"error: {mapped}", 2)
            print(line, file=sys.stderr)  # after the run's locks and leases are released and swept
            return code
        finally:
            _IN_CLI.reset(token)

    return wrapper
