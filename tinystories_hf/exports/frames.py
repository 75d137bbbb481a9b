"""The stored stories as one stream of ids, a window at a time, checked as they are read.

Every format writes the same thing in its own frame: each story's ids with one separator id before it
(llama2.c's BOS, llm.c's EOT) or after it (nanoGPT's EOT, Megatron's `--append-eod`), in the stored order.
The ids are read through the memory-mapped Arrow data, `WINDOW_TOKENS` at a time, so memory stays flat at
any corpus size; each window is checked before it is framed (vectorised): every id below the vocabulary size
and every story's `length` equal to its number of ids. A folder whose ids were altered is one line naming
the Arrow file and row, never an export with ids its model cannot embed.
"""
import hashlib
import itertools
from pathlib import Path

import numpy as np

from ..errors import TinyStoriesError
from ..utils.mapped_pages import PageReleaser

WINDOW_TOKENS = 1 << 23  # ids read, framed and written at a time: 8M ids, 16 MB in and 16 MB out (uint16)


def story_windows(parts, first: int = 0, end: int | None = None, *, vocab_size: int, fix: str,
                  releaser: PageReleaser | None = None):
    """`(lengths, values)` of the stories `first..end-1` of a split, in order, a window of about
    `WINDOW_TOKENS` ids at a time: `lengths` int64 per story, `values` the ids (zero-copy views of the
    memory-mapped Arrow data, whose pages `releaser` lets go once read).

    `parts` is the split's `[(file, pyarrow.Table)]` in row order (its Arrow files). Raises a one-line
    `TinyStoriesError` naming the file and row (and `fix`) for an id `>= vocab_size` or a `length` that
    differs from the story's number of ids."""
    releaser = releaser or PageReleaser()
    end, row = sum(t.num_rows for _, t in parts) if end is None else end, 0
    for where, table in parts:
        base = row
        for chunk, length_chunk in zip(table.column("input_ids").chunks, _aligned(table.column("length"),
                                                                                 table.column("input_ids"))):
            lo, hi = max(first - row, 0), min(end - row, len(chunk))
            start, row = row, row + len(chunk)
            if lo >= hi:
                continue
            # chunk.values is the whole values buffer and chunk.offsets index into it, also for sliced chunks.
            offsets = chunk.offsets.to_numpy(zero_copy_only=True)[lo:hi + 1]
            values = chunk.values.to_numpy(zero_copy_only=True)
            stated = length_chunk.to_numpy(zero_copy_only=False)[lo:hi]
            cuts = np.searchsorted(offsets, np.arange(offsets[0], offsets[-1], WINDOW_TOKENS)[1:], side="right") - 1
            bounds = np.unique(np.concatenate([[0], cuts, [len(offsets) - 1]]))
            for a, b in itertools.pairwise(bounds):
                lengths, window = np.diff(offsets[a:b + 1]).astype(np.int64), values[offsets[a]:offsets[b]]
                _check(lengths, window, stated[a:b], vocab_size=vocab_size, where=where,
                       first_row=start - base + lo + int(a), fix=fix)
                yield lengths, window
                releaser.read(chunk.values.slice(offsets[a], offsets[b] - offsets[a]))


def _aligned(lengths, ids):
    """The `length` column cut into the chunks of `input_ids` (datasets writes both in the same record
    batches, so this is a no-op but for a table assembled otherwise)."""
    if [len(c) for c in lengths.chunks] == [len(c) for c in ids.chunks]:
        return lengths.chunks
    flat, at, out = lengths.combine_chunks(), 0, []
    for chunk in ids.chunks:
        out.append(flat.slice(at, len(chunk)))
        at += len(chunk)
    return out


def _check(lengths, values, stated, *, vocab_size: int, where, first_row: int, fix: str) -> None:
    if len(values) and int(values.max()) >= vocab_size:
        at = int(np.argmax(values >= vocab_size))
        story = first_row + int(np.searchsorted(np.cumsum(lengths), at, side="right"))
        raise TinyStoriesError(f"{where}: row {story:,} holds id {int(values[at]):,}, outside the vocabulary of "
                               f"{vocab_size:,} ids; {fix}")
    if not np.array_equal(lengths, stated):
        story = first_row + int(np.argmax(lengths != stated))
        raise TinyStoriesError(f"{where}: row {story:,} has length {int(stated[story - first_row]):,} but "
                               f"{int(lengths[story - first_row]):,} ids; {fix}")


def framed(lengths: np.ndarray, values: np.ndarray, separator: int, *, before: bool, dtype="<u2") -> np.ndarray:
    """The stories as one `dtype` stream with `separator` after each (nanoGPT's EOT, Megatron's EOD) or, with
    `before`, before each (llama2.c's BOS, llm.c's EOT).

    Example:
        >>> framed(np.array([2, 1]), np.array([5, 6, 7], np.uint16), 0, before=True).tolist()
        [0, 5, 6, 0, 7]
        >>> framed(np.array([2, 1]), np.array([5, 6, 7], np.uint16), 9, before=False, dtype="<u4").tolist()
        [5, 6, 9, 7, 9]
    """
    out = np.empty(len(values) + len(lengths), dtype=dtype)
    starts = np.cumsum(lengths + 1) - lengths - 1  # where each story's frame begins
    marks = starts if before else starts + lengths
    is_id = np.ones(len(out), dtype=bool)
    is_id[marks] = False
    out[marks] = separator
    out[is_id] = values
    return out


class StreamWriter:
    """Writes framed stories into one file, window by window, after an optional header, counting tokens
    and hashing the bytes as written.

    Example:
        >>> w = StreamWriter(Path("/tmp/x.bin"), "x.bin", dtype="<u2")  # doctest: +SKIP
        >>> w.write(np.array([1]), framed(np.array([1]), np.array([7]), 0, before=True))  # doctest: +SKIP
        >>> w.close()  # doctest: +SKIP
        {'x.bin': {'tokens': 2, 'bytes': 4, 'sha256': '...'}}
    """

    def __init__(self, path: Path, name: str, *, dtype="<u2", header: bytes = b""):
        self.path, self.name, self.dtype = path, name, np.dtype(dtype)
        self.tokens, self.stories, self.bytes, self.digest = 0, 0, 0, hashlib.sha256()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "wb")  # noqa: SIM115 -- closed by close(), after the last window
        self._put(header)

    def _put(self, data: bytes) -> None:
        self.file.write(data)
        self.digest.update(data)
        self.bytes += len(data)

    def write(self, lengths: np.ndarray, stream: np.ndarray) -> None:
        self._put(stream.astype(self.dtype, copy=False).tobytes())
        self.tokens += len(stream)
        self.stories += len(lengths)

    def abort(self) -> None:
        """Close the file after a failure (the staging folder holding it is removed)."""
        self.file.close()

    def close(self) -> dict:
        """`{name: {"tokens", "bytes", "sha256"}}` of the file written."""
        self.file.close()
        return {self.name: {"tokens": self.tokens, "bytes": self.bytes, "sha256": self.digest.hexdigest()}}
