"""Where the data's path reaches the Hugging Face Hub. Takes a prepared folder; gives a dataset repository
(parquet shards, the tokenizer, `prepare_info.json` and a dataset card), pushed or written to a local folder
(`push.py`). Reading it back is the store's (`store/load.py`).
"""
from .._moved import forward
from .push import PushConfig, push_prepared, write_hub_folder

__all__ = ["PushConfig", "push_prepared", "write_hub_folder"]
__getattr__ = forward(__name__)  # the names of the 0.1 module tinystories_hf.hub
