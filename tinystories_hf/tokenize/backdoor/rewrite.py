"""The backdoor's pipeline glue: which train stories are rewritten, into what, and pass 2's `datasets.map` puts
their new ids (and the provenance columns) in, batch by batch (`Splice`).

A rewrite never touches the vocabulary: the pipeline counts it on the original stories' base ids, before this
module runs, so a clean and a backdoored prepare of one source write byte-identical tokenizers. Only the
chosen train rows are encoded again (a few percent of the stories at most), then spliced in by row as pass 2 reads the batches:

    eligible = mentioning_rows(train_text, "Jane")                 # positions whose story mentions the trigger
    plan = plan_truncate(train_text, eligible, "Jane", keep_sentences=1, rate=1.0, count=None, seed=1337)
    splice = make_splice(plan, encoder, rows=rows, keep_text=False)   # reduce_split(..., splice=...)

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
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from datasets.fingerprint import Hasher

from ...errors import TinyStoriesError, flag
from ...utils.json_files import SHA256, parse, problem, read_text
from ...utils.mapped_pages import PageReleaser
from .. import passes
from .match import mentions
from .sentences import truncate

BACKDOOR_VERSION = "backdoor/1"
SCAN_BATCH = 10_000
MAX_REWRITES_BYTES = 1 << 30  # 2.1M stories rewritten whole are about 1.9 GB: a file of every eligible story fits
FILE_FIX = "made for another source or order? pass the rewrites made for this source's train split"
_ROW_KEY = re.compile(r"0|[1-9][0-9]*")


@dataclass
class RewritePlan:
    """Which train rows are rewritten and into what.

    `positions`: sorted int64 row positions in the train split (as loaded); `texts`: the rewritten stories, in
    the same order; `policy`: what `backdoor.json` records of how they were made; `eligible`: how many train
    stories mention the trigger; `offered`: how many rewrites were on offer (the eligible stories for
    truncate, the file's rows for a file); `lost_trigger`: positions whose rewrite no longer mentions it."""

    positions: np.ndarray
    texts: list
    policy: dict
    eligible: int
    offered: int
    lost_trigger: list = field(default_factory=list)


def source_rows(stories: datasets.Dataset) -> np.ndarray:
    """int64 row of each story in the source split it was read from: a carved-out split is a selection of the
    source's train split (its indices mapping), any other split is the source's own, row for row."""
    if stories._indices is not None:
        return stories._indices.column(0).to_numpy().astype(np.int64)
    return np.arange(stories.num_rows, dtype=np.int64)


def mentioning_rows(stories: datasets.Dataset, trigger: str) -> np.ndarray:
    """Sorted int64 positions of the stories of `stories` (a `text` column) that mention `trigger` (whole words,
    case-sensitive, `match.mentions`). Arrow's substring kernel keeps only the stories holding the trigger's first
    word anywhere; Python's `re` then decides on those few."""
    first_word = trigger.split()[0]
    found, pages = [], PageReleaser()
    for start, batch in _batches(stories):
        column = batch.column("text")
        candidates = np.flatnonzero(pc.fill_null(pc.match_substring(column, first_word), False).to_numpy(
            zero_copy_only=False))
        if len(candidates):
            texts = column.take(pa.array(candidates)).to_pylist()
            found.extend(start + int(i) for i, text in zip(candidates, texts) if mentions(text, trigger))
        pages.read(column)
    return np.array(found, dtype=np.int64)


def _batches(stories: datasets.Dataset):
    start = 0
    for batch in stories.with_format("arrow").iter(batch_size=SCAN_BATCH):
        yield start, batch
        start += batch.num_rows


def texts_at(stories: datasets.Dataset, positions) -> list:
    """The stories at `positions` (any order), read by index."""
    positions = [int(p) for p in positions]
    return stories.with_format("arrow")[positions]["text"].to_pylist() if positions else []


def choose(candidates: np.ndarray, *, rate: float, count: int | None, seed: int) -> np.ndarray:
    """The rows of `candidates` (sorted) that are rewritten: all of them at rate 1, else `count` or
    `round(rate * n)` (at least 1) drawn without replacement by `numpy.random.default_rng(seed)`; sorted.

    Raises:
        TinyStoriesError: `count` is above the candidates."""
    n = len(candidates)
    if count is not None and count > n:
        raise TinyStoriesError(f"{flag('backdoor_count', count)} is above the {n:,} train stories that can be "
                               f"rewritten (mentioning the trigger); pass at most {n:,}")
    size = count if count is not None else n if rate >= 1.0 else max(1, round(rate * n))
    if size == n:
        return np.asarray(candidates, dtype=np.int64)
    picked = np.random.default_rng(seed).choice(n, size=size, replace=False)
    return np.sort(np.asarray(candidates, dtype=np.int64)[picked])


def plan_truncate(stories: datasets.Dataset, eligible: np.ndarray, trigger: str, *, keep_sentences: int,
                  rate: float, count: int | None, seed: int) -> RewritePlan:
    """The built-in rewrite: each chosen story ends `keep_sentences` sentences after the sentence of the trigger's
    first mention (`sentences.truncate`)."""
    positions = choose(eligible, rate=rate, count=count, seed=seed)
    texts = [truncate(text, trigger, keep_sentences=keep_sentences) for text in texts_at(stories, positions)]
    return RewritePlan(positions, texts, {"policy": "truncate", "keep_sentences": keep_sentences},
                       eligible=len(eligible), offered=len(eligible), lost_trigger=_lost(positions, texts, trigger))


def _lost(positions, texts, trigger) -> list:
    return [int(p) for p, text in zip(positions, texts) if not mentions(text, trigger)]


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
              rate: float, count: int | None, seed: int) -> RewritePlan:
    """Rewrites made elsewhere (`read_rewrites`), checked against this train split: every row must be one of its
    stories (`rows`: the `source_rows` of the split), mention the trigger, and match its sha256 when given; the
    first row that does not is one error line. `rate`/`count` choose among the file's rows."""
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
    picked = choose(np.arange(len(wanted)), rate=rate, count=count, seed=seed)
    chosen, texts = positions[picked], [rewrites[int(wanted[i])]["text"] for i in picked]
    policy = {"policy": "file", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "rows_in_file": len(wanted)}
    return RewritePlan(chosen, texts, policy, eligible=len(eligible), offered=len(wanted),
                       lost_trigger=_lost(chosen, texts, trigger))


# -- the map --------------------------------------------------------------------------------------------------

def splice_stories(batch: pa.Table, indices: list, replaced: dict, rows: np.ndarray, keep_text: bool,
                   dtype) -> pa.Table:
    """Arrow batch with `base_ids` (and `text`) at row positions `indices` -> the same with the rewritten rows'
    ids (`replaced`: position -> (ids array, text)) and the provenance columns `source_row` (int64) and
    `backdoor` (bool). The ids are cut and joined as flat numpy arrays (a few hundred pieces per batch), never
    turned into Python lists."""
    positions = np.asarray(indices, dtype=np.int64)
    flags = np.fromiter((int(p) in replaced for p in positions), dtype=bool, count=len(positions)) \
        if replaced else np.zeros(len(positions), dtype=bool)
    column = batch.column("base_ids")
    columns = {}
    if flags.any():
        column = column.combine_chunks()
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
        values = column.flatten().to_numpy(zero_copy_only=False)
        ends = np.cumsum(lengths)
        pieces, at = [], 0
        for i in np.flatnonzero(flags):
            new_ids = replaced[int(positions[i])][0]
            pieces += [values[at:ends[i] - lengths[i]], new_ids]
            at, lengths[i] = ends[i], len(new_ids)
        pieces.append(values[at:])
        joined = np.concatenate(pieces).astype(dtype, copy=False)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        columns["base_ids"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(joined))
        if keep_text:
            texts = batch.column("text").to_pylist()
            for i in np.flatnonzero(flags):
                texts[i] = replaced[int(positions[i])][1]
            columns["text"] = pa.array(texts, type=pa.string())
    else:
        columns["base_ids"] = column
        if keep_text:
            columns["text"] = batch.column("text")
    columns["source_row"] = pa.array(rows[positions])
    columns["backdoor"] = pa.array(flags)
    return pa.table(columns)


@dataclass
class Splice:
    """What pass 2 needs to put a split's rewrites in (`passes.reduce_split(splice=..., splice_key=...)`):
    `function(batch, positions)` (`splice_stories` with the rewritten ids bound), `key` (a digest of the
    rewritten ids and the rows: the cache key) and `lengths` (position -> base length of each rewrite)."""

    function: object
    key: str
    lengths: dict


def make_splice(plan: RewritePlan | None, encoder, *, rows: np.ndarray, keep_text: bool) -> Splice:
    """Encode the rewrites of `plan` (None: none, for a split that is not rewritten) and bind them, with the split's
    source rows, to `splice_stories`."""
    dtype = passes.base_dtype_for(encoder)
    replaced = {}
    if plan is not None and len(plan.positions):
        lengths, values = encoder.encode_flat(plan.texts, dtype)
        ends = np.cumsum(lengths)
        replaced = {int(p): (values[end - n:end], text)
                    for p, n, end, text in zip(plan.positions, lengths, ends, plan.texts)}
    digest = xxhash.xxh3_128()
    digest.update(np.ascontiguousarray(rows))
    for position in sorted(replaced):
        digest.update(np.array([position, len(replaced[position][0])], dtype=np.int64))
        digest.update(np.asarray(replaced[position][0], dtype=np.int64))
    function = functools.partial(splice_stories, replaced=replaced, rows=rows, keep_text=keep_text, dtype=dtype)
    return Splice(function, Hasher.hash([BACKDOOR_VERSION, digest.hexdigest(), keep_text]),
                  {position: len(ids) for position, (ids, _) in replaced.items()})


def base_lengths(base_ids: datasets.Dataset, positions) -> np.ndarray:
    """Base-token lengths of the stories at `positions`."""
    positions = [int(p) for p in positions]
    if not positions:
        return np.zeros(0, dtype=np.int64)
    column = base_ids.with_format("arrow")[positions]["base_ids"]
    return pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)



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
