"""tinystories-hf: TinyStories as training-ready, reduced-vocabulary token datasets, the datasets way.

The modules follow the data: sources -> vocab (train_tokenizer: a vocabulary trained on the stories) ->
tokenize -> store (-> adapters, export -> hub); stream runs the same passes lazily. Everything but the training side works without torch; the adapters, the collator
and the models need the `[torch]` extra and are imported on first use.
"""
import importlib
import importlib.util

from .base_tokenizer import load_base_tokenizer
from .config import PrepareConfig
from .errors import TinyStoriesError
from .exports import ExportConfig, export
from .extras import MissingExtraError
from .hub import push_prepared, write_hub_folder
from .pipeline import PrepareResult, prepare
from .report import write_report
from .sources import load_stories
from .store import load_prepared
from .stream import StreamConfig, stream
from .train_tokenizer import TrainTokenizerConfig, train_tokenizer
from .validate import validate_prepared
from .vocab import TinyStoriesTokenizer

__version__ = "0.1.0"

# The training side needs torch (the [torch] extra; a 3 s import): loaded on first use, so the CLIs start fast
# and the rest of the package works without torch. Without it, the import is one MissingExtraError line.
_TRAINING = {"TinyStoriesDataset": "adapters", "TinyStoriesDatasetPacked": "adapters", "open_split": "adapters",
             "distributed_rank": "adapters", "TinyStoriesSampler": "sampler", "PackingCollator": "collator",
             "gpt_neo_config": "models", "paper_configs": "models", "parameter_count": "models"}

__all__ = ["ExportConfig", "MissingExtraError", "PrepareConfig", "PrepareResult", "StreamConfig", "TinyStoriesError",
           "TinyStoriesTokenizer", "TrainTokenizerConfig", "export", "load_base_tokenizer", "load_prepared",
           "load_stories", "prepare", "push_prepared", "stream", "train_tokenizer", "validate_prepared",
           "write_hub_folder", "write_report"]
# `from tinystories_hf import *` imports every name of __all__: the training names only where torch is installed.
if importlib.util.find_spec("torch") is not None:
    __all__ += ["PackingCollator", "TinyStoriesDataset", "TinyStoriesDatasetPacked", "TinyStoriesSampler",
                "distributed_rank", "gpt_neo_config", "open_split", "paper_configs", "parameter_count"]

def __getattr__(name):
    if name in _TRAINING:
        return getattr(importlib.import_module(f".{_TRAINING[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_TRAINING))
