"""Run one function in a forked process while this one goes on (`Forked`): the CPU of a second core for work
whose result is a file (a datasets cache file), while this process does work that needs no such file.

    scan = Forked(dataset.map, cut_stories, new_fingerprint=key)   # forked now; writes the map's cache file
    ...                                                              # this process goes on
    seconds = scan.wait()                                            # raises what the map raised
    scanned = dataset.map(cut_stories, new_fingerprint=key)         # read from the cache it wrote

Nothing but its outcome comes back, as JSON bytes through a pipe (no pickle): how its exception reads (our
one-line error, an OS fault with its errno and file, running out of memory, or a bug's traceback), so the
caller raises the equivalent and `supervision.translate` gives the same line as for a fault in this process.
The forked process inherits the run's signal handling (`supervision`: it ignores Ctrl-C, ends at SIGTERM and
when the run's process dies); when the run ends before `wait`, it is killed, and the datasets cache lease's
sweep removes the temporary file it was writing.
"""
import json
import multiprocessing
import os
import sys
import threading
import time
import traceback

from ..errors import TinyStoriesError
from ..supervision import DEAD_WORKER, current_run

POLL_SECONDS = 0.1  # how often `wait` looks up from the pipe (a signal is acted on at the latest then)


class Forked:
    """`function(*args, **kwargs)` called in a forked child process (Linux and macOS' `fork`); `wait()` waits
    for it to end, raises what it raised, and returns how long it ran (seconds, float); its return value is
    dropped (what it makes, it writes). The child draws no progress bar (datasets' or tqdm's).

    Inside a run (`supervision.api_errors` / `cli_errors`) the child is killed when the run ends, however it
    ends; `cancel()` kills it earlier. Both are no-ops once it has ended.

    Example:
        >>> job = Forked(print, "in the child")  # doctest: +SKIP
        >>> job.wait()  # doctest: +SKIP
    """

    def __init__(self, function, *args, **kwargs):
        context = multiprocessing.get_context("fork")
        self._outcome, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_call, args=(send, function, args, kwargs), daemon=True,
                                        name=f"tinystories-hf {getattr(function, '__name__', 'forked')}")
        run = current_run()
        if run is not None:  # before the start: a Ctrl-C right after it still ends the child with the run
            run.stack.callback(self.cancel)
        self._process.start()
        send.close()  # this process keeps only the reading end: the child's exit then reads as EOF

    def wait(self) -> float:
        """The seconds the call took in the child, once it has ended; raise what it raised (`TinyStoriesError`,
        `OSError`, `MemoryError`, else a `RuntimeError` holding its traceback), or a `RuntimeError` that datasets'
        own wording of a killed worker starts (`supervision.DEAD_WORKER`) when it ended without a word (killed by
        a signal)."""
        try:
            # Polled, not one blocking read: a signal delivered to another thread of this process (any thread
            # may take a process's signal) would not interrupt the read, and Ctrl-C would wait for the child.
            while not self._outcome.poll(POLL_SECONDS):
                pass
            outcome = json.loads(self._outcome.recv_bytes())
        except EOFError:
            outcome = None
        finally:
            self._outcome.close()
        self._process.join()
        if outcome is None:
            raise RuntimeError(f"{DEAD_WORKER}: the forked process {self._process.name!r} ended with exit code "
                               f"{self._process.exitcode} before finishing its work")
        raise_outcome(outcome)
        return outcome["seconds"]

    def cancel(self) -> None:
        """Kill the child if it still runs (the run's ending, or an error before `wait`)."""
        if self._process.pid is not None and self._process.exitcode is None:  # started, not ended
            self._process.kill()
            self._process.join()
        self._outcome.close()


def _quiet_child() -> None:
    # A bar drawn beside the run's output would share its lines (and a killed one leaves half a line). tqdm
    # takes its write lock even for a disabled bar, and the inherited one is shared with the run's processes (a
    # multiprocessing lock) and may have been held by a thread of the run at the fork: the child takes a lock of
    # its own, and starts no monitor thread. (What the run has not imported, the child imports afresh.)
    bars = []
    if "tqdm" in sys.modules:
        bars.append(sys.modules["tqdm"].tqdm)
    if "datasets" in sys.modules:
        from datasets.utils import tqdm as datasets_tqdm  # the class datasets' maps draw their bars with

        sys.modules["datasets"].disable_progress_bars()
        bars.append(datasets_tqdm)  # it keeps its lock on its own class
    for bar in bars:
        bar.set_lock(threading.RLock())
        bar.monitor_interval = 0


def _call(send, function, args, kwargs) -> None:
    _quiet_child()
    started = time.perf_counter()
    try:
        function(*args, **kwargs)
        outcome = {"seconds": time.perf_counter() - started}
    except BaseException as error:  # noqa: BLE001 - whatever it is, the parent raises its equivalent
        outcome = describe(error)
    send.send_bytes(json.dumps(outcome).encode())
    send.close()


def describe(error: BaseException) -> dict:
    """What of `error` crosses the pipe (`raise_outcome` raises its equivalent): JSON-serialisable."""
    if isinstance(error, TinyStoriesError):
        return {"kind": "error", "message": str(error)}
    if isinstance(error, OSError) and error.errno is not None:
        return {"kind": "os", "errno": error.errno, "strerror": error.strerror, "filename": _path(error.filename),
                "filename2": _path(error.filename2)}
    if isinstance(error, MemoryError):
        return {"kind": "memory"}
    return {"kind": "bug", "traceback": "".join(traceback.format_exception(error))}


def _path(name):
    # An OSError's file name may be bytes or a file descriptor: JSON carries a str.
    return None if name is None else os.fsdecode(name) if isinstance(name, bytes) else str(name)


def raise_outcome(outcome: dict) -> None:
    """Raise the equivalent of a `describe`d exception (nothing for an outcome without "kind": the call
    returned)."""
    kind = outcome.get("kind")
    if kind is None:
        return
    if kind == "error":
        raise TinyStoriesError(outcome["message"])
    if kind == "os":
        raise OSError(outcome["errno"], outcome["strerror"], outcome["filename"], None, outcome["filename2"])
    if kind == "memory":
        raise MemoryError()
    raise RuntimeError(f"the forked process failed:\n{outcome['traceback']}")
