"""The console scripts' entry points (setup.cfg): each imports its command's module, then runs its `main`.

Importing the command takes seconds (datasets, transformers, pyarrow). Ctrl-C or SIGTERM in that time gave a
KeyboardInterrupt traceback, or ended the process with -15 and no line; here they give the one line every
command prints when it is stopped, `interrupted while tinystories-prepare was starting; nothing was written`,
and exit 130 / 143. A module of its own outside the package, because importing anything inside `tinystories_hf`
first runs the package's `__init__`, which imports those libraries. The command's own handlers
(`supervision.cli_errors`) take over from this one once it runs.
"""
import importlib
import signal
import sys

COMMANDS = {"tinystories-prepare": "tinystories_hf.pipeline", "tinystories-report": "tinystories_hf.report.write",
            "tinystories-validate": "tinystories_hf.store.validate", "tinystories-stream": "tinystories_hf.stream",
            "tinystories-push": "tinystories_hf.hub.push",
            "tinystories-train-tokenizer": "tinystories_hf.vocabulary.train_tokenizer",
            "tinystories-export": "tinystories_hf.exports",
            "tinystories-train": "tinystories_hf.training.commands:train_main",
            "tinystories-backdoor-eval": "tinystories_hf.training.commands:backdoor_eval_main"}
# A command's first step, run before its module (and datasets) is imported: an exit code when it finished the
# command (an output folder already up to date), None when the command has to run.
FIRST_STEPS = {"tinystories-prepare": "tinystories_hf.store.uptodate:answer_if_up_to_date"}


class TerminatedWhileStarting(KeyboardInterrupt):
    """SIGTERM while the command imports its modules."""


def _on_sigterm(signum, frame):
    raise TerminatedWhileStarting()


_on_sigterm.tinystories_hf_startup = True  # supervision replaces it with the command's own handler


def run(command: str, argv=None) -> int:
    """Import `command`'s module and return its `main(argv)`; 130 / 143 with one line if stopped meanwhile."""
    mine = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # else the caller's own handler: keep it
    if mine:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            first_step = _function(FIRST_STEPS[command]) if command in FIRST_STEPS else None
            answered = None if first_step is None else first_step(argv)  # Ctrl-C in it: its own one line
            if answered is not None:
                return answered
            main = _function(COMMANDS[command])
        except KeyboardInterrupt as e:
            terminated = isinstance(e, TerminatedWhileStarting)
            print(f"{'terminated' if terminated else 'interrupted'} while {command} was starting; nothing was "
                  "written", file=sys.stderr)
            return 143 if terminated else 130
        return main(argv)
    finally:
        if mine:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _function(target: str):
    """The function `module:function` (`main` when no function is named) names, its module imported."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function or "main")


def prepare(argv=None) -> int:
    return run("tinystories-prepare", argv)


def report(argv=None) -> int:
    return run("tinystories-report", argv)


def validate(argv=None) -> int:
    return run("tinystories-validate", argv)


def stream(argv=None) -> int:
    return run("tinystories-stream", argv)


def push(argv=None) -> int:
    return run("tinystories-push", argv)


def train_tokenizer(argv=None) -> int:
    return run("tinystories-train-tokenizer", argv)


def export(argv=None) -> int:
    return run("tinystories-export", argv)


def train(argv=None) -> int:
    return run("tinystories-train", argv)


def backdoor_eval(argv=None) -> int:
    return run("tinystories-backdoor-eval", argv)
