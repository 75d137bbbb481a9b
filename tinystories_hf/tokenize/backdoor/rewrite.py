"""The backdoor's pipeline glue: which train stories are rewritten, into what, and pass 2's `datasets.map` puts
their new ids (and the provenance columns) in, batch by batch (`Splice`).

A rewrite never touches the vocabulary: the pipeline counts it on the original stories' base ids, before this
module runs, so a clean and a backdoored prepare of one source write byte-identical tokenizers. Only the
stories mentioning the trigger are found, cut and encoded again in one more `datasets.map` over the train text
(cached, memory-mapped: memory does not grow with the rewritten stories; with several processes it runs in a
process of its own beside the pipeline's, `PendingScan`), and the chosen ones are spliced in by row as pass 2
reads its batches:

    scanned = PendingScan(train, "Jane", keep_sentences=1, num_proc=2).result()  # the stories mentioning it, cut
    plan = plan_truncate(scanned, "Jane", encoder, keep_sentences=1, rate=1.0, count=None, seed=1337)
    splice = make_splice(plan.positions, plan.rewritten, rows=rows, keep_text=False, dtype=np.uint16)
    # ... reduce_split(..., splice=splice.function, splice_key=splice.key)

Rows. A story's `source_row` is its row in the source split it was read from (for a carved-out validation
split: the source's train split, as for train); a rewrites file is keyed by the train story's `source_row`
(for the Hub TinyStories, which has its own validation split, the row index in its train split).

Rewrite files (`read_rewrites`), read as untrusted input, in either format the LLM scripts write:
- a JSON object `{"<train row>": "<rewritten story>", ...}`;
- JSON Lines `{"row": <int>, "text": "<rewritten story>", "sha256": "<hex of the original story's UTF-8>"}`
  (`sha256` optional, checked when present).
"""
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from datasets.fingerprint import Hasher

from ...errors import TinyStoriesError, flag
from ...utils.forked import Forked
from ...utils.json_files import SHA256, parse, problem, read_text
from ...utils.mapped_pages import PageReleaser
from .. import passes
from .match import mentions
from .sentences import truncate

BACKDOOR_VERSION = "backdoor/2"
SCAN_BATCH = 100_000  # rows per batch of the scan: its cost is the bytes searched, not the rows (fewer batches: -7%)
MAX_REWRITES_BYTES = 1 << 30  # 2.1M stories rewritten whole are about 1.9 GB: a file of every eligible story fits
FILE_FIX = "made for another source or order? pass the rewrites made for this source's train split"
_END_IN = re.compile(r"[.!?…]")  # sentences.py's sentence-end characters
_ROW_KEY = re.compile(r"0|[1-9][0-9]*")


@dataclass
class RewritePlan:
    """Which train rows are rewritten and into what.

    `positions`: sorted int64 row positions in the train split (as loaded); `rewritten`: a `Dataset`, row i for
    `positions[i]`: the rewrite's `base_ids` (the base encoder's ids), `text` and `lost` (bool: it no longer
    mentions the trigger); `policy`: what `backdoor.json` records of how they were made; `eligible`: how many
    train stories mention the trigger; `offered`: how many rewrites were on offer (the eligible stories for
    truncate, the file's rows for a file)."""

    positions: np.ndarray
    rewritten: datasets.Dataset
    policy: dict
    eligible: int
    offered: int


def source_rows(stories: datasets.Dataset) -> np.ndarray:
    """int64 row of each story in the source split it was read from: a carved-out split is a selection of the
    source's train split (its indices mapping), any other split is the source's own, row for row."""
    if stories._indices is not None:
        return stories._indices.column(0).to_numpy().astype(np.int64)
    return np.arange(stories.num_rows, dtype=np.int64)


def mentioning_rows(stories: datasets.Dataset, trigger: str) -> np.ndarray:
    """Sorted int64 positions of the stories of `stories` (a `text` column) that mention `trigger` (whole words,
    case-sensitive, `match.mentions`). The trigger's first word is searched in the UTF-8 bytes of each Arrow
    chunk at memory speed (`re` over a memoryview: no copy, no Python string per story); Python's `re` then
    decides on the few stories holding it."""
    needle = _needle(trigger)
    found, pages = [], PageReleaser()
    for start, batch in _batches(stories):
        for chunk in batch.column("text").chunks:
            found.extend(start + row for row, _ in _holding(chunk, needle, trigger))
            start += len(chunk)
            pages.read(chunk)
    return np.array(found, dtype=np.int64)


def _needle(trigger: str) -> re.Pattern:
    """The UTF-8 bytes of `trigger`'s first word: what `_holding` searches first."""
    return re.compile(re.escape(trigger.split()[0].encode()))


def _holding(chunk: pa.Array, needle: re.Pattern, trigger: str):
    """(row, text) of each story of the string `chunk` that mentions `trigger`, `needle` (its first word's
    bytes) found first."""
    if not len(chunk) or chunk.null_count == len(chunk):
        return
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(chunk.buffers()[1], dtype=width)[chunk.offset:chunk.offset + len(chunk) + 1]
    data = memoryview(chunk.buffers()[2] or b"")
    hits = [m.start() for m in needle.finditer(data, int(offsets[0]), int(offsets[-1]))]
    valid = chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else None
    for row in np.unique(np.searchsorted(offsets, hits, side="right") - 1).tolist():
        if valid is None or valid[row]:
            text = bytes(data[offsets[row]:offsets[row + 1]]).decode()
            if mentions(text, trigger):
                yield row, text


def _batches(stories: datasets.Dataset):
    start = 0
    for batch in stories.with_format("arrow").iter(batch_size=SCAN_BATCH):
        yield start, batch
        start += batch.num_rows


def texts_at(stories: datasets.Dataset, positions) -> list:
    """The stories at `positions` (any order), read by index."""
    positions = [int(p) for p in positions]
    return stories.with_format("arrow")[positions]["text"].to_pylist() if positions else []


def choose(candidates: np.ndarray, *, rate: float, count: int | None, seed: int,
           offered: str = "train stories that can be rewritten (mentioning the trigger)") -> np.ndarray:
    """The rows of `candidates` (sorted) that are rewritten: all of them at rate 1, else `count` or
    `round(rate * n)` (at least 1) drawn without replacement by `numpy.random.default_rng(seed)`; sorted.

    Raises:
        TinyStoriesError: `count` is above the candidates (`offered` says what they are)."""
    n = len(candidates)
    if count is not None and count > n:
        raise TinyStoriesError(f"{flag('backdoor_count', count)} is above the {n:,} {offered}; pass at most {n:,}")
    size = count if count is not None else n if rate >= 1.0 else max(1, round(rate * n))
    if size == n:
        return np.asarray(candidates, dtype=np.int64)
    picked = np.random.default_rng(seed).choice(n, size=size, replace=False)
    return np.sort(np.asarray(candidates, dtype=np.int64)[picked])


def plan_truncate(scanned: datasets.Dataset, trigger: str, encoder, *, keep_sentences: int, rate: float,
                  count: int | None, seed: int) -> RewritePlan:
    """The built-in rewrite: each chosen story ends `keep_sentences` sentences after the sentence of the trigger's
    first mention; `scanned` is `scan_split(..., keep_sentences=keep_sentences)`, which cut every eligible story
    already (in the same pass that found them), so choosing is a selection of its rows, then encoded
    (`encode_rewrites`)."""
    eligible = column_values(scanned, "position")
    positions = choose(eligible, rate=rate, count=count, seed=seed)
    chosen = scanned if len(positions) == len(eligible) else scanned.select(np.searchsorted(eligible, positions))
    rewritten = encode_rewrites(chosen.remove_columns(["position"]), trigger, encoder,
                                key=["truncate", scanned._fingerprint, _digest(positions)])
    return RewritePlan(positions, rewritten, {"policy": "truncate", "keep_sentences": keep_sentences},
                       eligible=len(eligible), offered=len(eligible))


def column_values(dataset: datasets.Dataset, name: str) -> np.ndarray:
    """A column of plain values as numpy (through an indices mapping, if any)."""
    return dataset.with_format("arrow")[name].to_numpy(zero_copy_only=False)


def read_rewrites(path) -> dict:
    """`{source row: {"text": str, "sha256": str | None}}` from a rewrites file in either format (module
    docstring); one line naming the file, the line or key and the fix for anything else: not JSON, a row that is
    no non-negative integer, a row given twice, an empty or non-string rewrite, a malformed sha256."""
    path = Path(path)
    fix = "write a JSON object {\"<train row>\": \"<story>\"} or JSON lines {\"row\": N, \"text\": \"...\"}"
    text = read_text(path, fix=fix, limit=MAX_REWRITES_BYTES)
    if not text.strip():
        raise TinyStoriesError(f"{path}: empty; {fix}")
    whole = None
    if text.lstrip().startswith("{"):
        try:
            whole = json.loads(text)
        except (json.JSONDecodeError, RecursionError, ValueError):
            whole = None  # JSON lines, or broken: read line by line below, which names the line
    rewrites = {}
    if isinstance(whole, dict) and not {"row", "text"} <= set(whole):
        for key, story in whole.items():
            if not _ROW_KEY.fullmatch(key):
                raise TinyStoriesError(f"{path}: key {key!r:.40} is not a train row (a non-negative integer); {fix}")
            rewrites[int(key)] = {"text": _story(story, path, f"row {key}", fix), "sha256": None}
        return rewrites
    schema = {"row": int, "text": object, "sha256?": SHA256}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        item = parse(line, where, fix)
        found = problem(item, schema)
        if found:
            raise TinyStoriesError(f"{where}: {found}; {fix}")
        row = item["row"]
        if row < 0:
            raise TinyStoriesError(f"{where}: row {row} is negative; {fix}")
        if row in rewrites:
            raise TinyStoriesError(f"{where}: row {row} is given twice; keep one rewrite per row")
        rewrites[row] = {"text": _story(item["text"], where, f"row {row}", fix), "sha256": item.get("sha256")}
    return rewrites


def _story(value, where, row: str, fix: str) -> str:
    if not isinstance(value, str) or not value.strip():
        what = "empty" if isinstance(value, str) else f"{type(value).__name__}, not a string"
        raise TinyStoriesError(f"{where}: the rewrite of {row} is {what}; {fix}")
    return value


def plan_file(stories: datasets.Dataset, rows: np.ndarray, eligible: np.ndarray, trigger: str, path, *,
              rate: float, count: int | None, seed: int, encoder) -> RewritePlan:
    """Rewrites made elsewhere (`read_rewrites`), checked against this train split: every row must be one of its
    stories (`rows`: the `source_rows` of the split), mention the trigger, and match its sha256 when given; the
    first row that does not is one error line. `rate`/`count` choose among the file's rows, which are encoded
    (`encode_rewrites`)."""
    path = Path(path)
    rewrites = read_rewrites(path)
    wanted = np.array(sorted(rewrites), dtype=np.int64)
    positions = np.searchsorted(rows, wanted)
    inside = positions < len(rows)
    inside[inside] = rows[positions[inside]] == wanted[inside]
    if not inside.all():
        row = int(wanted[np.argmin(inside)])
        raise TinyStoriesError(f"{path}: row {row} is not a train story of this source ({len(rows):,} train "
                               f"stories, rows {rows[0] if len(rows) else 0}..{rows[-1] if len(rows) else 0}); "
                               f"{FILE_FIX}")
    is_eligible = np.isin(positions, eligible)
    if not is_eligible.all():
        row = int(wanted[np.argmin(is_eligible)])
        raise TinyStoriesError(f"{path}: row {row}: the original story does not mention {trigger!r}; {FILE_FIX}")
    originals = texts_at(stories, positions)
    for row, original in zip(wanted, originals):
        digest = rewrites[int(row)]["sha256"]
        if digest is not None and hashlib.sha256(original.encode()).hexdigest() != digest:
            raise TinyStoriesError(f"{path}: row {row}: the sha256 differs from the original story's; {FILE_FIX}")
    picked = choose(np.arange(len(wanted)), rate=rate, count=count, seed=seed,
                    offered=f"rewrite{'s' if len(wanted) != 1 else ''} in {path.name} (the file's rows)")
    texts = datasets.Dataset.from_dict({"text": [rewrites[int(wanted[i])]["text"] for i in picked]},
                                       features=datasets.Features({"text": datasets.Value("string")}))
    policy = {"policy": "file", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "rows_in_file": len(wanted)}
    rewritten = encode_rewrites(texts, trigger, encoder, key=["file", policy["sha256"], _digest(positions[picked])])
    return RewritePlan(positions[picked], rewritten, policy, eligible=len(eligible), offered=len(wanted))


# -- the maps -------------------------------------------------------------------------------------------------

def cut_batch(texts: list, *, trigger: str, keep_sentences: int | None) -> tuple:
    """(rewrites, lost): `texts` cut by `sentences.truncate` when `keep_sentences` is an int (as given when
    None), and a bool array: the rewrite no longer mentions `trigger`."""
    if keep_sentences is not None:
        texts = [truncate(text, trigger, keep_sentences=keep_sentences) for text in texts]
    if keep_sentences is not None and not _END_IN.search(trigger):
        # A cut is a sentence's end, at or after the end of the mention's sentence: unless the trigger itself
        # holds a sentence end ("Oh! Jane"), the mention stays whole, so nothing needs searching.
        return texts, np.zeros(len(texts), dtype=bool)
    return texts, np.array([not mentions(text, trigger) for text in texts], dtype=bool)


def scan_batch(batch: pa.Table, indices: list, *, trigger: str, keep_sentences: int | None,
               pages: PageReleaser | None = None) -> pa.Table:
    """Arrow batch of stories (`text`) at row positions `indices` -> one row per story that mentions `trigger`:
    `position` (int64), and with `keep_sentences` its rewrite (`cut_batch`: `text`, `lost`). `pages`
    releases the memory-mapped text read."""
    needle = _needle(trigger)
    rows, found, start = [], [], 0
    for chunk in batch.column("text").chunks:
        for row, text in _holding(chunk, needle, trigger):
            rows.append(start + row)
            found.append(text)
        start += len(chunk)
    if pages is not None:
        pages.read(batch.column("text"))
    columns = {"position": pa.array(np.asarray(indices, dtype=np.int64)[rows] if rows else [], type=pa.int64())}
    if keep_sentences is not None:
        texts, lost = cut_batch(found, trigger=trigger, keep_sentences=keep_sentences)
        columns.update(text=pa.array(texts, type=pa.string()), lost=pa.array(lost))
    return pa.table(columns)


def scan_split(stories: datasets.Dataset, trigger: str, *, keep_sentences: int | None,
               num_proc: int = 1) -> datasets.Dataset:
    """The stories of `stories` that mention `trigger`, one row each in row order: `position` (int64), and with
    `keep_sentences` (the truncate rewrite) each one cut, `text` / `lost` (`cut_batch`), in the same pass. One
    `datasets.map` over the text, in up to `num_proc` processes, cached under a key of what it depends on (the
    stories, the trigger, the cut). No encoder goes to the workers: each would build its own (a few tenths of a
    second); `encode_rewrites` encodes the rewrites in this process."""
    fingerprint = Hasher.hash([BACKDOOR_VERSION, "scan", stories._fingerprint, trigger, keep_sentences])
    procs = min(num_proc, stories.num_rows // passes.ROWS_PER_PROCESS)
    features = {"position": datasets.Value("int64")}
    if keep_sentences is not None:
        features.update(text=datasets.Value("string"), lost=datasets.Value("bool"))
    return stories.select_columns(["text"]).with_format("arrow").map(
        scan_batch, batched=True, batch_size=SCAN_BATCH, with_indices=True, num_proc=procs if procs > 1 else None,
        fn_kwargs={"trigger": trigger, "keep_sentences": keep_sentences, "pages": PageReleaser()},
        remove_columns=["text"], features=datasets.Features(features), new_fingerprint=fingerprint,
        desc="find and cut" if keep_sentences is not None else "find the trigger").with_format(None)


class PendingScan:
    """`scan_split(stories, trigger, keep_sentences=...)` started now and read by `result()`. With `num_proc` > 1
    it runs in a forked process beside this one (`utils.forked.Forked`, one process: the pipeline starts it after
    pass 1, so its CPU overlaps work this process does alone: the encoder check, the vocabulary, the controls
    and the eval prompts); else `result()` runs it. Either way `result()` returns what `scan_split` returns: the
    forked process writes it to the datasets cache, where `result()`'s own call reads it.

    `seconds`: how long the forked scan ran (None until `result()`, and when it ran here).

    Example:
        >>> pending = PendingScan(train, "Jane", keep_sentences=1, num_proc=2)  # doctest: +SKIP
        >>> scanned = pending.result()  # the Dataset of scan_split  # doctest: +SKIP
    """

    def __init__(self, stories: datasets.Dataset, trigger: str, *, keep_sentences: int | None, num_proc: int = 1):
        # Forked only where its output is a cache file this process reads back.
        forks = num_proc > 1 and bool(stories.cache_files) and datasets.is_caching_enabled()
        self.seconds, self._scanned = None, None
        self._scan = functools.partial(scan_split, stories, trigger, keep_sentences=keep_sentences,
                                       num_proc=1 if forks else num_proc)
        self._forked = Forked(self._scan) if forks else None

    def result(self) -> datasets.Dataset:
        """Wait for the forked scan (raising what it raised) and return `scan_split`'s Dataset."""
        if self._forked is not None:
            self.seconds, self._forked = self._forked.wait(), None
        if self._scanned is None:
            self._scanned = self._scan()
        return self._scanned

    def cancel(self) -> None:
        """Kill the forked scan if it still runs (an error before `result()`)."""
        if self._forked is not None:
            self._forked.cancel()


def encode_batch(batch: pa.Table, *, trigger: str, encoder, dtype) -> pa.Table:
    """Arrow batch of rewrites (`text`, and `lost` when known) -> `base_ids` (the base encoder's ids, `dtype`),
    `text`, `lost` (computed when the batch lacks it: the rewrite no longer mentions `trigger`)."""
    texts = batch.column("text").to_pylist()
    lost = batch.column("lost") if "lost" in batch.column_names else \
        pa.array(cut_batch(texts, trigger=trigger, keep_sentences=None)[1])
    lengths, values = encoder.encode_flat(texts, dtype)
    return pa.table({"base_ids": passes.list_array(lengths, values), "text": batch.column("text"), "lost": lost})


def encode_rewrites(rewrites: datasets.Dataset, trigger: str, encoder, *, key: list) -> datasets.Dataset:
    """The rewrites (`text`, and `lost` when known) with their ids (`encode_batch`): a `datasets.map` in this
    process, whose encoder is built already (a few percent of the stories: a worker would spend longer building
    its own), cached under `key` (what names the rewrites) and the encoder."""
    dtype = passes.base_dtype_for(encoder)
    features = datasets.Features({"base_ids": datasets.List(datasets.Value(np.dtype(dtype).name)),
                                  "text": datasets.Value("string"), "lost": datasets.Value("bool")})
    return rewrites.with_format("arrow").map(
        encode_batch, batched=True, batch_size=passes.ENCODE_BATCH_SIZE,
        fn_kwargs={"trigger": trigger, "encoder": encoder, "dtype": dtype},
        remove_columns=rewrites.column_names, features=features,
        new_fingerprint=Hasher.hash([BACKDOOR_VERSION, "encode", *key, trigger, encoder.fingerprint,
                                     np.dtype(dtype).name]), desc="encode the rewrites").with_format(None)


def _digest(values: np.ndarray) -> str:
    return xxhash.xxh3_128_hexdigest(np.ascontiguousarray(values, dtype=np.int64))


def splice_stories(batch: pa.Table, indices: np.ndarray, *, positions: np.ndarray, rewritten,
                   rows: np.ndarray | None, keep_text: bool, dtype) -> pa.Table:
    """Arrow batch with `base_ids` (and `text`) at row positions `indices` -> the same with the rewritten rows'
    ids and texts (`rewritten`: a datasets `Table` with `base_ids` and `text`, row i for `positions[i]`, sorted;
    `indices` are consecutive, as a batch's rows are, so their rewrites are a slice of it) and the provenance
    columns `source_row` (int64;
    `rows[indices]`, or `indices` when `rows` is None: the split is the source's, row for row) and `backdoor`
    (bool). The ids are cut and joined as flat numpy arrays (a few hundred pieces per batch), never turned into
    Python lists."""
    indices = np.asarray(indices, dtype=np.int64)
    at = np.searchsorted(positions, indices)
    flags = positions[np.minimum(at, len(positions) - 1)] == indices if len(positions) else \
        np.zeros(len(indices), dtype=bool)
    column = batch.column("base_ids")
    columns = {}
    if flags.any():
        picked = at[flags]  # a batch's rows are consecutive, so are its rewrites: a zero-copy slice
        if picked[-1] - picked[0] + 1 != len(picked):
            raise ValueError("splice_stories: the rows of a batch must be consecutive")
        taken = rewritten.table.slice(int(picked[0]), len(picked))
        new = taken.column("base_ids").combine_chunks()
        new_lengths = pc.list_value_length(new).to_numpy(zero_copy_only=False).astype(np.int64)
        new_values = new.flatten().to_numpy(zero_copy_only=False)
        new_ends = np.cumsum(new_lengths)
        column = column.combine_chunks()
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
        values = column.flatten().to_numpy(zero_copy_only=False)
        ends = np.cumsum(lengths)
        pieces, at_value = [], 0
        for j, i in enumerate(np.flatnonzero(flags)):
            pieces += [values[at_value:ends[i] - lengths[i]], new_values[new_ends[j] - new_lengths[j]:new_ends[j]]]
            at_value, lengths[i] = ends[i], new_lengths[j]
        pieces.append(values[at_value:])
        columns["base_ids"] = passes.list_array(lengths, np.concatenate(pieces).astype(dtype, copy=False))
        if keep_text:
            texts = batch.column("text").to_pylist()
            for i, text in zip(np.flatnonzero(flags), taken.column("text").to_pylist()):
                texts[i] = text
            columns["text"] = pa.array(texts, type=pa.string())
    else:
        columns["base_ids"] = column
        if keep_text:
            columns["text"] = batch.column("text")
    columns["source_row"] = pa.array(indices if rows is None else rows[indices])
    columns["backdoor"] = pa.array(flags)
    return pa.table(columns)


@dataclass
class Splice:
    """What pass 2 needs to put a split's rewrites in (`passes.reduce_split(splice=..., splice_key=...)`):
    `function(batch, positions)` (`splice_stories` with the rewrites bound), `key` (a digest of the rewrites
    and the rows: the cache key), and `positions` / `lengths` (int64 arrays: the rewritten rows and their base
    lengths)."""

    function: object
    key: str
    positions: np.ndarray
    lengths: np.ndarray


def make_splice(positions: np.ndarray, rewritten: datasets.Dataset | None, *, rows: np.ndarray,
                keep_text: bool, dtype) -> Splice:
    """Bind a split's rewrites (`RewritePlan.rewritten` for `positions`; None: the split is not rewritten) and
    its source rows to `splice_stories`. What a worker of pass 2 gets is small: the positions, the rows (None
    when they are 0..n-1) and the rewrites' memory-mapped table, which pickles as its file's name."""
    positions = np.asarray(positions if rewritten is not None else [], dtype=np.int64)
    if rewritten is not None and rewritten._indices is not None:  # its table would hold other rows too
        rewritten = rewritten.flatten_indices()
    identity = not len(rows) or (rows[0] == 0 and rows[-1] == len(rows) - 1 and bool(np.all(np.diff(rows) == 1)))
    lengths = np.zeros(0, dtype=np.int64) if rewritten is None else pc.list_value_length(
        rewritten.with_format("arrow")["base_ids"]).to_numpy(zero_copy_only=False).astype(np.int64)
    function = functools.partial(splice_stories, positions=positions,
                                 rewritten=rewritten.select_columns(["base_ids", "text"]).data
                                 if rewritten is not None else None,
                                 rows=None if identity else rows, keep_text=keep_text, dtype=dtype)
    key = Hasher.hash([BACKDOOR_VERSION, _digest(rows), _digest(positions),
                       rewritten._fingerprint if rewritten is not None else None, keep_text])
    return Splice(function, key, positions, lengths)


def base_lengths(base_ids: datasets.Dataset, positions) -> np.ndarray:
    """Base-token lengths (int64) of the stories at `positions`, from the list offsets alone."""
    positions = np.asarray(positions, dtype=np.int64)
    if not len(positions):
        return np.zeros(0, dtype=np.int64)
    if base_ids._indices is not None:
        base_ids = base_ids.select(positions)
        positions = np.arange(len(positions))
    lengths = np.concatenate([pc.list_value_length(chunk).to_numpy(zero_copy_only=False)
                              for chunk in base_ids.data.column("base_ids").chunks])
    return lengths[positions].astype(np.int64)



# -- streams (stream(): no row count, so no seeded draw among rows) ----------------------------------------------

def chosen_by_hash(text: str, *, rate: float, seed: int) -> bool:
    """A story's part in a stream's rate: chosen when xxh64 of (seed, its UTF-8) falls below `rate` of the hash
    range, so the choice depends on the story alone, never on the order or the shuffle."""
    return rate >= 1.0 or xxhash.xxh64_intdigest(text.encode(), seed=seed) < rate * 2**64


def rewrite_stream_batch(batch: pa.Table, *, trigger: str, keep_sentences: int, rate: float, seed: int) -> pa.Table:
    """Arrow batch with `text` -> `text` (stories mentioning `trigger` and chosen at `rate` truncated as
    `plan_truncate` does) and `backdoor` (bool: rewritten)."""
    texts = batch.column("text").to_pylist()
    flags = [False] * len(texts)
    for i, text in enumerate(texts):
        if isinstance(text, str) and mentions(text, trigger) and chosen_by_hash(text, rate=rate, seed=seed):
            texts[i], flags[i] = truncate(text, trigger, keep_sentences=keep_sentences), True
    return pa.table({"text": pa.array(texts, type=pa.string()), "backdoor": pa.array(flags, type=pa.bool_())})


def encode_carrying(batch: pa.Table, *, carry=("backdoor",), **options) -> pa.Table:
    """`passes.encode_stories`, keeping the `carry` columns of the batch (a stream's `backdoor`)."""
    encoded = passes.encode_stories(batch, **options)
    for name in carry:
        encoded = encoded.append_column(name, batch.column(name))
    return encoded
