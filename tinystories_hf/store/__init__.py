"""Stage 4 of the data's path: store. Takes the tokenized splits and the vocabulary; gives a prepared folder
(`save_to_disk` splits, `tokenizer/`, `prepare_info.json`, written whole: `folder.py`), reads it back in either
layout after checking every file (`load.py`), and validates it end to end (`validate.py`); `uptodate.py` says,
without importing datasets, whether a folder already holds what a prepare would write.

Its public names are imported on first use: `store.uptodate` runs before datasets is imported.
"""
import importlib

from .._moved import forward

_HOMES = {"load_prepared": "load", "read_prepared": "load", "save_prepared": "folder",
          "validate_prepared": "validate"}
__all__ = ["load_prepared", "read_prepared", "save_prepared", "validate_prepared"]  # _HOMES's keys
_old_names = forward(__name__)  # the names of the 0.1 module tinystories_hf.store


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    return _old_names(name)
