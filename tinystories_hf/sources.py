"""Step 1 of the data's path: read raw stories from wherever they are into a train/validation `DatasetDict`.

Every source ends up as splits `train` and `validation` with one string column `text`:
  * a Hub dataset id (default `roneneldan/TinyStories`) or a local folder in the Hub repo layout,
    both through `datasets.load_dataset`;
  * `.parquet`, `.jsonl`/`.json` files;
  * TinyStoriesV2 raw `.txt` files (each story followed by a line `<|endoftext|>`), read line by line;
  * `demo`, the package's small synthetic corpus.
A source with only a train split gets a seeded validation carve-out.
"""
import gzip
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .demo import DEMO_SPLITS, demo_stories
from .errors import TinyStoriesError, require_hub
from .mapped_pages import PageReleaser

EOT_LINE = "<|endoftext|>"
TEXT_FEATURES = datasets.Features({"text": datasets.Value("string")})
JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
TXT_SUFFIXES = (".txt",)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What datasets/pyarrow raise on a file that is not what its name says (garbage parquet, broken gzip, an
# empty JSON file, a folder without data files): reported as one line naming the file, never a traceback.
UNREADABLE = (datasets.data_files.EmptyDatasetError, pa.ArrowException, gzip.BadGzipFile, zlib.error, EOFError,
              UnicodeDecodeError, StopIteration)
TXT_SHARD_BYTES = 1 << 20  # streaming shards of a V2 .txt file: at least this many bytes each ...
TXT_MAX_SHARDS = 64  # ... and at most this many per file (64 divides evenly among 2, 4, 8, ... ranks)


@dataclass
class SourceInfo:
    """Where the stories came from, recorded in `prepare_info.json`."""

    source: str
    kind: str  # demo | hub | folder | parquet | json | txt
    files: list = field(default_factory=list)
    validation: str = "source"  # "source" or "carved <fraction> seed <seed>"


def _split_of(path: Path) -> str:
    name = path.name.lower()
    return "validation" if re.search(r"valid|(^|[-_.])(dev|val)([-_.]|$)", name) else "train"


def read_eot_stories(paths):
    """Yield `{"text": story}` from TinyStoriesV2 raw files, streaming line by line.

    Line endings are normalised to `\\n`; stories are stripped; an empty story between two separators is
    yielded as "" so that it is counted (and skipped) downstream rather than silently lost.

    Example:
        >>> next(read_eot_stories(["TinyStoriesV2-GPT4-valid.txt"]))["text"][:16]  # doctest: +SKIP
        'Once upon a time'
    """
    for path in paths:
        yield from _read_eot_range(path)


def read_eot_ranges(ranges, stamp: str = ""):
    """Yield `{"text": story}` from `(path, start, end)` byte ranges made by `eot_ranges` (the shards of
    streaming and of the parallel conversion). `stamp` (paths, sizes, mtimes) is unused here: it is part
    of the datasets cache key, so an edited file is read again."""
    for path, start, end in ranges:
        yield from _read_eot_range(path, start, end)


def _read_eot_range(path, start: int = 0, end: int | None = None):
    with open(path, "rb") as f:
        f.seek(start)
        offset, lines, pending = start, [], False
        for raw in f:
            if end is not None and offset >= end:  # `end` is a story start: nothing is pending here
                break
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TinyStoriesError(
                    f"{path}: not valid UTF-8 at byte offset {offset + e.start}; "
                    "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
            offset += len(raw)
            if line.strip() == EOT_LINE:
                yield {"text": "".join(lines).strip()}
                lines, pending = [], False
            else:
                lines.append(line.rstrip("\r\n") + "\n")
                pending = pending or bool(line.strip())
        if pending:
            yield {"text": "".join(lines).strip()}


def eot_ranges(path, *, shard_bytes: int = TXT_SHARD_BYTES, max_shards: int = TXT_MAX_SHARDS) -> list:
    """Cut a V2 .txt file into `(path, start, end)` byte ranges that each begin at a story start.

    Streaming uses them as shards, so DataLoader workers and DDP ranks split even a single file. Reading the
    ranges one after another gives exactly the stories of the whole file: a cut is placed just after a
    separator line, found by reading forward from an evenly spaced offset (a few KB per cut).

    Example:
        >>> eot_ranges("TinyStoriesV2-GPT4-train.txt")[:2]  # doctest: +SKIP
        [('TinyStoriesV2-GPT4-train.txt', 0, 34781932), ('TinyStoriesV2-GPT4-train.txt', 34781932, 69563410)]
    """
    size = os.path.getsize(path)
    parts = max(1, min(max_shards, size // shard_bytes))
    starts = [0]
    with open(path, "rb") as f:
        for j in range(1, parts):
            f.seek(max(size * j // parts, starts[-1]))
            f.readline()  # to the next line start
            for raw in iter(f.readline, b""):
                if raw.decode("utf-8", "replace").strip() == EOT_LINE:
                    break
            if starts[-1] < f.tell() < size:
                starts.append(f.tell())
    return [(str(path), a, b) for a, b in zip(starts, starts[1:] + [size])]


def _txt_dataset(paths, split, cache_dir, streaming, num_proc=None):
    # One shard per byte range: stream workers, and the processes converting it, share even one big file.
    ranges = [r for p in paths for r in eot_ranges(p)]
    if streaming:
        return datasets.IterableDataset.from_generator(read_eot_ranges, features=TEXT_FEATURES,
                                                       gen_kwargs={"ranges": ranges}, split=split)
    stamp = ";".join(f"{p}:{os.path.getsize(p)}:{os.stat(p).st_mtime_ns}" for p in paths)
    try:
        return datasets.Dataset.from_generator(read_eot_ranges, features=TEXT_FEATURES, split=split,
                                               gen_kwargs={"ranges": ranges, "stamp": stamp}, cache_dir=cache_dir,
                                               num_proc=_procs(num_proc, len(ranges)))
    except datasets.exceptions.DatasetGenerationError as e:
        if isinstance(e.__cause__, TinyStoriesError):
            raise e.__cause__ from None
        raise
    except ValueError as e:  # datasets: 'Instruction "train" corresponds to no data!'
        if "corresponds to no data" not in str(e):
            raise
        raise TinyStoriesError(f"{', '.join(map(str, paths))}: no stories found (the file is empty or holds only "
                               f"{EOT_LINE} lines)") from None


def _demo(streaming):
    if streaming:
        return datasets.IterableDatasetDict({
            split: datasets.IterableDataset.from_generator(demo_stories, features=TEXT_FEATURES,
                                                           gen_kwargs={"split": split})
            for split in DEMO_SPLITS})
    return datasets.DatasetDict({
        split: datasets.Dataset.from_list(list(demo_stories(split)), features=TEXT_FEATURES)
        for split in DEMO_SPLITS})


def _procs(num_proc, shards):
    """Processes for converting `shards` files into datasets' Arrow cache (None = in this process)."""
    return min(num_proc, shards) if num_proc and num_proc > 1 and shards > 1 else None


def _load(path_or_builder, *, data_files=None, cache_dir=None, streaming=False, num_proc=None, shards=1):
    try:
        return datasets.load_dataset(path_or_builder, data_files=data_files, cache_dir=cache_dir,
                                     streaming=streaming, num_proc=None if streaming else _procs(num_proc, shards))
    except (datasets.exceptions.DatasetGenerationError, *UNREADABLE) as e:
        cause = e.__cause__ or e
        where = ", ".join(data_files.values()) if data_files else path_or_builder
        reason = str(cause).splitlines()[0] if str(cause) else "no rows"
        raise TinyStoriesError(f"could not read {where}: {type(cause).__name__}: {reason}") from None


def _hub(source, cache_dir, streaming, num_proc):
    require_hub(f"could not load Hub dataset {source!r}", "pass a local copy with --source PATH or try --source demo, "
                "or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face cache")
    try:
        return datasets.load_dataset(source, cache_dir=cache_dir, streaming=streaming,
                                     num_proc=None if streaming else _procs(num_proc, 2))
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TinyStoriesError(
            f"could not load Hub dataset {source!r} ({reason}); if the Hub is unreachable, pass a local "
            "copy with --source PATH or try the built-in corpus with --source demo") from None


def _check_parquet_rows(files) -> None:
    """datasets fails on a zero-row parquet file with 'BatchSize must be greater than 0'; say what it is."""
    for f in files:
        try:
            rows = pq.read_metadata(f).num_rows
        except pa.ArrowException as e:
            raise TinyStoriesError(f"could not read {f}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
        if rows == 0:
            raise TinyStoriesError(f"{f}: the parquet file has no rows; remove it or pass a file with stories")


def _local(path: Path, cache_dir, streaming, num_proc):
    if path.is_dir():
        txt = sorted(p for p in path.rglob("*") if p.suffix in TXT_SUFFIXES and p.is_file())
        if txt and not any(p.suffix in (".parquet", ".json", ".jsonl", ".arrow", ".csv") for p in path.rglob("*")):
            splits = {}
            for p in txt:
                splits.setdefault(_split_of(p), []).append(p)
            return _dict(streaming)({s: _txt_dataset(ps, s, cache_dir, streaming, num_proc)
                                     for s, ps in splits.items()}), "txt", txt
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        _check_parquet_rows(f for f in files if f.endswith(PARQUET_SUFFIXES))
        train_files = sum(_split_of(Path(f)) == "train" and "train" in Path(f).name for f in files)
        return _load(str(path), cache_dir=cache_dir, streaming=streaming, num_proc=num_proc,
                     shards=train_files), "folder", files
    if path.stat().st_size == 0:
        raise TinyStoriesError(f"{path}: the file is empty; pass a file with stories")
    name = path.name.lower()
    if name.endswith(TXT_SUFFIXES):
        return _dict(streaming)({"train": _txt_dataset([path], "train", cache_dir, streaming, num_proc)}), "txt", [path]
    if name.endswith(PARQUET_SUFFIXES):
        builder, kind = "parquet", "parquet"
        _check_parquet_rows([path])
    elif name.endswith(JSON_SUFFIXES):
        builder, kind = "json", "json"
    else:
        raise TinyStoriesError(f"{path}: unsupported file type; use .parquet, .jsonl, .json or a "
                               "TinyStoriesV2 .txt file")
    return _load(builder, data_files={"train": str(path)}, cache_dir=cache_dir, streaming=streaming), kind, [path]


def _dict(streaming):
    return datasets.IterableDatasetDict if streaming else datasets.DatasetDict


def _text_parts(ds, column: str) -> list:
    """The column's Arrow chunks in one contiguous part per CPU, to check them in parallel threads."""
    chunks = ds.data.column(column).chunks
    size = max(1, -(-len(chunks) // (os.cpu_count() or 1)))
    return [chunks[i:i + size] for i in range(0, len(chunks), size)]


def _first_invalid_utf8(chunks) -> tuple:
    """(rows, None) if all chunks hold valid UTF-8, else (rows before the first bad chunk, (the bad row's
    index in that chunk or None if pyarrow does not say, the chunk's length))."""
    rows, pages = 0, PageReleaser()  # the text is read once: keep its pages out of this process's RSS
    for chunk in chunks:
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid as e:
            found = re.search(r"index (\d+)", str(e))
            return rows, (int(found.group(1)) if found else None, len(chunk))
        rows += len(chunk)
        pages.read(chunk)
    return rows, None


def _check_text(ds, text_column: str, split: str, source: str) -> None:
    """A loaded split must have rows, a string column, and valid UTF-8 (pyarrow's JSON and parquet readers
    do not check it, and a bad byte would otherwise crash tokenization far from its file)."""
    if ds.num_rows == 0:
        raise TinyStoriesError(f"{source}: split {split!r} has no rows; pass a source with stories in it")
    feature = ds.features[text_column]
    if isinstance(feature, datasets.Json):  # datasets' type for a JSON field that mixes strings and other types
        raise TinyStoriesError(f"{source}: column {text_column!r} of split {split!r} mixes strings with numbers, "
                               "lists or objects; make every story a JSON string (null is allowed)")
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise TinyStoriesError(f"{source}: column {text_column!r} of split {split!r} holds {feature}, not text; "
                               "pass the story column with --text-column NAME")
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:  # pyarrow validates without the GIL
        checked = list(pool.map(_first_invalid_utf8, _text_parts(ds, text_column)))
    before = 0  # rows in the parts before this one
    for rows, bad in checked:
        if bad:
            index, size = bad
            where = f"row {before + rows + index}" if index is not None else \
                f"rows {before + rows}..{before + rows + size - 1}"
            raise TinyStoriesError(f"{source}: split {split!r} {where} is not valid UTF-8; re-encode the "
                                   "source as UTF-8")
        before += rows


def _text_only(ds, text_column: str, split: str, source: str):
    columns = list(ds.column_names or ds.features or [])
    if text_column not in columns:
        raise TinyStoriesError(f"{source}: split {split!r} has no column {text_column!r} (columns found: "
                               f"{', '.join(columns) or 'none'}); pass --text-column NAME")
    if isinstance(ds, datasets.Dataset):
        _check_text(ds, text_column, split, source)
    ds = ds.select_columns([text_column])
    return ds.rename_column(text_column, "text") if text_column != "text" else ds


def carve_validation(train, fraction: float, seed: int) -> dict:
    """Move a seeded `fraction` of `train` to validation; both keep the source's row order."""
    n = train.num_rows
    count = min(n - 1, max(1, round(n * fraction))) if n > 1 else 0
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).choice(n, size=count, replace=False)] = True
    return {"train": train.select(np.flatnonzero(~chosen)), "validation": train.select(np.flatnonzero(chosen))}


def load_stories(source: str, *, text_column: str = "text", validation_fraction: float = 0.01,
                 seed: int = 1337, cache_dir=None, streaming: bool = False, num_proc=None):
    """Return `(DatasetDict(train, validation) with a "text" column, SourceInfo)` for any supported source.

    Example:
        >>> stories, info = load_stories("demo")
        >>> stories["train"].num_rows, info.kind
        (3000, 'demo')
    """
    path = Path(source).expanduser()
    if source == "demo":
        raw, kind, files = _demo(streaming), "demo", []
    elif path.exists():
        raw, kind, files = _local(path, cache_dir, streaming, num_proc)
    elif HUB_ID.match(source) and not source.lower().endswith(JSON_SUFFIXES + PARQUET_SUFFIXES + TXT_SUFFIXES):
        raw, kind, files = _hub(source, cache_dir, streaming, num_proc), "hub", []
    else:
        raise TinyStoriesError(f"source {source!r} not found: no such file or folder (pass an existing path, "
                               "a Hub dataset id like roneneldan/TinyStories, or 'demo')")

    if "train" not in raw:
        raise TinyStoriesError(f"{source}: no 'train' split (splits found: {', '.join(raw) or 'none'}); "
                               "name the training files train-*.parquet / *train*.txt or pass a single file")
    info = SourceInfo(source=source, kind=kind, files=[str(f) for f in files])
    splits = {s: _text_only(raw[s], text_column, s, source) for s in ("train", "validation") if s in raw}
    if "validation" not in splits and streaming:
        info.validation = "none (a streamed source is not carved: the carve-out needs the row count)"
    elif "validation" not in splits:
        if splits["train"].num_rows < 2:
            raise TinyStoriesError(f"{source}: only {splits['train'].num_rows} story; at least 2 are needed to "
                                   "carve out a validation split")
        splits = carve_validation(splits["train"], validation_fraction, seed)
        info.validation = f"carved {validation_fraction} of train with seed {seed}"
    return _dict(streaming)(splits), info
