"""tinystories-hf: TinyStories as training-ready, reduced-vocabulary token datasets, the datasets way.

The modules follow the data: sources -> vocab -> tokenize -> store (-> adapters -> hub); stream runs
the same passes lazily.
"""
from .base_tokenizer import load_base_tokenizer
from .config import PrepareConfig
from .errors import TinyStoriesError
from .hub import push_prepared, write_hub_folder
from .prepare import PrepareResult, prepare
from .sources import load_stories
from .store import load_prepared
from .stream import StreamConfig, stream
from .vocab import TinyStoriesTokenizer

__version__ = "0.1.0"

__all__ = ["PrepareConfig", "PrepareResult", "StreamConfig", "TinyStoriesError", "TinyStoriesTokenizer",
           "load_base_tokenizer", "load_prepared", "load_stories", "prepare", "push_prepared", "stream",
           "write_hub_folder"]
