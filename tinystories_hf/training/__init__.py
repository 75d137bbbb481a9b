"""Where the data's path ends in training (needs torch, the `[torch]` extra). Takes a prepared folder; gives
PyTorch datasets over its memory-mapped Arrow tables (`adapters.py`: per story, packed blocks), a packing
collator for the Hugging Face Trainer (`collator.py`), a resumable elastic sampler (`sampler.py`), the
paper's GPT-Neo configurations (`models.py`); gives a trained model (`trainer.py`, tinystories-train, checkpoints
in `checkpoint.py`) and a backdoor measured on it (`evaluate.py`, tinystories-backdoor-eval). Imported on first use, so the rest of the package needs no torch.
"""
import importlib

_NAMES = {"TinyStoriesDataset": "adapters", "TinyStoriesDatasetPacked": "adapters", "open_split": "adapters",
          "distributed_rank": "adapters", "TinyStoriesSampler": "sampler", "PackingCollator": "collator",
          "gpt_neo_config": "models", "paper_configs": "models", "parameter_count": "models",
          "TrainConfig": "options", "BackdoorEvalConfig": "options", "train": "trainer",
          "backdoor_eval": "evaluate"}
__all__ = [
    "BackdoorEvalConfig",
    "PackingCollator",
    "TinyStoriesDataset",
    "TinyStoriesDatasetPacked",
    "TinyStoriesSampler",
    "TrainConfig",
    "backdoor_eval",
    "distributed_rank",
    "gpt_neo_config",
    "open_split",
    "paper_configs",
    "parameter_count",
    "train",
]


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
