"""Training (stage 5): adapters. A prepared split as a PyTorch dataset that minGPT's `Trainer`, nanoGPT-style
loops and any `DataLoader` use as it is:

    TinyStoriesDataset        one story per item
    TinyStoriesDatasetPacked  all stories as one stream "story0 SEP story1 SEP ...", cut into windows

Every item is a pair `(x, y)` of int64 tensors of exactly `block_size` tokens, `y[t]` the token after `x[t]`;
`x` is padded with the separator and `y` is -1 (minGPT's `ignore_index`) wherever there is no real next token,
so the default collate stacks any batch. The separator is the folder's: its tokenizer's `separator_id` (EOS,
or BOS for a full vocabulary without an EOS), never an assumed id 0. Token ids are read through zero-copy numpy views of the memory-mapped
Arrow buffers: building a dataset reads the per-story offsets only, and forked DataLoader workers share the
mapped pages instead of copying stories. Both have minGPT's `get_vocab_size()` / `get_block_size()` and
`shard()` for `torch.distributed` (each rank a disjoint, complete share).
"""
import copy
import operator
import os
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa

from ..errors import TinyStoriesError, check_int
from ..store.folder import TOKENIZER_DIR
from ..store.load import load_prepared
from ..utils.extras import require
from ..vocabulary.saved import VOCAB_FILE
from ..vocabulary.tokenizer import TinyStoriesTokenizer

torch = require("torch", extra="torch", needed_by=__name__)

IGNORE_INDEX = -1  # minGPT's cross_entropy(..., ignore_index=-1)


def _load_tokenizer(tokenizer, dataset: datasets.Dataset) -> TinyStoriesTokenizer:
    """The tokenizer given (object or folder), else the one saved beside the folder the dataset was loaded from."""
    if isinstance(tokenizer, TinyStoriesTokenizer):
        return tokenizer
    if tokenizer is not None:
        return TinyStoriesTokenizer.from_pretrained(tokenizer)
    # load_from_disk(DIR)[split] maps DIR/split/data-*.arrow: DIR/tokenizer sits two levels up.
    for cache_file in dataset.cache_files:
        folder = Path(cache_file["filename"]).parent.parent
        if (folder / TOKENIZER_DIR / VOCAB_FILE).exists():
            return TinyStoriesTokenizer.from_pretrained(folder / TOKENIZER_DIR)
    raise TinyStoriesError("cannot tell the vocabulary of this dataset (it was not loaded from a prepared folder); "
                           "pass tokenizer=TinyStoriesTokenizer.from_pretrained(DIR) or the folder path as source")


def open_split(source, *, split: str = "train", tokenizer=None):
    """`(datasets.Dataset, TinyStoriesTokenizer)` for a prepared folder (or Hub id), a `DatasetDict` or a `Dataset`.

    Raises `TinyStoriesError` for another kind of source, a split it lacks, a dataset without `input_ids`, or a
    `Dataset` whose tokenizer cannot be found beside its files and is not given (`tokenizer=`).

    Example:
        >>> dataset, tokenizer = open_split("tinystories_prepared", split="validation")  # doctest: +SKIP
    """
    if isinstance(source, (str, os.PathLike)):
        dataset_dict, saved_tokenizer = load_prepared(os.fspath(source))
        tokenizer = saved_tokenizer if tokenizer is None else tokenizer
    elif isinstance(source, (datasets.DatasetDict, datasets.Dataset)):
        dataset_dict = source
    else:
        raise TinyStoriesError(f"source must be a prepared folder, a Hub dataset id, a DatasetDict or a Dataset, "
                               f"not {type(source).__name__}")
    if isinstance(dataset_dict, datasets.DatasetDict):
        if split not in dataset_dict:
            raise TinyStoriesError(f"split {split!r} not found; choose one of {sorted(dataset_dict)}")
        dataset = dataset_dict[split]
    else:
        dataset = dataset_dict
    if "input_ids" not in dataset.column_names:
        raise TinyStoriesError(f"the dataset has no 'input_ids' column (columns: {dataset.column_names}); "
                               "pass the output of tinystories-prepare")
    return dataset, _load_tokenizer(tokenizer, dataset)


class StoryTable:
    """Story `k` of a `datasets.Dataset` as a zero-copy numpy view of its `input_ids` Arrow buffer.

    Example:
        >>> table = StoryTable(load_prepared("tinystories_prepared")[0]["train"])  # doctest: +SKIP
        >>> table.num_stories, table.story(0).dtype  # doctest: +SKIP
        (2119719, dtype('uint16'))
    """

    def __init__(self, dataset: datasets.Dataset):
        column = dataset.data.column("input_ids")
        kind = column.type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not pa.types.is_integer(kind.value_type):
            raise TinyStoriesError(f"'input_ids' holds {kind}, not lists of integer token ids")
        if column.null_count:
            raise TinyStoriesError(f"'input_ids' has {column.null_count} missing rows; drop them before training")
        chunks = [chunk for chunk in column.chunks if len(chunk)]
        # chunk.values is the whole values buffer and chunk.offsets index into it, also for sliced chunks.
        self.values = [chunk.values.to_numpy(zero_copy_only=True) for chunk in chunks]
        self.offsets = [chunk.offsets.to_numpy(zero_copy_only=True) for chunk in chunks]
        self.first_rows = np.cumsum([0] + [len(chunk) for chunk in chunks[:-1]], dtype=np.int64)
        # select/shuffle/filter keep the table and add an indices mapping: item k is table row order[k].
        indices = dataset._indices
        self.order = None if indices is None else indices.column("indices").to_numpy()
        self.num_stories = dataset.num_rows

    def story(self, k: int) -> np.ndarray:
        """The token ids of item `k` (a read-only view: copy before writing)."""
        row = k if self.order is None else int(self.order[k])
        chunk = int(np.searchsorted(self.first_rows, row, side="right")) - 1 if len(self.first_rows) > 1 else 0
        offsets, row = self.offsets[chunk], row - int(self.first_rows[chunk])
        return self.values[chunk][offsets[row]:offsets[row + 1]]

    def lengths(self) -> np.ndarray:
        """Tokens of every story, in item order (int64)."""
        lengths = np.concatenate([np.diff(o).astype(np.int64) for o in self.offsets] or [np.zeros(0, np.int64)])
        return lengths if self.order is None else lengths[self.order]


def distributed_rank(rank=None, world_size=None) -> tuple:
    """`(rank, world_size)`: the ones given, else those of the initialised `torch.distributed` process group.

    Example:
        >>> distributed_rank(rank=1, world_size=4)
        (1, 4)
    """
    if rank is None and world_size is None:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            raise TinyStoriesError("torch.distributed is not initialised: call init_process_group() first, "
                                   "or pass rank= and world_size=")
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    if rank is None or world_size is None:
        raise TinyStoriesError(f"rank={rank}, world_size={world_size}: pass both, with 0 <= rank < world_size")
    world_size = check_int("world_size", world_size, low=1)
    return check_int("rank", rank, low=0, high=world_size - 1), world_size


class _TokenDataset(torch.utils.data.Dataset):
    """What both datasets share: source, vocabulary, length, indexing, sharding, pickling for spawned workers."""

    def __init__(self, source, *, split: str, block_size: int, tokenizer):
        block_size = check_int("block_size", block_size, low=1)
        self.dataset, self.tokenizer = open_split(source, split=split, tokenizer=tokenizer)
        self.split, self.block_size = split, block_size
        self.eos_id = self.tokenizer.separator_id  # the id between stories: EOS, or BOS where there is no EOS
        self.stories = StoryTable(self.dataset)
        self._start, self._stop = 0, self._index_items()
        self.sharded_over = 1  # ranks whose shard() this is
        if self._stop == 0:
            raise TinyStoriesError(f"split {split!r} has too few tokens for one item of block_size {block_size}")

    def get_vocab_size(self) -> int:
        """Ids in the vocabulary (EOS and UNK included): a model's embedding rows, as minGPT asks."""
        return self.tokenizer.vocab_size

    def get_block_size(self) -> int:
        """Tokens in each `x` and `y`: the context length a model needs, as minGPT asks."""
        return self.block_size

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, index):
        size = len(self)
        index = operator.index(index)  # an int or numpy integer, as a list takes; 1.5 is a TypeError, not item 1
        if not -size <= index < size:
            raise IndexError(f"index {index} out of range for {size} items")
        return self._item(self._start + index % size)

    def shard(self, *, rank=None, world_size=None):
        """This rank's contiguous share of the items; the shares of all ranks are disjoint and cover every item.

        Sizes differ by at most one item. Defaults come from the initialised `torch.distributed` group.

        Example:
            >>> train = TinyStoriesDatasetPacked("tinystories_prepared").shard()  # doctest: +SKIP
        """
        rank, world_size = distributed_rank(rank, world_size)
        size = len(self)
        share = copy.copy(self)
        share._start = self._start + rank * size // world_size
        share._stop = self._start + (rank + 1) * size // world_size
        share.sharded_over = world_size * self.sharded_over  # a sampler that splits again would drop items
        return share

    def __getstate__(self):
        # Spawned/forkserver workers get the dataset pickled: send the (memory-mapped, so cheap) Dataset and
        # rebuild the views there, instead of copying every story the views point at.
        state = dict(self.__dict__)
        del state["stories"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.stories = StoryTable(self.dataset)


class TinyStoriesDataset(_TokenDataset):
    """One story per item: `x` = the story's first `block_size` tokens, `y` = `x` shifted by one.

    EOS (the folder's separator) is appended after the story when it fits (`add_eos`), so the model learns to
    end stories; `x` is padded with it and `y` with -1. Tokens past `block_size + 1` are not seen (use the packed dataset to
    train on every token). `source`: a prepared folder or Hub id, a `DatasetDict`, or a `Dataset`;
    `tokenizer` (object or folder) is only needed when the dataset was not loaded from a prepared folder.
    Items: `(x, y)`, int64 tensors of shape `[block_size]`. Raises `TinyStoriesError` for a `block_size` that
    is not an integer >= 1 and for the sources `open_split` refuses; `IndexError` past the last item.

    Example:
        >>> train = TinyStoriesDataset("tinystories_prepared", split="train", block_size=512)  # doctest: +SKIP
        >>> x, y = train[0]; x.shape, y.shape, train.get_vocab_size()  # doctest: +SKIP
        (torch.Size([512]), torch.Size([512]), 10000)
    """

    def __init__(self, source, *, split: str = "train", block_size: int = 512, add_eos: bool = True,
                 tokenizer=None):
        self.add_eos = add_eos
        super().__init__(source, split=split, block_size=block_size, tokenizer=tokenizer)

    def _index_items(self) -> int:
        return self.stories.num_stories

    def _item(self, k: int):
        ids = self.stories.story(k)[: self.block_size + 1]
        n, block = len(ids), self.block_size
        x = np.full(block, self.eos_id, dtype=np.int64)
        y = np.full(block, IGNORE_INDEX, dtype=np.int64)
        x[: min(n, block)] = ids[:block]
        if n > 1:
            y[: n - 1] = ids[1:]
        if self.add_eos and 0 < n <= block:
            y[n - 1] = self.eos_id
        return torch.from_numpy(x), torch.from_numpy(y)


class TinyStoriesDatasetPacked(_TokenDataset):
    """All stories as one stream `story0 SEP story1 SEP ...`; item `i` is the window of `block_size + 1`
    tokens starting at `i * block_size`, split into `x` (first `block_size`) and `y` (last `block_size`).

    Every token is a target exactly once. Access is O(log stories): a `searchsorted` over cumulative story
    lengths finds the first story of the window, then 2-3 story views are concatenated. The tail of the
    stream that does not fill a whole window is dropped. `separator` defaults to the folder's separator
    (`tokenizer.separator_id`: EOS, or BOS for a full vocabulary without an EOS).
    Items: `(x, y)`, int64 tensors of shape `[block_size]`. Raises `TinyStoriesError` for a `block_size` that is
    not an integer >= 1, a separator outside the vocabulary, a split with fewer than `block_size + 1` tokens
    (stories and separators together), and the sources `open_split` refuses.

    Example:
        >>> train = TinyStoriesDatasetPacked("tinystories_prepared", split="train", block_size=512)  # doctest: +SKIP
        >>> x, y = train[0]; bool((x[1:] == y[:-1]).all())  # doctest: +SKIP
        True
    """

    def __init__(self, source, *, split: str = "train", block_size: int = 512, separator=None, tokenizer=None):
        self.separator = separator
        super().__init__(source, split=split, block_size=block_size, tokenizer=tokenizer)
        self.separator = self.eos_id if self.separator is None else check_int("separator", self.separator)
        if not 0 <= self.separator < self.get_vocab_size():
            raise TinyStoriesError(f"separator {self.separator} is not an id of the {self.get_vocab_size()}-id vocabulary")
        self._separator = np.array([self.separator], dtype=np.int64)

    def _index_items(self) -> int:
        """Cumulative story lengths, from which `_item` finds a window's first story; returns the item count."""
        # separator_at[k]: stream position of the separator closing story k (8 bytes per story, nothing else).
        self.separator_at = np.cumsum(self.stories.lengths() + 1) - 1
        stream = int(self.separator_at[-1]) + 1 if len(self.separator_at) else 0
        return max(0, (stream - 1) // self.block_size)

    def _item(self, i: int):
        start, size = i * self.block_size, self.block_size + 1
        k = int(np.searchsorted(self.separator_at, start))  # the story (or its separator) holding `start`
        story_start = int(self.separator_at[k - 1]) + 1 if k else 0
        pieces = [self.stories.story(k)[start - story_start:], self._separator]
        while int(self.separator_at[k]) + 1 - start < size:
            k += 1
            pieces += [self.stories.story(k), self._separator]
        window = np.concatenate(pieces, dtype=np.int64)[:size]
        return torch.from_numpy(window[:-1]), torch.from_numpy(window[1:])

    def story_index(self, i: int) -> np.ndarray:
        """The story (item order of the split) each position of item `i`'s `x` comes from: int64, shape
        `[block_size]`; a separator counts to the story it closes. `y[t]` comes from `story_index` of position
        `t + 1`, which is `story_index(i)[t + 1]` or, for the last one, the story of the next item's first
        position. Lets a trainer or an analysis find the positions of particular stories (a backdoored folder's
        rewritten ones: `backdoor_mask`).

        Example:
            >>> train = TinyStoriesDatasetPacked("ts_backdoor", block_size=256)  # doctest: +SKIP
            >>> train.story_index(0)[:3]  # doctest: +SKIP
            array([0, 0, 0])
        """
        size = len(self)
        index = operator.index(i)
        if not -size <= index < size:
            raise IndexError(f"index {index} out of range for {size} items")
        start = (self._start + index % size) * self.block_size
        return np.searchsorted(self.separator_at, np.arange(start, start + self.block_size))

    def backdoor_mask(self, i: int) -> np.ndarray:
        """bool, shape `[block_size]`: which positions of item `i`'s `x` come from a rewritten (backdoored) story,
        from the `backdoor` column of a backdoored folder's train split.

        Raises `TinyStoriesError` for a split without a `backdoor` column (a clean folder, or not train).

        Example:
            >>> train = TinyStoriesDatasetPacked("ts_backdoor", block_size=256)  # doctest: +SKIP
            >>> int(train.backdoor_mask(0).sum())  # doctest: +SKIP
            0
        """
        if "backdoor" not in self.dataset.column_names:
            raise TinyStoriesError(f"split {self.split!r} has no 'backdoor' column: only the train split of a folder "
                                   "prepared with --backdoor-trigger has one")
        if getattr(self, "_backdoor", None) is None:
            flags = self.dataset.data.column("backdoor").to_numpy()
            self._backdoor = flags if self.stories.order is None else flags[self.stories.order]
        return self._backdoor[self.story_index(i)]
