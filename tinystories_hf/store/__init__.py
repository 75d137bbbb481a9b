"""Stage 4 of the data's path: store. Takes the tokenized splits and the vocabulary; gives a prepared folder
(`save_to_disk` splits, `tokenizer/`, `prepare_info.json`, written whole: `folder.py`), reads it back in either
layout after checking every file (`load.py`), and validates it end to end (`validate.py`).
"""
from .._moved import forward
from .folder import save_prepared
from .load import load_prepared, read_prepared
from .validate import validate_prepared

__all__ = ["load_prepared", "read_prepared", "save_prepared", "validate_prepared"]
__getattr__ = forward(__name__)  # the names of the 0.1 module tinystories_hf.store
