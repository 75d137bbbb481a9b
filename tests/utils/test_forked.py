"""utils/forked.py: a function run in a forked process while the caller goes on; its failures come back as the
caller's own exceptions (JSON through a pipe, no pickle), and a run that ends first leaves no process behind."""
import errno
import os
import signal
import time

import pytest
from processes import wait_until

from tinystories_hf import TinyStoriesError
from tinystories_hf.supervision import DEAD_WORKER, api_errors, translate
from tinystories_hf.utils.forked import Forked


def _write_pid(path):
    path.write_text(str(os.getpid()))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_call_runs_in_another_process_and_wait_returns_its_seconds(tmp_path):
    started = time.perf_counter()
    job = Forked(lambda: (time.sleep(0.3), _write_pid(tmp_path / "pid")))
    seconds = job.wait()
    assert int((tmp_path / "pid").read_text()) != os.getpid()
    assert 0.3 <= seconds <= time.perf_counter() - started


def _raise(error):
    raise error


@pytest.mark.parametrize("error, expected_type, check", [
    (TinyStoriesError("row 7 is bad; fix it"), TinyStoriesError, lambda e: str(e) == "row 7 is bad; fix it"),
    (OSError(errno.ENOSPC, "No space left on device", "/cache/tmp123"), OSError,
     lambda e: (e.errno, e.strerror, e.filename) == (errno.ENOSPC, "No space left on device", "/cache/tmp123")),
    (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), OSError,
     lambda e: (e.errno, e.filename, e.filename2) == (errno.EXDEV, "/a", "/b")),
    (OSError(errno.ENOSPC, "No space left on device", b"/cache/caf\xc3\xa9"), OSError,  # a bytes file name
     lambda e: (e.errno, e.filename) == (errno.ENOSPC, "/cache/café")),
    (MemoryError(), MemoryError, lambda e: True),
    (ZeroDivisionError("a bug"), RuntimeError, lambda e: "ZeroDivisionError: a bug" in str(e)
     and "Traceback" in str(e)),
])
def test_what_the_child_raises_the_caller_raises(error, expected_type, check):
    job = Forked(_raise, error)
    with pytest.raises(expected_type) as raised:
        job.wait()
    assert type(raised.value) is expected_type and check(raised.value)


def test_an_os_fault_in_the_child_is_the_same_line_as_in_this_process():
    fault = OSError(errno.EROFS, "Read-only file system", "/mnt/ro/cache/tmpx")
    job = Forked(_raise, fault)
    with pytest.raises(OSError) as raised:
        job.wait()
    assert str(translate(raised.value)) == str(translate(fault)) == \
        "/mnt/ro/cache/tmpx: read-only file system; use a writable filesystem"


def test_a_killed_child_is_the_killed_worker_line():
    job = Forked(lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(RuntimeError) as raised:
        job.wait()
    assert str(raised.value).startswith(DEAD_WORKER) and "exit code -9" in str(raised.value)
    assert str(translate(raised.value)).startswith("a worker process was killed (by the system's out-of-memory "
                                                   "killer, or a signal)")


def test_a_run_that_ends_before_wait_kills_the_child(tmp_path):
    @api_errors
    def run():
        Forked(lambda: (_write_pid(tmp_path / "pid"), time.sleep(600)))
        wait_until((tmp_path / "pid").exists, what="the child's start")
        raise TinyStoriesError("the run failed before waiting")

    with pytest.raises(TinyStoriesError, match="before waiting"):
        run()
    assert not _alive(int((tmp_path / "pid").read_text()))  # killed and reaped when the run ended


def test_cancel_kills_a_running_child_and_is_idempotent(tmp_path):
    job = Forked(lambda: (_write_pid(tmp_path / "pid"), time.sleep(600)))
    wait_until((tmp_path / "pid").exists, what="the child's start")
    job.cancel()
    assert not _alive(int((tmp_path / "pid").read_text()))
    job.cancel()
    done = Forked(lambda: None)
    assert done.wait() >= 0
    done.cancel()  # after wait: nothing to kill
