"""Ctrl-C and SIGTERM at the moments issue 29 (item 5) found without their one line: while a command imports its
modules, while sentencepiece reads its sample, while export reads the prepared folder. Each is a real signal sent
to a real process at a moment the process itself marks (a handler installed, a marker file written)."""
import configparser
import signal
import sys
import time
from pathlib import Path

import processes
import pytest
from conftest import REPO, SAMPLE_JSONL

from tinystories_hf import PrepareConfig, prepare

CODES = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGTERM (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _stopped(argv, signum, ready, tmp_path) -> tuple:
    """Run `argv`, send `signum` once `ready(proc)` holds, return (exit code, stderr lines)."""
    err = tmp_path / f"stderr-{time.monotonic_ns()}"
    with err.open("w") as stderr:
        proc = processes.popen(argv, cwd=REPO, stdout=stderr, stderr=stderr)
    processes.wait_until(lambda: ready(proc), what="the moment to send the signal", alive=lambda: proc.poll() is None,
                         log=err)
    proc.send_signal(signum)
    code = processes.finish(proc)
    return code, [line for line in err.read_text().splitlines() if line.strip()]


def _console_scripts() -> dict:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return {name.strip(): target.strip() for name, target in (line.split("=") for line in lines)}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("command", ["tinystories-prepare", "tinystories-export", "tinystories-train-tokenizer",
                                     "tinystories-train"])
def test_a_signal_while_a_command_imports_its_modules_is_one_line(command, signum, tmp_path):
    """What the console script of setup.cfg runs: a SIGTERM handler of its own is installed before the package's
    imports, which take seconds; the signal comes as soon as it is."""
    module, function = _console_scripts()[command].split(":")
    argv = [sys.executable, "-c", f"import sys, importlib; sys.exit(importlib.import_module({module!r}).{function}())",
            "--help"]
    code, lines = _stopped(argv, signum, lambda proc: _handles_sigterm(proc.pid), tmp_path)
    line = f"{CODES[signum][1]} while {command} was starting; nothing was written"
    assert (code, lines) == (CODES[signum][0], [line])


SLOW_READING = """
import pathlib, sys, time
import tinystories_hf.vocabulary.train_tokenizer as trainer  # the module (the package exports a function too)
trainer = sys.modules["tinystories_hf.vocabulary.train_tokenizer"]
read = trainer.llama2c_lines
def slow(batches):
    for line in read(batches):
        pathlib.Path(sys.argv[1]).touch()
        time.sleep(0.01)
        yield line
trainer.llama2c_lines = slow
sys.exit(trainer.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_sentencepiece_reads_its_sample_is_the_interrupted_line(signum, tmp_path):
    """sentencepiece calls the sample iterator from C++: a KeyboardInterrupt raised in it came back as
    `RuntimeError: INTERNAL` (exit 2). Now the trainer runs in a thread and the main thread takes the signal."""
    out, marker = tmp_path / "tok", tmp_path / "reading"
    argv = [sys.executable, "-c", SLOW_READING, str(marker), "--source", str(SAMPLE_JSONL), "--output", str(out),
            "--model", "sentencepiece", "--vocab-size", "600", "--num-proc", "1"]
    code, lines = _stopped(argv, signum, lambda proc: marker.exists(), tmp_path)
    assert code == CODES[signum][0], lines[-5:]
    assert lines[-1].endswith(f"{CODES[signum][1]}; {out} unchanged")  # after the progress bar's last draw
    assert not any("Traceback" in line or "INTERNAL" in line for line in lines)
    assert not out.exists() and not list(tmp_path.glob(".tok.partial*"))


SLOW_SNAPSHOT = """
import pathlib, sys, time
import tinystories_hf.exports
exports = sys.modules["tinystories_hf.exports"]
read = exports.read_snapshot
def slow(path):
    pathlib.Path(sys.argv[1]).touch()
    time.sleep(60)
    return read(path)
exports.read_snapshot = slow
sys.exit(exports.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_export_reads_the_folder_names_what_was_interrupted(signum, tmp_path):
    folder = prepare(PrepareConfig(source="demo", output=str(tmp_path / "p"), vocab_size=500, num_proc=1)).output
    marker = tmp_path / "reading"
    argv = [sys.executable, "-c", SLOW_SNAPSHOT, str(marker), str(folder), "--format", "nanogpt", "--output",
            str(tmp_path / "out")]
    code, lines = _stopped(argv, signum, lambda proc: marker.exists(), tmp_path)
    assert (code, lines[-1]) == (CODES[signum][0], f"{CODES[signum][1]} while reading {folder}; nothing was written")
    assert not (tmp_path / "out").exists()
