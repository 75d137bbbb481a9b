"""tinystories-hf: TinyStories as training-ready, reduced-vocabulary token datasets, the datasets way.

The modules follow the data: sources -> vocab -> tokenize -> store (-> adapters -> hub); stream runs
the same passes lazily.
"""
from .base_tokenizer import load_base_tokenizer
from .config import PrepareConfig
from .errors import TinyStoriesError
from .hub import push_prepared, write_hub_folder
from .pipeline import PrepareResult, prepare
from .report import write_report
from .sources import load_stories
from .store import load_prepared
from .stream import StreamConfig, stream
from .validate import validate_prepared
from .vocab import TinyStoriesTokenizer

__version__ = "0.1.0"

# The training adapters need torch (a 3 s import): they load on first use, so the CLIs start fast.
_TRAINING = {"TinyStoriesDataset": "adapters", "TinyStoriesDatasetPacked": "adapters", "open_split": "adapters",
             "distributed_rank": "adapters", "TinyStoriesSampler": "sampler", "PackingCollator": "collator",
             "gpt_neo_config": "models", "paper_configs": "models", "parameter_count": "models"}

__all__ = ["PackingCollator", "PrepareConfig", "PrepareResult", "TinyStoriesDataset", "TinyStoriesDatasetPacked",
           "TinyStoriesError", "TinyStoriesSampler", "TinyStoriesTokenizer", "distributed_rank", "gpt_neo_config",
           "load_base_tokenizer", "load_prepared", "load_stories", "open_split", "paper_configs", "parameter_count",
           "prepare",
           "validate_prepared", "write_report"]


def __getattr__(name):
    if name in _TRAINING:
        import importlib

        return getattr(importlib.import_module(f".{_TRAINING[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
__all__ = ["PrepareConfig", "PrepareResult", "StreamConfig", "TinyStoriesError", "TinyStoriesTokenizer",
           "load_base_tokenizer", "load_prepared", "load_stories", "prepare", "push_prepared", "stream",
           "write_hub_folder"]
