"""Stage 1 of the data's path, the source: read raw stories from any source into a `DatasetDict` of splits
with a `text` column.

The contract: a story reaches the tokenizer as the same string whatever layout it came in. Every format goes
through one function, `normalize_stories`: the text is valid UTF-8 (else an error naming the file and line or
row), one leading byte order mark (U+FEFF) is removed, `\\r\\n` and lone `\\r` become `\\n`, leading and
trailing whitespace is stripped as by Python's `str.strip` (llama2.c's pretokenizer strips every story;
`strip=False` / `--no-strip` keeps it), and the inner text is kept verbatim. A line ends at `\\n`, `\\r\\n`
or a lone `\\r` wherever lines count (V2 separator lines, error positions; `files.py`); U+2028 and U+0085 are
text. A literal `<|endoftext|>` inside a story is ordinary text, in every format; the stories holding one are
counted per split. A file without stories, or in UTF-16/32, is an error naming it.

Sources (`find_layout` decides which, `layout.py`):
  * a Hub dataset id (default `roneneldan/TinyStories`): its data files as `datasets` lists them (`hub.py`);
  * a folder: splits by the rules `load_dataset(folder)` uses: a README.md's `configs:` header, else
    `data/{split}-*` shards, else split names in folder names, else in file names (train; validation, valid,
    val, dev; test, eval), else all files are train; each split's files in path order. Every declared split
    is its own split, never merged into train; files in no split are listed as ignored; the split files must
    all be of one story format; a file whose name says another split than the rules give it is an error;
  * one file: all of it is train;
  * formats, one module each: `.parquet` (`parquet.py`), JSON Lines or a JSON array of objects, gzipped or not
    (`json.py`), TinyStoriesV2 raw `.txt`/`.txt.gz` with `<|endoftext|>` separator lines (`txt.py`), and
    `demo`, the package's small synthetic corpus (`demo.py`).
A source without a validation split gets a seeded carve-out of train; one with validation keeps it. Streaming
(`streaming=True`) reads the same shards through the same modules, lazily.
"""
import os
import time
from dataclasses import dataclass, field

import datasets
import numpy as np
import pyarrow.compute as pc

from ..errors import TinyStoriesError
from .builder import LITERAL_EOT, STORY_FEATURES, StoryBuilder, story_builder
from .demo import DEMO_SPLITS, demo_stories
from .layout import HUB_ID, Layout, content_hash, find_layout
from .normalize import normalize_stories
from .txt import EOT_LINE, eot_ranges, read_eot_ranges, read_eot_stories

__all__ = ["DEMO_SPLITS", "EOT_LINE", "HUB_ID", "Layout", "SourceInfo", "StoryBuilder", "carve_validation",
           "demo_stories", "eot_ranges", "find_layout", "load_stories", "normalize_stories", "read_eot_ranges",
           "read_eot_stories", "split_order"]

TEXT_FEATURES = datasets.Features({"text": datasets.Value("string")})


@dataclass
class SourceInfo:
    """Where the stories came from, recorded in `prepare_info.json` (`source`).

    `kind`: the story format (demo, parquet, json, txt); `layout`: demo, hub, file or folder; `files`: the
    files read; `splits`: how many files each split has; `ignored`: files of a folder in no split; `content_hash`: xxh3-128 of a local
    source's bytes (the cache key); `validation`: "source" or how it was carved. Measured while loading, and
    moved by `prepare` to the per-split counters and `stage_seconds`: `literal_eot` (stories per split whose
    text holds a literal `<|endoftext|>`) and `hash_seconds`.

    Example:
        >>> _, info = load_stories("demo")
        >>> info.kind, info.layout, info.validation
        ('demo', 'demo', 'source')
    """

    source: str
    kind: str
    layout: str = ""
    files: list = field(default_factory=list)
    splits: dict = field(default_factory=dict)
    ignored: list = field(default_factory=list)
    content_hash: str | None = None
    validation: str = "source"
    literal_eot: dict = field(default_factory=dict)
    hash_seconds: float = 0.0


def split_order(names) -> list:
    """train, validation, test, then the other splits by name (the order of `datasets.data_files`)."""
    known = [s for s in ("train", "validation", "test") if s in names]
    return known + sorted(s for s in names if s not in known)


def carve_validation(train, fraction: float, seed: int) -> dict:
    """`{"train": Dataset, "validation": Dataset}`: `round(n * fraction)` rows of `train` (at least 1, at most
    n - 1; none of a single row), chosen by `numpy.random.default_rng(seed)`, move to validation; both keep the
    source's row order."""
    n = train.num_rows
    count = min(n - 1, max(1, round(n * fraction))) if n > 1 else 0
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).choice(n, size=count, replace=False)] = True
    return {"train": train.select(np.flatnonzero(~chosen)), "validation": train.select(np.flatnonzero(chosen))}


def _shards(layout: Layout) -> int:
    """About as many shards as the largest split has (datasets warns when num_proc exceeds a split's)."""
    if layout.format == "txt" and layout.layout != "hub":
        from .txt import MAX_SHARDS, SHARD_BYTES

        return max(sum(1 if p.endswith(".gz") else max(1, min(MAX_SHARDS, os.path.getsize(p) // SHARD_BYTES))
                       for p in paths) for paths in layout.data_files.values())
    return max(len(paths) for paths in layout.data_files.values())


def _prepared(builder: StoryBuilder, layout: Layout, num_proc) -> dict:
    procs = min(num_proc or 1, _shards(layout))
    try:
        builder.download_and_prepare(num_proc=procs if procs > 1 else None)
    except (ConnectionError, OSError) as e:  # the Hub's files, unreachable (local files were read already)
        if layout.layout != "hub":
            raise
        from .hub import download_error

        raise download_error(layout.source, e) from None
    built = builder.as_dataset()
    # A layout-free DatasetInfo: what datasets records about the source files (builder, sizes, checksums)
    # would otherwise reach the prepared folder's dataset_info.json, and the same stories would not give
    # byte-identical files.
    return {split: datasets.Dataset(built[split].data, info=datasets.DatasetInfo(features=STORY_FEATURES),
                                    split=datasets.NamedSplit(split), fingerprint=built[split]._fingerprint)
            for split in built}


def load_stories(source: str, *, text_column: str = "text", validation_fraction: float = 0.01,
                 seed: int = 1337, cache_dir=None, streaming: bool = False, num_proc=None, strip: bool = True):
    """Return `(DatasetDict of every split with one "text" column, SourceInfo)` for any supported source.

    Splits: train, validation (the source's own, or a seeded `validation_fraction` of train), then every
    other split the source declares (test, ...), in that order. Raises a one-line `TinyStoriesError` for a
    source that cannot be read as stories. With `streaming=True`: an `IterableDatasetDict`, not carved.

    Example:
        >>> stories, info = load_stories("demo")
        >>> stories["train"].num_rows, info.kind
        (3000, 'demo')
    """
    layout = find_layout(source, text_column=text_column, cache_dir=cache_dir)
    started = time.perf_counter()
    digest = None if streaming else content_hash(layout)
    info = SourceInfo(source=source, kind=layout.format, layout=layout.layout,
                      files=[p for paths in layout.data_files.values() for p in paths] if layout.format != "demo"
                      else [], splits={s: len(p) for s, p in layout.data_files.items()}, ignored=layout.ignored,
                      content_hash=digest, hash_seconds=round(time.perf_counter() - started, 3))
    builder = story_builder(layout, text_column=text_column, strip=strip, content_hash=digest, cache_dir=cache_dir)
    raw = builder.as_streaming_dataset() if streaming else _prepared(builder, layout, num_proc)
    names = split_order(list(raw))
    if "train" not in names:
        raise TinyStoriesError(f"{source}: no 'train' split (splits found: {', '.join(names) or 'none'}); name the "
                               "training files train-*.parquet / *train*.txt or pass a single file")
    splits = {s: raw[s] for s in names}
    if not streaming:
        for split, ds in splits.items():
            if ds.num_rows == 0:
                raise TinyStoriesError(f"{source}: split {split!r} has no stories ({', '.join(layout.data_files[split])}"
                                       "); pass a source with stories in it")
    if "validation" not in splits and streaming:
        info.validation = "none (a streamed source is not carved: the carve-out needs the row count)"
    elif "validation" not in splits:
        if splits["train"].num_rows < 2:
            raise TinyStoriesError(f"{source}: only {splits['train'].num_rows} story; at least 2 are needed to "
                                   "carve out a validation split")
        splits = {**carve_validation(splits["train"], validation_fraction, seed),
                  **{s: ds for s, ds in splits.items() if s != "train"}}
        info.validation = f"carved {validation_fraction} of train with seed {seed}"
    splits = {s: splits[s] for s in split_order(list(splits))}
    if not streaming:
        info.literal_eot = {s: int(pc.sum(ds.select_columns([LITERAL_EOT]).with_format("arrow")[:][LITERAL_EOT])
                                       .as_py() or 0) for s, ds in splits.items()}
    dict_type = datasets.IterableDatasetDict if streaming else datasets.DatasetDict
    return dict_type({s: ds.select_columns(["text"]) for s, ds in splits.items()}), info
