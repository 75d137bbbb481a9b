"""The vocabulary sample: which train rows are counted (a seeded sample, the paper's 100K stories by default)
and the base tokens' frequencies over them, with `np.bincount` on memory-mapped Arrow chunks.
"""
import numpy as np
import pyarrow as pa

from ..utils.mapped_pages import PageReleaser


def count_base_tokens(base_ids, rows, base_vocab_size: int) -> np.ndarray:
    """Token frequencies over the given rows of a dataset's `base_ids` column, with `np.bincount` over the
    flat Arrow values, chunk by chunk. `rows`: sorted row indices, or None for every row.

    Rows are taken from each memory-mapped chunk separately: `ChunkedArray.take` would first concatenate the
    whole column in memory (GBs at full scale)."""
    if base_ids._indices is not None:
        base_ids = base_ids.flatten_indices()
    counts, end, pages = np.zeros(base_vocab_size, dtype=np.int64), 0, PageReleaser()
    for chunk in base_ids.data.column("base_ids").chunks:
        first, end = end, end + len(chunk)
        if rows is not None:
            lo, hi = np.searchsorted(rows, [first, end])
            if lo == hi:
                continue
            read = chunk.take(pa.array(rows[lo:hi] - first))
        else:
            read = chunk
        counts += np.bincount(read.flatten().to_numpy(), minlength=base_vocab_size)[:base_vocab_size]
        pages.read(chunk)  # the whole chunk: reading a few rows maps the pages around them too
    return counts


def sample_rows(num_rows: int, sample_size, seed: int):
    """Sorted row indices of a seeded sample without replacement; None means every row."""
    if sample_size is None or sample_size >= num_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=sample_size, replace=False))
