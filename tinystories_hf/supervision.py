"""Supervision of a run: what a CLI command or API call holds while it works, what ends it (Ctrl-C, SIGTERM, a
worker process that died, the machine running out of memory or space), and the one place that turns any such
failure into a one-line `TinyStoriesError`.

One module rather than three, above the ~350-line guide, because the parts are one mechanism: a `Run` records
the places it writes, the signal handlers unwind it, and `translate()` reads both to name the place and the
option of a fault; split, each part would import the others.

`translate()` maps what a run raises onto one line. The CLIs (`cli_errors`) and the public API functions
(`api_errors`) are its only callers, so no call site needs a try/except of its own:
  * our own errors, also when raised in a datasets worker process: multiprocess sends a worker's exception
    back pickled, which drops its `__cause__`, and attaches the worker's formatted traceback as a
    `RemoteTraceback` cause instead, so the `TinyStoriesError:` line of that text is the error;
  * faults of the machine (no space, read-only, permission, busy, cross-device, I/O, open files) anywhere
    in the chain, also when a caller wrapped them in a message of its own: one line naming the path (the
    error's file name or, where the library dropped it as pyarrow does, the place this run writes whose
    filesystem shows the fault) and the option that moves it;
  * the machine running out of memory: a `MemoryError`, or a datasets worker process killed (by the
    kernel's out-of-memory killer, or any signal), which datasets reports as a `RuntimeError`;
  * Ctrl-C, also when a library turned it into another error on its way out (datasets' pool ends in a
    `TimeoutError` whose context is the `KeyboardInterrupt`): `interrupted; DIR unchanged`; in a CLI,
    SIGTERM (`kill`, `timeout`, a scheduler's preemption) the same way: `terminated; DIR unchanged`.
An error raised after the run's output replaced its target says so (`DIR was written and is complete`).
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

from .errors import IN_CLI, TinyStoriesError, flag

_RUN = contextvars.ContextVar("tinystories_hf_run", default=None)


class Terminated(KeyboardInterrupt):
    """SIGTERM received by a CLI command: it unwinds as Ctrl-C does (locks released, partial output removed)
    and exits with code 143."""


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
    options: frozenset = frozenset()  # the options its caller has: a fix names only those
    locks: dict = field(default_factory=dict)  # target -> depth of its writer lock, re-entered by a nested call
    doing: str | None = None  # what it does before it has a target ("reading DIR"), named by "interrupted while"


def current_run() -> Run | None:
    """The `Run` of the enclosing `api_errors`/`cli_errors` call, or None outside one."""
    return _RUN.get()


def offers(names) -> None:
    """Record the options the current run's caller has (a CLI's flags, an API function's arguments), so a
    message suggests an option only where it exists (`--num-proc` is no option of tinystories-validate)."""
    run = current_run()
    if run is not None:
        run.options = run.options | frozenset(names)


def has_option(name: str) -> bool:
    run = current_run()
    return run is not None and name in run.options


def writes(path, fix: str) -> None:
    """Record that the current run writes under `path`; `fix` is how the caller moves it ("choose another
    --output"). OS faults without a file name are attributed to these places."""
    run = current_run()
    if run is not None:
        run.places.insert(0, (Path(path).expanduser().absolute(), fix))


def doing(what: str) -> None:
    """Record what the current run does while it has no target yet ("reading DIR"), so Ctrl-C or SIGTERM then
    says `interrupted while reading DIR; nothing was written`, not a bare `interrupted`."""
    run = current_run()
    if run is not None:
        run.doing = what


def _run(function, args, kwargs, *, terminate: bool = False):
    """Call `function` as a `Run`: what it holds is released when it ends, and what it (or the release)
    raises leaves translated. A nested call (prepare --report) runs inside the outer run, which translates."""
    if current_run() is not None:
        return function(*args, **kwargs)
    run = Run()
    token = _RUN.set(run)
    try:
        with _signals_in_this_process_only(terminate=terminate), run.stack:
            return function(*args, **kwargs)
    except BaseException as e:
        mapped = translate(e)
        if mapped is None or mapped is e:
            raise
        raise mapped from None
    finally:
        _RUN.reset(token)


@contextlib.contextmanager
def _signals_in_this_process_only(*, terminate: bool):
    """Ctrl-C (and a scheduler's SIGTERM) reaches the whole process group, datasets' forked workers
    included; a worker that raised KeyboardInterrupt would print its own traceback. Workers inherit these
    handlers: they ignore SIGINT and end at SIGTERM as by default (the pool terminates its workers with it);
    this process raises KeyboardInterrupt (`Terminated` for SIGTERM, with `terminate`: CLIs only, an
    application owns its process's SIGTERM) and unwinds, and the pool it leaves is terminated by datasets."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only
        return
    owner = os.getpid()

    swallowed = _Swallowed(threading.main_thread().ident)

    def on_sigint(signum, frame):
        if os.getpid() == owner:
            swallowed.delivered()
            signal.default_int_handler(signum, frame)

    def on_sigterm(signum, frame):
        if os.getpid() == owner:
            swallowed.delivered()
            if signal.SIGALRM in installed:
                signal.alarm(TERMINATE_GRACE_SECONDS)
            raise Terminated()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a child that forked before _default_sigterm_in_child
        os.kill(os.getpid(), signal.SIGTERM)

    previous_unraisable = sys.unraisablehook

    def on_unraisable(unraisable):
        signum = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
        if os.getpid() == owner and isinstance(unraisable.exc_value, KeyboardInterrupt) and signum in installed:
            swallowed.again(signum)
        else:
            previous_unraisable(unraisable)

    def on_stuck(signum, frame):
        _kill_children()
        raise Terminated()

    on_sigterm.tinystories_hf = True

    installed = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # else an application's own handler
        installed[signal.SIGINT] = signal.signal(signal.SIGINT, on_sigint)
    # the console scripts' handler while the command imported its modules (tinystories_hf_cli) is taken over
    current = signal.getsignal(signal.SIGTERM)
    if terminate and (current == signal.SIG_DFL or getattr(current, "tinystories_hf_startup", False)):
        installed[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_sigterm)
        if signal.getsignal(signal.SIGALRM) == signal.SIG_DFL:
            installed[signal.SIGALRM] = signal.signal(signal.SIGALRM, on_stuck)
    if installed:
        sys.unraisablehook = on_unraisable
    try:
        yield
    except BaseException:
        swallowed.raise_pending()  # not sent again yet: the run ends as interrupted, its error the context
        raise
    else:
        swallowed.raise_pending()
    finally:
        swallowed.cancel()
        if installed:
            sys.unraisablehook = previous_unraisable
        if signal.SIGALRM in installed:
            signal.alarm(0)
        for signum, previous in installed.items():
            signal.signal(signum, previous)


class _Swallowed:
    """A signal whose handler raised where Python cannot raise (an after-fork hook, as when a pool or `Forked`
    starts a process; a finalizer, `__del__`): Python prints "Exception ignored" and goes on, and the run
    would ignore Ctrl-C or SIGTERM. Its handler's exception reaches `sys.unraisablehook`, which hands it here:
    the signal is sent to the main thread again `REDELIVER_SECONDS` later, by then out of that hook."""

    def __init__(self, main_thread: int):
        self._main_thread, self._timer, self._pending = main_thread, None, None
        # the timer's send and the run's cancel or raise: a pending signal is either sent or raised, never neither;
        # re-entrant, as a signal handler (`delivered`) may run in the main thread while it holds it
        self._lock = threading.RLock()

    def again(self, signum: int) -> None:
        self.cancel()
        with self._lock:
            self._pending = signum
            self._timer = threading.Timer(REDELIVER_SECONDS, self._send)
            self._timer.daemon = True
            self._timer.start()

    def _send(self) -> None:
        with self._lock:
            signum, self._pending = self._pending, None
            if signum is not None:
                signal.pthread_kill(self._main_thread, signum)

    def delivered(self) -> None:
        """The handler runs now: a pending resend is not needed."""
        self.cancel()

    def cancel(self) -> int | None:
        """Stop a pending resend; returns its signal (None if there was none or it was sent)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            signum, self._timer, self._pending = self._pending, None, None
        return signum

    def raise_pending(self) -> None:
        signum = self.cancel()
        if signum is not None:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


# A swallowed signal is sent again after this long: an after-fork hook or a finalizer has returned by then.
REDELIVER_SECONDS = 0.01


# After SIGTERM, unwinding that takes longer than this is stuck: a worker killed by a signal sent to the whole
# process group can die holding the lock of its pool's task queue, and the pool's terminate then waits for
# that lock forever. The run's worker processes are killed and the unwinding goes on.
TERMINATE_GRACE_SECONDS = 20


def _kill_children() -> None:
    """SIGKILL every child process of this one (datasets' pool workers and its manager), found in /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid():
            with contextlib.suppress(OSError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def _default_sigterm_in_child() -> None:
    """In a process forked during a CLI run (a datasets worker): end at SIGTERM by default, since a Python
    handler runs only between bytecodes of its main thread, and a worker blocked elsewhere when its pool
    terminates it would never end (the pool's join would wait forever); and end when the run's process
    dies (Linux `PR_SET_PDEATHSIG`), so a run killed by the out-of-memory killer leaves no orphan worker."""
    if not getattr(signal.getsignal(signal.SIGTERM), "tinystories_hf", False):
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Only from the main thread: the signal is sent when the forking *thread* ends, and a pool's own thread
    # (which forks replacements for dead workers) ends at its terminate, when an idle worker killed then would
    # take its task queue's lock with it.
    if _forked_by_main_thread and sys.platform.startswith("linux"):
        import ctypes

        parent = os.getppid()
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the run died before the call
            os._exit(1)


_forked_by_main_thread = False


def _note_forking_thread() -> None:
    global _forked_by_main_thread
    _forked_by_main_thread = threading.current_thread() is threading.main_thread()


os.register_at_fork(before=_note_forking_thread, after_in_child=_default_sigterm_in_child)


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM back while the block runs (they are delivered when it ends): a few steps
    that must not be cut in two. A no-op off the main thread, which Python's signal handlers never run in."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


# -- translation ------------------------------------------------------------------------------------------

# errno -> (what happened, what to do about the place it happened in when the run knows the option that
# moves it ({fix}), what to do otherwise)
_FAULTS = {
    errno.ENOSPC: ("no space left on its device", "free space there or {fix}", "free space there"),
    errno.EDQUOT: ("disk quota exceeded", "free space there or {fix}", "free space there"),
    errno.EROFS: ("read-only file system", "{fix} on a writable filesystem", "use a writable filesystem"),
    errno.EACCES: ("permission denied", "{fix} or fix its permissions", "fix its permissions"),
    errno.EPERM: ("operation not permitted", "{fix} or fix its permissions", "fix its permissions"),
    errno.EBUSY: ("busy (a mount point, or in use by another program)",
                  "a mount point cannot be replaced: {fix} (e.g. a folder inside it)",
                  "a mount point cannot be replaced: use a folder inside it"),
    errno.EXDEV: ("on another filesystem than the folder beside it (a mount point?)", "{fix} (not a mount point)",
                  "use a folder that is not a mount point"),
    errno.EIO: ("input/output error", "check the disk or network filesystem, or {fix}",
                "check the disk or network filesystem"),
    errno.EMFILE: ("too many open files", "", "raise the limit (ulimit -n)"),
    errno.ENFILE: ("too many open files in the system", "", "raise the system's limit"),
}
# Faults of the place written to: a copy or rename names its destination second (filename2).
_DESTINATION_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EBUSY, errno.EXDEV}
# pyarrow drops the file name but quotes the path in its message: "Failed to open local file '/x/y.arrow'".
_QUOTED_PATH = re.compile(r"'(/[^'\n]+)'")
# What datasets raises when a worker process of its pool was killed (by the out-of-memory killer, or a signal);
# `utils.forked.Forked` words a killed child the same way.
DEAD_WORKER = "One of the subprocesses has abruptly died"
_REMOTE_MEMORY_ERROR = re.compile(r"^MemoryError\b", re.MULTILINE)
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


def _out_of_memory(error: BaseException) -> str | None:
    """How the run ran out of memory, if it did: a MemoryError here or in a worker, or a worker killed."""
    for e in _chain(error):
        if isinstance(e, MemoryError) or _REMOTE_MEMORY_ERROR.search(_remote_text(e)):
            return "out of memory"
        if isinstance(e, RuntimeError) and str(e).startswith(DEAD_WORKER):
            return "a worker process was killed (by the system's out-of-memory killer, or a signal)"
    return None


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _fault_path(fault: OSError) -> Path | None:
    """The file an OS fault is about: the destination of a copy or rename for a fault of the place written
    to, else its file name, else a path quoted in its message."""
    names = [fault.filename2, fault.filename]
    if fault.errno not in _DESTINATION_FAULTS:
        names.reverse()
    name = next((n for n in names if n), None)
    if name is None:
        found = _QUOTED_PATH.search(str(fault))
        name = found and found.group(1)
    return Path(os.fsdecode(name)).absolute() if name else None


def _in_place(path: Path, place: Path) -> bool:
    """`path` is `place`, lies inside it, or is one of the hidden folders beside it (`.DIR.partial`...)."""
    return path == place or place in path.parents or any(
        p.parent == place.parent and p.name.startswith(f".{place.name}.") for p in (path, *path.parents))


def _fault_place(fault: OSError) -> tuple:
    """(path, fix) of an OS fault: its path when it has one, with the option that moves the place of this
    run holding it (fix None for a path of no such place); else the place of this run whose filesystem
    shows the fault (the fullest, the read-only one...)."""
    run = current_run()
    places = list(run.places if run else [])
    places += [(Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser(),
                "set HF_HOME to another folder")]
    path = _fault_path(fault)
    if path is not None:
        return path, next((fix for place, fix in places if _in_place(path, place)), None)
    places.append((Path(tempfile.gettempdir()), "set TMPDIR to another folder"))

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


def _fewer_workers() -> str:
    return f" or lower {flag('num_proc')}" if has_option("num_proc") else ""


def _fault_error(fault: OSError) -> "TinyStoriesError":
    what, todo, generic = _FAULTS[fault.errno]
    if fault.errno in (errno.EMFILE, errno.ENFILE):  # a limit of the process or system, not of a place
        return TinyStoriesError(f"{what}; {generic}{_fewer_workers()}")
    path, fix = _fault_place(fault)
    return TinyStoriesError(f"{path}: {what}; {todo.format(fix=fix) if fix else generic}")


def _interrupted(error: BaseException) -> KeyboardInterrupt:
    run = current_run()
    terminated = any(isinstance(e, Terminated) for e in _chain(error))
    kind, word = (Terminated, "terminated") if terminated else (KeyboardInterrupt, "interrupted")
    if run is not None and run.target is None and run.doing:
        return kind(f"{word} while {run.doing}; nothing was written")
    if run is None or run.target is None:
        return kind(word)
    state = "was already written (complete)" if run.replaced else "unchanged"
    return kind(f"{word}; {run.target} {state}")


def _after_replace(error: "TinyStoriesError") -> "TinyStoriesError":
    """`error`, saying that the run's target was replaced already when it was (a report failing after the
    prepared folder was written): the user must not think the output is lost."""
    run = current_run()
    if run is None or not run.replaced or f"{run.target} was written" in str(error):
        return error
    return TinyStoriesError(f"{error}; {run.target} was written and is complete")


def translate(error: BaseException) -> BaseException | None:
    """The one-line error for `error`: a `TinyStoriesError`, a `KeyboardInterrupt` whose message is the line
    to print, or None for a bug (keep the traceback). See the module docstring for what is translated.

    Example:
        >>> str(translate(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out")))
        '/mnt/ro/out: read-only file system; use a writable filesystem'
    """
    if isinstance(error, (SystemExit, GeneratorExit)):
        return None
    if any(isinstance(e, KeyboardInterrupt) for e in _chain(error)):
        return _interrupted(error)
    fault, memory = _os_fault(error), _out_of_memory(error)
    if fault is not None:  # the machine's fault, not the source's, even when a caller said "could not read"
        return _after_replace(_fault_error(fault))
    if memory is not None:
        return _after_replace(TinyStoriesError(f"{memory}; free memory{_fewer_workers()}, then run again"))
    for e in _chain(error, context=False):
        if isinstance(e, TinyStoriesError):
            return _after_replace(e)
        found = _REMOTE_OUR_ERROR.search(_remote_text(e))
        if found:
            return _after_replace(TinyStoriesError(found.group(1)))
    return None


def api_errors(function):
    """Decorate a public API function: it runs as a `Run` (released when it returns or raises), and what it
    raises leaves it translated: a `TinyStoriesError`, or a `KeyboardInterrupt` saying what was kept."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return _run(function, args, kwargs)

    return wrapper


def cli_errors(main):
    """Run a CLI entry point: a failure becomes `error: <message>` and exit code 2, Ctrl-C one
    `interrupted; ...` line and exit code 130 (SIGTERM: `terminated; ...`, 143), no traceback; a reader that
    closes the pipe early (`| head`) ends it quietly with 141, as SIGPIPE ends Unix tools; while it runs,
    `flag()` spells options as command-line flags."""

    @functools.wraps(main)
    def wrapper(argv=None):
        token = IN_CLI.set(True)
        try:
            return _run(main, (argv,), {}, terminate=True)
        except TinyStoriesError as e:  # printed once the run's locks and leases are released and swept
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:  # translated: its message is the line
            print(e, file=sys.stderr)
            return 143 if isinstance(e, Terminated) else 130
        except BrokenPipeError:
            # Python would flush stdout again at exit and print a second error: point it at /dev/null.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        finally:
            IN_CLI.reset(token)

    return wrapper
