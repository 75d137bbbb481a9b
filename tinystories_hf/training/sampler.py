"""`TinyStoriesSampler`: the order of the items of a map-style dataset, resumable exactly on any number of ranks.

One global order per epoch, `torch.randperm(num_items, generator=torch.Generator().manual_seed(seed + epoch))`
(`torch.arange(num_items)` with `shuffle=False`), the rule of `torch.utils.data.DistributedSampler`. Ranks read it
in lockstep: a pass that starts at global position `c` gives rank `r` of `W` the positions `c + r, c + r + W,
c + r + 2W, ...`, so after every rank has taken `k` samples the first `c + k * W` positions are consumed, whatever
`W` is. The state is that position (`consumed`, Megatron's `consumed_samples`) with the seed, the epoch and the
identity of the data, as a plain dict of ints and strings: `load_state_dict` continues the same global order
there on any world size and with any DataLoader workers, and refuses other data with one line.
"""
import math

import datasets
import numpy as np
import xxhash
from datasets.fingerprint import Hasher

from ..errors import TinyStoriesError, check_int
from ..utils.extras import require

torch = require("torch", extra="torch", needed_by=__name__)  # before the adapters: the error names this module

from ..tokenize.passes import content_fingerprint
from .adapters import _TokenDataset, distributed_rank

STATE_KEYS = {"seed": int, "shuffle": bool, "epoch": int, "consumed": int, "num_items": int, "fingerprint": str}
_KINDS = {int: "an integer", bool: "true or false", str: "a string"}
_CHUNK = 1 << 16  # positions turned into Python ints at a time: a 2M-item epoch never sits in a list


def data_fingerprint(dataset) -> str:
    """A content hash of what `dataset` serves, the same for the same data however it was loaded or copied.

    For `TinyStoriesDataset`/`TinyStoriesDatasetPacked`: the stored ids of the split (xxh3 of the `input_ids`
    values and row lengths, `tokenize.content_fingerprint`, which is also what tinystories-prepare saves as the
    split's `_fingerprint`), the row order of a shuffled/selected view, and how items are cut (class,
    `block_size`, separator or `add_eos`, the `shard()` range). For a `datasets.Dataset` (the HF Trainer's
    train split): every column and the row order. Reads every stored id once (about a second per GB of ids
    from the page cache); the sampler computes it on its first `state_dict`/`load_state_dict` and keeps it.

    Example:
        >>> data_fingerprint(datasets.Dataset.from_dict({"input_ids": [[5, 6], [7]]}))  # doctest: +SKIP
        '5b1f0c0ad5a1e3c4'
    """
    if isinstance(dataset, _TokenDataset):
        cut = [type(dataset).__name__, dataset.block_size, getattr(dataset, "separator", None),
               getattr(dataset, "add_eos", None), dataset._start, dataset._stop]
        return Hasher.hash([_split_fingerprint(dataset.dataset, ["input_ids"]), cut])
    if isinstance(dataset, datasets.Dataset):
        return _split_fingerprint(dataset, dataset.column_names)
    raise TinyStoriesError(f"cannot fingerprint a {type(dataset).__name__}: pass fingerprint= (a string naming "
                           "the data) to TinyStoriesSampler, or use TinyStoriesDataset(Packed) or a datasets.Dataset")


def _split_fingerprint(dataset: datasets.Dataset, columns: list) -> str:
    order = "" if dataset._indices is None else xxhash.xxh3_128(
        np.ascontiguousarray(dataset._indices.column("indices").to_numpy())).hexdigest()
    return Hasher.hash([content_fingerprint(dataset.data.table.select(columns)), order])


class TinyStoriesSampler(torch.utils.data.Sampler[int]):
    """Indices of `dataset` for this rank: one seeded global order per epoch, read by the ranks in lockstep,
    with a state that resumes it exactly on any number of ranks and DataLoader workers.

    - Order of epoch `e`: `torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed + e))`
      (`torch.arange` with `shuffle=False`), as `DistributedSampler`. A pass starting at global position `c`
      gives rank `r` of `W` the items at positions `c + r + i * W`, `i = 0, 1, ...`.
    - Equal shares: every rank yields `ceil((len - c) / W)` items, the last round wrapping around to the start
      of the epoch's order (those few items are seen twice in the epoch); with `drop_last=True`,
      `(len - c) // W`, the last `(len - c) % W` items of the order left out of the epoch.
    - `rank`/`world_size` default to the initialised `torch.distributed` group. Under the HF Trainer pass
      `rank=0, world_size=1`: accelerate already splits each global batch across processes.
    - Epochs: call `set_epoch(e)` before each pass, as with `DistributedSampler` (a pass without it repeats
      the epoch's pass, from the loaded position if there is one). `set_epoch` with the current epoch keeps a
      position loaded by `load_state_dict`; another epoch starts at its first position.
    - `state_dict()` -> `{seed, shuffle, epoch, consumed, num_items, fingerprint}`: `consumed` global samples
      of the epoch (all ranks together; `num_items` once the epoch's pass is done). A DataLoader draws indices
      ahead of the training loop (workers x prefetch_factor batches): pass `samples=` (this rank's samples
      taken from the current pass, `step * batch_size`) so the state is what the loop consumed.
      torchdata's `StatefulDataLoader` needs nothing: it stores the sampler's state with each batch it yields.
    - `load_state_dict(state)` takes seed, shuffle, epoch and position from the state; the passes of that
      epoch start at `consumed`. A state of other data (`num_items` or `fingerprint` differ) raises
      `TinyStoriesError`. `StatefulDataLoader.load_state_dict` hands the state over only when the loader's
      next pass starts, after the loop's `set_epoch(e)`: a state of epoch `e` goes on where it stopped, a
      finished state of an earlier epoch lets epoch `e` start afresh, anything else raises (the loop's epoch
      and the data's would disagree).

    Example:
        >>> import torch
        >>> data = list(range(10))
        >>> sampler = TinyStoriesSampler(data, seed=0, rank=1, world_size=2, fingerprint="ten numbers")
        >>> order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
        >>> list(sampler) == order[1::2]
        True
        >>> it = iter(sampler); taken = [next(it) for _ in range(2)]
        >>> state = sampler.state_dict(); state["consumed"]  # 2 samples on each of 2 ranks
        4
        >>> alone = TinyStoriesSampler(data, rank=0, world_size=1, fingerprint="ten numbers")
        >>> alone.load_state_dict(state); list(alone) == order[4:]
        True
    """

    def __init__(self, dataset, *, seed: int = 0, shuffle: bool = True, rank=None, world_size=None,
                 drop_last: bool = False, fingerprint: str | None = None):
        self.dataset, self.num_items = dataset, len(dataset)
        if self.num_items < 1:
            raise TinyStoriesError("the dataset has no items to sample")
        self.rank, self.world_size = distributed_rank(rank, world_size)
        if self.world_size > 1 and getattr(dataset, "sharded_over", 1) > 1:
            raise TinyStoriesError(f"the dataset is one rank's shard() and the sampler splits it again over "
                                   f"{self.world_size} ranks, so each rank would see 1/{self.world_size} of its "
                                   "shard: give the sampler the whole dataset (it shares the items out itself)")
        self.seed, self.shuffle, self.drop_last = check_int("seed", seed), bool(shuffle), bool(drop_last)
        self._fingerprint = fingerprint
        self.epoch = 0
        self._start = 0  # global position where every pass of this epoch starts: 0, or where a state left it
        self._epoch_set = False  # set_epoch() called since the last pass began: a state loaded now must agree
        self._count = None  # items per rank of the running or finished pass; None: no pass since the last reset
        self._yielded = 0
        self._pass = 0

    @property
    def fingerprint(self) -> str:
        """The data's identity recorded in the state (see `data_fingerprint`), computed once."""
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.dataset)
        return self._fingerprint

    def order(self, epoch: int | None = None) -> torch.Tensor:
        """The global order of `epoch` (default: the current one): a permutation of `range(num_items)`, int64."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return torch.arange(self.num_items)
        return torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed + epoch))

    def _per_rank(self, start: int) -> int:
        left = self.num_items - start
        return left // self.world_size if self.drop_last else math.ceil(left / self.world_size)

    def __len__(self) -> int:
        return self._per_rank(self._start)

    def __iter__(self):
        self._pass += 1
        this_pass, start = self._pass, self._start
        self._epoch_set, self._yielded = False, 0
        self._count = count = self._per_rank(start)
        order = self.order()
        for first in range(0, count, _CHUNK):
            positions = start + self.rank + self.world_size * torch.arange(first, min(count, first + _CHUNK))
            for item in order[positions % self.num_items].tolist():  # % wraps the last round around
                if this_pass == self._pass:
                    self._yielded += 1  # before handing it out: a state taken after this index includes it
                yield item

    def set_epoch(self, epoch: int) -> None:
        """Start epoch `epoch` at its first position; the current epoch keeps its (loaded) position."""
        epoch = check_int("epoch", epoch)
        if epoch != self.epoch:
            self.epoch, self._start, self._count, self._yielded = epoch, 0, None, 0
        self._epoch_set = True

    def state_dict(self, *, samples: int | None = None) -> dict:
        """`{seed, shuffle, epoch, consumed, num_items, fingerprint}`, ints, a bool and a string (JSON-safe).

        `samples`: how many of the samples this rank's current pass yielded the training loop has taken
        (`step * batch_size`); None counts every index handed out, which is what the loop consumed when it
        iterates the sampler itself or through `StatefulDataLoader`, but not through a plain DataLoader,
        which draws indices ahead of the loop.
        """
        taken = self._yielded
        if samples is not None:
            samples = check_int("samples", samples, low=0)
            finished = self._count is not None and self._yielded >= self._count
            if samples > self._yielded and not finished:  # a partial last batch counts whole: allowed at the end
                raise TinyStoriesError(f"samples={samples}, but this rank's current pass has handed out "
                                       f"{self._yielded}; pass the samples this rank's loop took since its "
                                       "`for` over the loader began (step * batch_size)")
            taken = min(samples, self._yielded)
        done = self._count is not None and taken >= self._count
        consumed = self.num_items if done else min(self.num_items, self._start + taken * self.world_size)
        return {"seed": self.seed, "shuffle": self.shuffle, "epoch": self.epoch, "consumed": consumed,
                "num_items": self.num_items, "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        """Continue the global order of `state` at its `consumed` position, on this rank and world size.

        Raises `TinyStoriesError` for a state that is not one of `state_dict()`, of other data, or of another
        epoch than one `set_epoch` chose before it (unless that state's epoch is finished and the chosen one later).
        """
        if not isinstance(state, dict):
            raise TinyStoriesError(f"a sampler state is a dict, not {type(state).__name__}")
        for key, kind in STATE_KEYS.items():
            if not isinstance(state.get(key), kind) or (kind is int and isinstance(state[key], bool)):
                raise TinyStoriesError(f"sampler state: {key!r} is {state.get(key)!r}, not {_KINDS[kind]}; "
                                       "pass a dict saved by TinyStoriesSampler.state_dict()")
        if state["num_items"] != self.num_items or state["fingerprint"] != self.fingerprint:
            what = (f"{state['num_items']} items, this dataset has {self.num_items}"
                    if state["num_items"] != self.num_items else
                    f"data with fingerprint {state['fingerprint']}, this dataset has {self.fingerprint}")
            raise TinyStoriesError(f"the sampler state was saved for {what}: resuming would repeat or skip items; "
                                   "open the prepared folder, split and block_size the run started with")
        if not 0 <= state["consumed"] <= self.num_items:
            raise TinyStoriesError(f"sampler state: consumed {state['consumed']} is outside 0..{self.num_items}")
        self.seed, self.shuffle = state["seed"], state["shuffle"]
        if self._epoch_set and self.epoch != state["epoch"]:
            # StatefulDataLoader loads the state when its next pass starts, after the loop's set_epoch().
            if not (self.epoch > state["epoch"] and state["consumed"] == self.num_items):
                raise TinyStoriesError(
                    f"set_epoch({self.epoch}) was called before loading a sampler state of epoch {state['epoch']} "
                    f"({state['consumed']} of {self.num_items} items consumed): call set_epoch({state['epoch']}) "
                    "to go on where it stopped (keep the epoch in the checkpoint beside the state)")
            self._start, self._count, self._yielded = 0, None, 0  # that epoch is over: this one starts afresh
            return
        self.epoch, self._start, self._count, self._yielded = state["epoch"], state["consumed"], None, 0
