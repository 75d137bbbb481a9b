"""`PackingCollator`: a DataLoader `collate_fn` that packs a batch of variable-length stories into full rows.

The batch's stories become one stream `story0 SEP story1 SEP ...`, cut into rows of `block_size`, only the last
row padded. Two output modes:

    return_dict=False  (x, y) int64 tensors [rows, block_size] for minGPT/nanoGPT loops: the windows of
                       TinyStoriesDatasetPacked (block_size + 1 tokens at i * block_size); x padded with SEP,
                       y = -1 where there is no real next token.
    return_dict=True   {input_ids, labels, position_ids, document_ids} for Hugging Face models, which shift
                       labels themselves: labels = input_ids with -100 on padding; position_ids restart at 0
                       at each story and each row; document_ids number the batch's stories (-1 on padding).
"""
from collections.abc import Mapping

import numpy as np

from ..errors import TinyStoriesError, check_int
from ..utils.extras import require

torch = require("torch", extra="torch", needed_by=__name__)

HF_IGNORE_INDEX = -100  # transformers' loss ignores label -100
MINGPT_IGNORE_INDEX = -1  # minGPT's cross_entropy(..., ignore_index=-1)


class PackingCollator:
    """Pack stories (`{"input_ids": ids}` rows of a prepared split, or plain id sequences) into rows.

    `tokenizer`: the prepared folder's `TinyStoriesTokenizer`, its path, or None; it gives the defaults of
    `separator` (its `separator_id`: EOS, or BOS for a full vocabulary without an EOS) and `vocab_size`.
    `separator`: the id put after every story, an int >= 0 (required without `tokenizer`). `block_size`: tokens
    per row. `vocab_size` (optional): ids and separator must lie below it, so an id the model's embedding lacks
    is an error here rather than an index error inside the model. Each example is one
    story: a 1-D sequence, array or tensor of integer ids (a 2-D one, or floats, raise `TinyStoriesError`).
    Returns int64 tensors of shape `[rows, block_size]` (see the module docstring).

    Example:
        >>> collate = PackingCollator(separator=0, block_size=4, return_dict=True)
        >>> batch = collate([{"input_ids": [5, 6, 7]}, {"input_ids": [8, 9]}])
        >>> batch["input_ids"].tolist(), batch["position_ids"].tolist()
        ([[5, 6, 7, 0], [8, 9, 0, 0]], [[0, 1, 2, 3], [0, 1, 2, 0]])
        >>> batch["labels"].tolist()
        [[5, 6, 7, 0], [8, 9, 0, -100]]
    """

    def __init__(self, *, separator: int | None = None, block_size: int = 512, return_dict: bool = False,
                 vocab_size: int | None = None, tokenizer=None):
        if tokenizer is not None:
            from .models import _as_tokenizer

            tokenizer = _as_tokenizer(tokenizer)
            separator = tokenizer.separator_id if separator is None else separator
            vocab_size = tokenizer.vocab_size if vocab_size is None else vocab_size
        if separator is None:
            raise TinyStoriesError("PackingCollator needs separator= or tokenizer= (the prepared folder's "
                                   "tokenizer, whose separator_id it uses)")
        self.block_size = check_int("block_size", block_size, low=1)
        self.vocab_size = None if vocab_size is None else check_int("vocab_size", vocab_size, low=1)
        self.separator = check_int("separator", separator, low=0)
        if self.vocab_size is not None and self.separator >= self.vocab_size:
            raise TinyStoriesError(f"separator={separator} is not an id of the {self.vocab_size}-id vocabulary "
                                   "(use tokenizer.eos_id)")
        self.return_dict = return_dict

    def __call__(self, examples):
        stories = [self._story(k, e["input_ids"] if isinstance(e, Mapping) else e) for k, e in enumerate(examples)]
        if not stories:
            raise TinyStoriesError("PackingCollator got an empty batch")
        separator = np.array([self.separator], dtype=np.int64)
        stream = np.concatenate([piece for story in stories for piece in (story, separator)])
        if self.return_dict:
            return self._dict(stream, np.array([len(s) + 1 for s in stories]))
        return self._windows(stream)

    def _story(self, k: int, ids) -> np.ndarray:
        """Example `k` as a 1-D int64 array, checked: one story of integer ids in the vocabulary."""
        array = np.asarray(ids)
        if array.ndim != 1:
            raise TinyStoriesError(f"example {k} of the batch has shape {array.shape}: each example is one story, "
                                   "a 1-D sequence of token ids")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise TinyStoriesError(f"example {k} of the batch holds {array.dtype} values, not integer token ids")
        array = array.astype(np.int64, copy=False)
        if array.size and (array.min() < 0 or (self.vocab_size is not None and array.max() >= self.vocab_size)):
            bad = array[(array < 0) | (array >= (self.vocab_size or np.iinfo(np.int64).max))][0]
            raise TinyStoriesError(f"example {k} of the batch holds token id {bad}, outside [0, "
                                   f"{self.vocab_size or 'vocab_size'})")
        return array

    def _windows(self, stream: np.ndarray):
        block, size = self.block_size, len(stream)
        rows = max(1, -(-(size - 1) // block))
        padded = np.full(rows * block + 1, self.separator, dtype=np.int64)
        padded[:size] = stream
        targets = padded[1:].copy()
        targets[size - 1:] = MINGPT_IGNORE_INDEX
        return torch.from_numpy(padded[:-1].reshape(rows, block).copy()), torch.from_numpy(targets.reshape(rows, block))

    def _dict(self, stream: np.ndarray, lengths: np.ndarray) -> dict:
        block, size = self.block_size, len(stream)
        rows = -(-size // block)
        input_ids = np.full(rows * block, self.separator, dtype=np.int64)
        input_ids[:size] = stream
        labels = input_ids.copy()
        labels[size:] = HF_IGNORE_INDEX
        document_ids = np.full(rows * block, -1, dtype=np.int64)
        document_ids[:size] = np.repeat(np.arange(len(lengths)), lengths)
        # A segment starts at each row start and wherever the story (or padding) changes.
        position = np.arange(rows * block)
        starts = (position % block == 0) | (document_ids != np.roll(document_ids, 1))
        position_ids = position - np.maximum.accumulate(np.where(starts, position, 0))
        return {name: torch.from_numpy(array.reshape(rows, block)) for name, array in
                (("input_ids", input_ids), ("labels", labels), ("position_ids", position_ids),
                 ("document_ids", document_ids))}
