"""tinystories-hf: TinyStories as training-ready, reduced-vocabulary token datasets, the datasets way.

One folder per stage of the data's path, imports pointing one way along it (docs/architecture.md):
sources -> vocabulary -> tokenize -> store -> training / exports / hub / report; `pipeline.py` (prepare) runs
the stages into a folder, `stream.py` the same passes lazily; errors.py, supervision.py, config.py and utils/
serve every stage. Everything but the training side works without torch; `training/` needs the `[torch]`
extra and is imported on first use.
"""
import importlib
import importlib.util

from . import _moved, training
from .config import PrepareConfig
from .errors import TinyStoriesError
from .exports import ExportConfig, export
from .hub import push_prepared, write_hub_folder
from .pipeline import PrepareResult, prepare
from .report import write_report
from .sources import load_stories
from .store import load_prepared, validate_prepared
from .stream import StreamConfig, stream
from .utils.extras import MissingExtraError
from .vocabulary import TinyStoriesTokenizer, TrainTokenizerConfig, load_base_tokenizer, train_tokenizer

_moved.install()  # the 0.1 import paths (tinystories_hf.vocab, .adapters, ...) for one release

__version__ = "0.1.0"

# The training side needs torch (the [torch] extra; a 3 s import): loaded on first use (training/__init__.py), so
# the CLIs start fast and the rest of the package works without torch; without it, one MissingExtraError line.
__all__ = ["ExportConfig", "MissingExtraError", "PrepareConfig", "PrepareResult", "StreamConfig", "TinyStoriesError",
           "TinyStoriesTokenizer", "TrainTokenizerConfig", "export", "load_base_tokenizer", "load_prepared",
           "load_stories", "prepare", "push_prepared", "stream", "train_tokenizer", "validate_prepared",
           "write_hub_folder", "write_report"]
# `from tinystories_hf import *` imports every name of __all__: the training names only where torch is installed.
if importlib.util.find_spec("torch") is not None:
    __all__ += training.__all__


def __getattr__(name):
    if name in training.__all__:
        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(training.__all__))
