"""Processes the tests start, on a short leash, so that no test can hang the suite or leave a process behind.

* Every process runs in a session of its own (`popen`: `start_new_session`; `fork`: `os.setsid()` first), so
  `kill_all()` can kill it with everything it started (datasets' workers, its manager) by one `killpg`, and
  a signal a test sends to "the whole group" reaches only the run under test. conftest's autouse fixture
  calls `kill_all()` when each test ends, pass or fail: a paused run never outlives its test (it would hold
  its writer lock, and multiprocessing's exit handler would wait for a forked child at the suite's end).
* A forked child starts with the default SIGALRM and SIGTERM handlers, as a command started from a shell
  does: pytest-timeout's SIGALRM handler, inherited through the fork, would otherwise stand in for the
  product's own.
* Every wait has a deadline (`wait_until`, `finish`), long enough for a machine busy with other work, and
  says what it waited for; pytest-timeout (setup.cfg) fails any test that still runs past its limit.
"""
import contextlib
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

DEADLINE = 240.0  # seconds: a wait this long is a failure, also on a 2-core machine running other work
_STARTED = []  # (pid, what): every process started by the running test


def popen(argv, **kwargs) -> subprocess.Popen:
    """`subprocess.Popen(argv)` in a session of its own, killed with its session when the test ends."""
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    _STARTED.append((proc.pid, proc))
    return proc


def run(argv, *, timeout: float = DEADLINE, check: bool = False, capture_output: bool = False, input=None,
        **kwargs) -> subprocess.CompletedProcess:
    """`subprocess.run` in a session of its own with a deadline: past `timeout` the whole session is killed
    (what it started too, not only the process itself) and the test fails naming the command."""
    if capture_output:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    proc = popen(argv, **kwargs)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{' '.join(map(str, argv))[:200]}: still running after {timeout:.0f} s (killed)") from None
    result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def fork(target) -> multiprocessing.Process:
    """Start `target()` in a forked child (this process's imports: no start-up cost), in a session of its own,
    with the default SIGALRM/SIGTERM handlers; killed with its session when the test ends."""
    def child():
        os.setsid()
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        target()

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    _STARTED.append((proc.pid, proc))
    return proc


def wait_until(done, *, what: str, alive=None, timeout: float = DEADLINE, log: Path | None = None) -> None:
    """Poll `done()` every 20 ms until it is true; fail if `alive()` turns false first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not done():
        tail = f"\n{log.read_text(errors='replace')[-2000:]}" if log is not None and log.exists() else ""
        assert alive is None or alive(), f"{what}: the process ended first{tail}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s{tail}"
        time.sleep(0.02)


def finish(proc, *, timeout: float = DEADLINE, what: str = "the process to end") -> int:
    """The exit code of `proc` (a Popen or a forked Process), failing if it runs past `timeout`."""
    if isinstance(proc, subprocess.Popen):
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{what}: still running after {timeout:.0f} s") from None
    proc.join(timeout)
    assert proc.exitcode is not None, f"{what}: still running after {timeout:.0f} s"
    return proc.exitcode


def session_processes(session: int) -> list:
    """Live (not zombie) processes of `session`, by /proc/PID/stat."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[3]) == session:
                found.append(int(stat.parent.name))
    return found


def kill_all() -> list:
    """SIGKILL every process started since the last call that is still running, with its whole session, and
    reap it; returns the pids of the sessions that still had processes (a test that ends normally has none).
    A session's id is never reused while a process of it lives, so a finished one is only killed if some
    process of it (an orphaned worker) still runs."""
    left = []
    while _STARTED:
        pid, proc = _STARTED.pop()
        reaped = (proc.returncode if isinstance(proc, subprocess.Popen) else proc.exitcode) is not None
        running = session_processes(pid)
        if running or not reaped:
            left.append(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            for straggler in running:  # a process of the session in a group of its own
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(straggler, signal.SIGKILL)
        with contextlib.suppress(Exception):
            finish(proc, timeout=30)
        deadline = time.monotonic() + 30
        while session_processes(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return left


def run_ranks(function, args: tuple, nprocs: int, *, timeout: float = DEADLINE) -> None:
    """`torch.multiprocessing.start_processes(function, args, nprocs, start_method="fork")` with a deadline: a
    rank that hangs (a collective some rank never reaches) is a failure, and every rank is killed after."""
    import torch.multiprocessing

    context = torch.multiprocessing.start_processes(function, args=args, nprocs=nprocs, start_method="fork",
                                                    join=False)
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=0.5):
            assert time.monotonic() < deadline, f"{nprocs} ranks of {function.__name__}: not done in {timeout:.0f} s"
    finally:
        for proc in context.processes:
            if proc.is_alive():
                proc.kill()
            proc.join(30)
