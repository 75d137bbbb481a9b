"""Stage 3 of the data's path: tokenize. Takes the stories (`sources`) and the vocabulary; gives each split's
`input_ids` and `length` columns, by batched `datasets.map` passes over Arrow tables (`passes.py`: encode to
base ids, check a sample against the reference encoder, remap to the vocabulary's ids, truncate and filter).
A backdoored prepare adds one stage between them (`backdoor/`: the trigger match, the rewrites, the provenance
columns `source_row`/`backdoor` and the paired `backdoor_eval` prompts; `backdoor/plant.py` is what the pipeline
calls).
"""
from .._moved import forward
from .passes import encode_split, reduce_split, reduced_features

__all__ = ["encode_split", "reduce_split", "reduced_features"]
__getattr__ = forward(__name__)  # the names of the 0.1 module tinystories_hf.tokenize
