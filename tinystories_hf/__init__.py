"""tinystories-hf: TinyStories as training-ready, reduced-vocabulary token datasets, the datasets way.

The modules follow the data: sources -> vocab -> tokenize -> store (-> adapters -> hub).
"""
from .base_tokenizer import load_base_tokenizer
from .config import PrepareConfig
from .errors import TinyStoriesError
from .prepare import PrepareResult, prepare
from .report import write_report
from .sources import load_stories
from .store import load_prepared
from .validate import validate_prepared
from .vocab import TinyStoriesTokenizer

__version__ = "0.1.0"

__all__ = ["PrepareConfig", "PrepareResult", "TinyStoriesError", "TinyStoriesTokenizer", "load_base_tokenizer",
           "load_prepared", "load_stories", "prepare", "validate_prepared", "write_report"]
