"""tinystories-hf: TinyStories as training-ready, reduced-vocabulary token datasets, the datasets way.

One folder per stage of the data's path, imports pointing one way along it (docs/architecture.md):
sources -> vocabulary -> tokenize -> store -> training / exports / hub / report; `pipeline.py` (prepare) runs
the stages into a folder, `stream.py` the same passes lazily; errors.py, supervision.py, config.py and utils/
serve every stage. Everything but the training side works without torch; `training/` needs the `[torch]`
extra and is imported on first use.

Every public name is imported on first use (PEP 562 `__getattr__`): `import tinystories_hf.config` (what a
command parses its options with) loads no datasets, pyarrow, tokenizers, numpy or torch, so a command that
finds nothing to do (`tinystories-prepare` into an up-to-date folder) answers in a fraction of a second.
"""
import importlib
import importlib.util
import sys
import types

from . import _moved, training

_moved.install()  # the 0.1 import paths (tinystories_hf.vocab, .adapters, ...) for one release

__version__ = "0.1.0"

# Public name -> the module defining it, imported on first access (datasets and pyarrow alone take a second).
_HOMES = {"PrepareConfig": "config", "TinyStoriesError": "errors", "ExportConfig": "exports", "export": "exports",
          "push_prepared": "hub", "write_hub_folder": "hub", "PrepareResult": "pipeline", "prepare": "pipeline",
          "write_report": "report", "load_stories": "sources", "load_prepared": "store",
          "validate_prepared": "store", "StreamConfig": "stream", "stream": "stream",
          "MissingExtraError": "utils.extras", "TinyStoriesTokenizer": "vocabulary",
          "TrainTokenizerConfig": "vocabulary", "load_base_tokenizer": "vocabulary",
          "train_tokenizer": "vocabulary"}

# The training side needs torch (the [torch] extra; a 3 s import): loaded on first use (training/__init__.py), so
# the CLIs start fast and the rest of the package works without torch; without it, one MissingExtraError line.
__all__ = ["ExportConfig", "MissingExtraError", "PrepareConfig", "PrepareResult", "StreamConfig", "TinyStoriesError",
           "TinyStoriesTokenizer", "TrainTokenizerConfig", "export", "load_base_tokenizer", "load_prepared",
           "load_stories", "prepare", "push_prepared", "stream", "train_tokenizer", "validate_prepared",
           "write_hub_folder", "write_report"]  # the keys of _HOMES (a test keeps them equal)
# `from tinystories_hf import *` imports every name of __all__: the training names only where torch is installed.
if importlib.util.find_spec("torch") is not None:
    __all__ += training.__all__


def __getattr__(name):
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
        globals()[name] = value  # once imported, a plain attribute: later reads skip this function
        return value
    if name in training.__all__:
        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """The package object: importing its submodule `stream` (the CLI does) must not replace the public function
    `tinystories_hf.stream` by the module of that name, as the import system does by setting the attribute
    once the submodule has run; an eager `from .stream import stream` used to rebind it after."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == name and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__():
    return sorted(set(globals()) | set(_HOMES) | set(training.__all__))
