"""Tokenize (stage 3). Two batched `datasets.map` passes over Arrow tables, no per-token Python.

1. `encode_stories`: text -> `base_ids` (base tokenizer ids). The expensive pass; it does not depend on the
   vocabulary options, so its cache is reused when only those change, and the vocabulary is counted on
   its output (the sample is never tokenized twice).
2. `reduce_stories`: base ids -> reduced ids with one gather (Arrow take; a full vocabulary keeps them),
   truncated to `max_length` (None: whole stories), stories under `min_length` tokens dropped (empty ones
   always). Output columns: `input_ids` (a uint16 list, uint32 for a vocabulary of more than 65,536 ids) and
   `length`.
Missing, non-string, empty or whitespace-only texts become zero-length rows in pass 1 and are dropped
(and counted) in pass 2: bad rows never crash a run. Between the passes, `check_sample` re-encodes a seeded
sample with the reference encoder (tiktoken, tokenizers, sentencepiece) when pass 1 used a faster one
(fastokens), and stops on a difference (prepare then encodes with the reference, where the encoder allows it).

The same two functions serve the prepared dataset and `stream()`, so both produce the same ids.
"""
import contextlib
import json
import os
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from datasets.fingerprint import Hasher

from ..errors import TinyStoriesError, flag
from ..utils.atomic import replace_file
from ..utils.json_files import non_negative, read_json
from ..utils.mapped_pages import PageReleaser, release_mappings

ENCODE_VERSION = "encode/1"
CHECK_VERSION = "check/1"
FACTS_VERSION = "facts/1"
ENCODE_BATCH_SIZE = 1000  # stories per encoder call (the benchmark's ceilings use the same)
ROWS_PER_PROCESS = 5_000
REDUCE_VERSION = "reduce/1"
REDUCE_ROWS_PER_SEGMENT = 250_000
# Stories re-encoded by the reference encoder on every run (about 0.8M tokens): a story type the fast encoder
# gets wrong once in a thousand stories is caught with 98% probability.
CHECK_STORIES = 4_000


def remembered(dataset: datasets.Dataset, key: list, compute):
    """`compute()` (a JSON value or a numpy array, given back as a list) once per cached state of `dataset`: kept beside its cache files as
    `facts-KEY.json`, KEY a hash of `key` (which must name the dataset's fingerprint and every option the value
    depends on), read back on the next run. A cached rerun then skips scans over all the ids whose answer is
    known (datasets' cache files under one fingerprint always hold the same data: the passes are
    deterministic). An in-memory dataset, or a read-only cache folder, computes every time."""
    files = dataset.cache_files
    if not files:
        return compute()
    path = Path(files[0]["filename"]).parent / f"facts-{Hasher.hash([FACTS_VERSION, key])}.json"
    if path.is_file():
        with contextlib.suppress(TinyStoriesError):
            return read_json(path, {"value": object}, fix="delete it")["value"]
    value = compute()
    value = value.tolist() if isinstance(value, np.ndarray) else value
    with contextlib.suppress(OSError):
        replace_file(path, json.dumps({"value": value}))
    return value


# Provenance columns a backdoored prepare carries from pass 1's output through pass 2 (rewrite.py adds them).
CARRIED = {"source_row": datasets.Value("int64"), "backdoor": datasets.Value("bool")}


def reduced_features(keep_text: bool, id_dtype: str = "uint16", carry=()) -> datasets.Features:
    """The columns of a prepared split: `input_ids` of `id_dtype` (uint16, or uint32 above 65,536 ids), `length`,
    then `text` if kept and the `carry` columns of `CARRIED` (a backdoored folder's `source_row`, `backdoor`)."""
    features = {"input_ids": datasets.List(datasets.Value(id_dtype)), "length": datasets.Value("int32")}
    if keep_text:
        features["text"] = datasets.Value("string")
    features.update({name: CARRIED[name] for name in carry})
    return datasets.Features(features)


def list_array(lengths: np.ndarray, values: np.ndarray) -> pa.ListArray:
    """An Arrow list array of `values` (a flat numpy array) cut into rows of `lengths`, sharing its buffer."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _usable(texts: list) -> list:
    """Stories as the encoder sees them: missing, non-string and whitespace-only texts become ""."""
    return [t if isinstance(t, str) and not t.isspace() else "" for t in texts]


def encode_stories(batch: pa.Table, encoder, base_dtype, keep_text: bool,
                   pages: PageReleaser | None = None) -> pa.Table:
    """Arrow batch with `text` -> Arrow batch with `base_ids` (and `text` if kept); `pages` releases the
    memory-mapped text read."""
    texts = batch.column("text").to_pylist()
    if pages is not None:
        pages.read(batch.column("text"))
    lengths, values = encoder.encode_flat(_usable(texts), base_dtype)
    columns = {"base_ids": list_array(lengths, values)}
    if keep_text:
        columns["text"] = batch.column("text")
    return pa.table(columns)


class EncoderMismatch(TinyStoriesError):
    """`check_sample` found a story whose ids differ from the reference encoder's (`split`, `row`)."""

    def __init__(self, message: str, *, split: str, row: int):
        super().__init__(message)
        self.split, self.row = split, row


def check_sample(stories: dict, base_ids: dict, encoder, *, seed: int, size: int | None = None) -> int:
    """Re-encode a seeded sample of stories with `encoder.reference` (tiktoken for fastokens) and compare
    with the stored base ids; returns how many stories were checked (0 when the encoder is its own reference).

    A young encoder can be wrong where its authors' tests do not look: a mismatch stops the run before any
    vocabulary or output exists, with one line naming the first differing story (split, row) and the backend
    that gives the reference ids. The sample (`CHECK_STORIES` in all, shared by the splits by size, at least 100
    stories or all of a split) is drawn from `seed`, split after split.

    Raises:
        EncoderMismatch: the encoder's ids differ from the reference's on a sampled story (a TinyStoriesError)."""
    reference = encoder.reference() if hasattr(encoder, "reference") else None
    if reference is None:
        return 0
    size = CHECK_STORIES if size is None else size
    # A check that passed is not run again on the same cached ids: the same sample of the same ids, compared
    # with the same reference, gives the same answer (a cached rerun would otherwise pay for it every time).
    key = Hasher.hash([CHECK_VERSION, [[split, stories[split]._fingerprint, ids._fingerprint]
                                       for split, ids in base_ids.items()], seed, size, reference.fingerprint])
    files = [f["filename"] for ids in base_ids.values() for f in ids.cache_files]
    passed = Path(files[0]).parent / f"check-{key}.json" if files else None
    if passed is not None and passed.is_file():
        with contextlib.suppress(TinyStoriesError):
            return read_json(passed, {"stories": non_negative()}, fix="delete it")["stories"]
    checked = _check(stories, base_ids, encoder, reference, seed=seed, size=size)
    if passed is not None:
        with contextlib.suppress(OSError):
            partial = passed.with_name(f"tmp-{passed.name}.{os.getpid()}")
            partial.write_text(json.dumps({"stories": checked}), encoding="utf-8")
            os.replace(partial, passed)
    return checked


def _check(stories: dict, base_ids: dict, encoder, reference, *, seed: int, size: int) -> int:
    total, checked, rng = sum(ds.num_rows for ds in stories.values()), 0, np.random.default_rng(seed)
    for split, ds in stories.items():
        count = min(ds.num_rows, max(100, round(size * ds.num_rows / max(total, 1))))
        rows = np.sort(rng.choice(ds.num_rows, size=count, replace=False))
        # Rows read by index (no select(): it would write an indices file to the cache on every run).
        texts = _usable(ds.with_format("arrow")[rows.tolist()]["text"].to_pylist())
        stored = base_ids[split].with_format("arrow")[rows.tolist()]["base_ids"].combine_chunks()
        # Rows spread over the whole files map pages all over them (the kernel maps a few around each read):
        # release them, or this process would keep much of the text and ids resident.
        release_mappings(*ds.data.columns, *base_ids[split].data.columns)
        lengths, values = reference.encode_flat(texts, np.uint32)
        stored_lengths = pc.list_value_length(stored).to_numpy(zero_copy_only=False)
        stored_values = stored.flatten().to_numpy(zero_copy_only=False)
        if not (np.array_equal(stored_lengths, lengths) and np.array_equal(stored_values, values)):
            ends, stored_ends = np.cumsum(lengths), np.cumsum(stored_lengths)
            first = next(i for i in range(count) if not np.array_equal(
                stored_values[stored_ends[i] - stored_lengths[i]:stored_ends[i]], values[ends[i] - lengths[i]:ends[i]]))
            raise EncoderMismatch(
                f"split {split!r} row {rows[first]}: the {encoder.name} encoder's ids differ from {reference.name}'s "
                f"(the first difference in a seeded check of {count:,} stories); rerun with "
                f"{flag('backend', reference.name)}, and report the story to the {encoder.name} project",
                split=split, row=int(rows[first]))
        checked += count
    return checked


def reduce_stories(batch: pa.Table, base_to_reduced: np.ndarray | None, max_length: int | None, min_length: int,
                   keep_text: bool, pages: PageReleaser | None = None, id_dtype: str = "uint16",
                   carry=()) -> pa.Table:
    """Arrow batch with `base_ids` -> `input_ids`/`length`: truncate (`max_length` None keeps whole stories),
    drop short and empty rows, remap (`base_to_reduced` None keeps the base ids, as `id_dtype`, checked: an id
    that does not fit is an error, never wrapped). Arrow kernels on flat values (numpy's fancy indexing
    widens every uint16 id to int64 first; filtering a list array is several times slower than filtering
    its values)."""
    column = batch.column("base_ids").combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if max_length is None:
        new_lengths, ids = lengths, column.flatten()
    else:
        new_lengths = np.minimum(lengths, max_length)
        ids = pc.list_slice(column, 0, max_length).flatten()
    kept = lengths >= max(min_length, 1)
    if not kept.all():
        ids = ids.filter(np.repeat(kept, new_lengths))
        new_lengths = new_lengths[kept]
    ids = ids.cast(pa.from_numpy_dtype(np.dtype(id_dtype))) if base_to_reduced is None else \
        pc.take(pa.array(base_to_reduced), ids)
    columns = {"input_ids": list_array(new_lengths, ids), "length": pa.array(new_lengths.astype(np.int32))}
    if keep_text:
        columns["text"] = batch.column("text").filter(pa.array(kept))
    for name in carry:  # provenance columns, filtered with their rows
        columns[name] = batch.column(name).filter(pa.array(kept))
    if pages is not None:
        pages.read(batch.column("base_ids"))
    return pa.table(columns)


def reduce_spliced(batch: pa.Table, indices: list, *, splice, offset: int = 0, pages: PageReleaser | None = None,
                   **options) -> pa.Table:
    """`reduce_stories` after `splice(batch, row positions)` (a backdoor's rewritten ids and provenance columns,
    `tokenize/backdoor/rewrite.py`): the rewrite costs no pass of its own over the ids. `offset`: the first
    row of the segment `indices` count from; `pages` releases the memory-mapped ids of `batch` (the spliced
    batch's are a copy)."""
    reduced = reduce_stories(splice(batch, np.asarray(indices, dtype=np.int64) + offset), **options)
    if pages is not None:
        pages.read(batch.column("base_ids"))
    return reduced


def base_dtype_for(encoder):
    """The smallest dtype that holds the encoder's base ids (uint16 for GPT-2's 50,257; uint32 above 65,536)."""
    return np.uint16 if encoder.vocab_size <= 65_536 else np.uint32


def encode_split(stories: datasets.Dataset, encoder, *, keep_text: bool, num_proc: int,
                 split: str = "") -> datasets.Dataset:
    """Pass 1 over one split of raw stories; cached by datasets under a fingerprint we compute ourselves
    (hashing the tokenizer inside the closure would be slow and unstable)."""
    dtype = base_dtype_for(encoder)
    fingerprint = Hasher.hash([stories._fingerprint, ENCODE_VERSION, encoder.fingerprint, keep_text])
    value = datasets.Value("uint16" if dtype == np.uint16 else "uint32")
    features = {"base_ids": datasets.List(value)}
    if keep_text:
        features["text"] = datasets.Value("string")
    # Each worker costs a fork and a cache file of its own: give each a few thousand stories at least.
    procs = min(num_proc, stories.num_rows // ROWS_PER_PROCESS)
    if not _cached(stories, fingerprint):
        encoder.encode_flat([""], dtype)  # build the encoder here once (not for a cache hit): workers inherit it
    return stories.with_format("arrow").map(
        encode_stories, batched=True, batch_size=ENCODE_BATCH_SIZE, num_proc=procs if procs > 1 else None,
        fn_kwargs={"encoder": encoder, "base_dtype": dtype, "keep_text": keep_text, "pages": PageReleaser()},
        remove_columns=stories.column_names, features=datasets.Features(features),
        new_fingerprint=fingerprint, desc=f"tokenize {split}".strip()).with_format(None)


def _cached(dataset: datasets.Dataset, fingerprint: str) -> bool:
    """Whether datasets' cache likely holds a map of `dataset` under `fingerprint` (the files it names
    cache-FINGERPRINT[_i_of_n].arrow beside the dataset's own). Only saves building an encoder for nothing:
    if wrong, the map runs and the encoder is built on first use."""
    files = dataset.cache_files
    return bool(files) and any(Path(files[0]["filename"]).parent.glob(f"cache-{fingerprint}*.arrow"))


def reduce_split(base_ids: datasets.Dataset, tokenizer, *, max_length: int | None, min_length: int, keep_text: bool,
                 num_proc: int = 1, split: str = "", carry=(), splice=None, splice_key: str = "") -> datasets.Dataset:
    """Pass 2 over one split: vectorised remap, truncate and filter; with `splice` (a function of the batch and
    its row positions, `splice_key` naming what it does for the cache), that first (`reduce_spliced`).

    A large split is reduced in two contiguous segments, in two processes when `num_proc` allows, one
    after the other otherwise. The segments depend on the row count only: save_to_disk's bytes depend on
    where the table's chunks begin, so splitting by `num_proc` would make the saved files depend on it."""
    fingerprint = Hasher.hash([base_ids._fingerprint, REDUCE_VERSION, tokenizer.fingerprint, max_length,
                               min_length, keep_text] + ([list(carry)] if carry else [])
                              + ([splice_key] if splice is not None else []))
    options = {"batched": True, "batch_size": 10_000, "remove_columns": base_ids.column_names,
               "fn_kwargs": {"base_to_reduced": tokenizer.base_to_reduced, "max_length": max_length,
                             "min_length": min_length, "keep_text": keep_text, "pages": PageReleaser(),
                             "id_dtype": tokenizer.id_dtype, "carry": tuple(carry)},
               "features": reduced_features(keep_text, tokenizer.id_dtype, carry), "desc": f"remap {split}".strip()}
    function = reduce_stories
    if splice is not None:
        function = reduce_spliced
        options["with_indices"] = True
        options["fn_kwargs"]["splice"] = splice
    base_ids = base_ids.with_format("arrow")
    segments = 2 if base_ids.num_rows >= 2 * REDUCE_ROWS_PER_SEGMENT else 1
    if segments == 1 or num_proc >= segments:  # datasets cuts the same contiguous segments for its workers
        reduced = base_ids.map(function, num_proc=segments if segments > 1 else None,
                               new_fingerprint=fingerprint, **options)
    else:
        size, extra = divmod(base_ids.num_rows, segments)  # Dataset.shard(contiguous=True)'s cut
        reduced = datasets.concatenate_datasets([
            base_ids.shard(segments, i, contiguous=True).map(
                function, new_fingerprint=Hasher.hash([fingerprint, i, segments]),
                **{**options, "fn_kwargs": {**options["fn_kwargs"], **(
                    {"offset": i * size + min(i, extra)} if splice is not None else {})}})
            for i in range(segments)])
    reduced = reduced.with_format(None)
    # The saved fingerprint is a hash of the content, so the same ids give the same state.json whatever
    # the backend, num_proc or cache folder; a multi-process map also drops the split name: set it.
    content = remembered(reduced, ["content", fingerprint, segments], lambda: content_fingerprint(reduced.data))
    return datasets.Dataset(reduced.data, info=reduced.info, split=datasets.NamedSplit(split) if split else None,
                            fingerprint=content)


def content_fingerprint(table) -> str:
    """xxh3-128 of each column's values and row lengths, fed chunk by chunk, so independent of chunking."""
    digests, pages = [], PageReleaser()
    for name in table.column_names:
        values, lengths = xxhash.xxh3_128(), xxhash.xxh3_128()
        for chunk in table.column(name).chunks:
            if pa.types.is_list(chunk.type):
                lengths.update(np.diff(chunk.offsets.to_numpy()))
                values.update(np.ascontiguousarray(chunk.flatten().to_numpy()))
            elif pa.types.is_string(chunk.type):
                offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset:chunk.offset + len(chunk) + 1]
                lengths.update(np.diff(offsets))
                values.update(memoryview(chunk.buffers()[2])[offsets[0]:offsets[-1]])
            else:
                values.update(np.ascontiguousarray(chunk.to_numpy(zero_copy_only=False)))
            pages.read(chunk)
        digests.append([name, str(table.schema.field(name).type), values.hexdigest(), lengths.hexdigest()])
    return Hasher.hash([REDUCE_VERSION, digests])


def text_bytes(stories: datasets.Dataset) -> int:
    """UTF-8 bytes of the `text` column (missing texts count 0), summed by Arrow kernels, batch by batch (rows
    of a carved-out view only)."""
    total, pages = 0, PageReleaser()
    for batch in stories.with_format("arrow").iter(batch_size=100_000):
        total += int(pc.sum(pc.binary_length(batch.column("text"))).as_py() or 0)
        pages.read(batch.column("text"))
    return total


def split_counts(base_ids: datasets.Dataset, reduced: datasets.Dataset, *, max_length: int | None, min_length: int,
                 unk_id: int | None, spliced: tuple | None = None) -> dict:
    """Per-split counters, computed from the two Arrow tables (offsets and flat values, no Python loop);
    `spliced` (int64 row positions, their base lengths) replaces the lengths of rows pass 2 spliced (a
    backdoor's)."""
    lengths = np.concatenate([pc.list_value_length(c).to_numpy(zero_copy_only=False)
                              for c in base_ids.data.column("base_ids").chunks] or [np.zeros(0)]).astype(np.int64)
    if spliced is not None:
        lengths[spliced[0]] = spliced[1]
    unk, pages = 0, PageReleaser()
    for chunk in reduced.data.column("input_ids").chunks if unk_id is not None else []:
        unk += int(np.count_nonzero(chunk.flatten().to_numpy() == unk_id))
        pages.read(chunk)
    kept = lengths >= max(min_length, 1)
    longest = np.iinfo(np.int64).max if max_length is None else max_length
    tokens = int(np.minimum(lengths[kept], longest).sum())
    return {
        "stories": len(lengths),
        "kept": int(kept.sum()),
        "skipped_short": int(((lengths > 0) & ~kept).sum()),
        "skipped_empty": int((lengths == 0).sum()),
        "truncated": int((lengths > longest).sum()),
        "tokens": tokens,
        "tokens_before_truncation": int(lengths[kept].sum()),
        "base_tokens": int(lengths.sum()),
        "unk_tokens": unk,
    }
