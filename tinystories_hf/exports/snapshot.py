"""The prepared folder an export reads, read once and bound to what was checked.

A prepared folder is untrusted input (copied, downloaded, edited): `read_snapshot` runs `load_prepared`'s
checks (`store.read_prepared`), then opens each split's Arrow files itself, hashes them and compares the
sha256 that `prepare_info.json` records (`data_files`), and reads the ids from those same open files. So the
ids exported are the bytes hashed, and `export_info.json` names the folder it was exported from by what was
read at the start (vocabulary hash, split fingerprints, the data files' sha256), even when the folder is
replaced or edited while the export runs. Split names become file names (`{split}.bin`,
`{name}_{split}_text_document`): only plain ones (datasets' own rule, `utils.json_files.split_name`, checked
when `prepare_info.json` and `dataset_dict.json` are read) are accepted.

A folder in the Hub layout (`tinystories-push --to-folder`) has no recorded hash for its parquet shards: its
ids are read from datasets' cache of them, checked against the vocabulary as every export's are.
"""
import hashlib
import json
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import TinyStoriesError
from ..store.folder import PREPARE_INFO, RECREATE
from ..store.load import is_hub_layout, read_prepared
from ..utils.json_files import SPLIT_WANTED, split_name

_BLOCK = 1 << 20


def check_split_name(split, folder: Path) -> str:
    """`split` if it is a plain name (letters, digits, `_`, inner dots), else a one-line `TinyStoriesError`:
    a name read from a folder (`../../escape`) must never become a path outside the export's output.

    Example:
        >>> check_split_name("validation", Path("ts"))
        'validation'
    """
    if not split_name(split):
        raise TinyStoriesError(f"{folder}: split name {split!r} (dataset_dict.json, {PREPARE_INFO}) is not "
                               f"{SPLIT_WANTED}; the folder was altered, {RECREATE}")
    return split


@dataclass
class Split:
    """One split as the export reads it: its Arrow data as `[(file, pyarrow.Table)]` in row order.

    Example:
        >>> split = read_snapshot("ts").splits["validation"]  # doctest: +SKIP
        >>> split.num_rows, split.lengths.dtype, split.parts[0][0].name  # doctest: +SKIP
        (21990, dtype('int64'), 'data-00000-of-00001.arrow')
    """

    name: str
    parts: list
    num_rows: int = 0
    _lengths: np.ndarray | None = field(default=None, repr=False)

    @property
    def lengths(self) -> np.ndarray:
        """Every story's `length` (int64), as stored (checked against its ids while the export reads them)."""
        if self._lengths is None:
            self._lengths = np.concatenate([np.zeros(0, np.int64)] + [
                c.to_numpy(zero_copy_only=False).astype(np.int64) for _, t in self.parts
                for c in t.column("length").chunks])
        return self._lengths


@dataclass
class Snapshot:
    """What an export reads: `splits` (name -> `Split`), the tokenizer, `prepare_info.json` as read, and
    `identity`, what `export_info.json` records of the folder.

    Example:
        >>> sorted(read_snapshot("ts").identity)  # doctest: +SKIP
        ['data_files', 'splits', 'vocab_sha256']
    """

    path: Path
    splits: dict
    tokenizer: object
    info: dict
    identity: dict


def read_snapshot(prepared) -> Snapshot:
    """Check and open `prepared` once (see the module docstring). Raises a one-line `TinyStoriesError` for
    what `load_prepared` refuses, a split name that is not plain, an Arrow file whose sha256 differs from
    the recorded one, and a folder changed while it was being read."""
    path = Path(prepared).expanduser()
    try:
        raw = (path / PREPARE_INFO).read_bytes()
    except OSError:
        raw = None  # read_prepared names what is wrong
    dataset, tokenizer, info = read_prepared(path)
    try:
        same = raw is not None and json.loads(raw) == info
    except ValueError:
        same = False
    if not same:
        raise TinyStoriesError(f"{path / PREPARE_INFO}: changed while it was being read; run the export again when "
                               "nothing writes the folder")
    for split in info["splits"]:
        check_split_name(split, path)
    recorded = info.get("data_files", {})
    splits, hashes, hub = {}, {}, is_hub_layout(path)
    for split, ds in dataset.items():
        if hub:  # datasets' cache of the parquet shards; no recorded hash to compare
            splits[split] = Split(split, [(path / f"{split} split", ds.data.table)], ds.num_rows)
            continue
        files = [Path(f["filename"]) for f in ds.cache_files]
        with ThreadPoolExecutor(max_workers=max(1, min(len(files), os.cpu_count() or 1))) as pool:
            opened = list(pool.map(_open_arrow, files))  # hashlib and preadv release the GIL
        for f, (_, digest) in zip(files, opened):
            key = f"{split}/{f.name}"
            hashes[key] = digest
            if recorded and recorded.get(key) != digest:  # a folder from before hashes were recorded: none
                what = "differs from its sha256" if key in recorded else "is not among the data files recorded"
                raise TinyStoriesError(f"{f}: {what} in {PREPARE_INFO}; the folder was edited or damaged: run "
                                       f"tinystories-validate {path} to check it, then {RECREATE}")
        parts = [(f, _table(mapped, f, tokenizer)) for f, (mapped, _) in zip(files, opened)]
        rows = sum(t.num_rows for _, t in parts)
        if rows != info["splits"][split]["kept"]:
            raise TinyStoriesError(f"{path / split}: {rows:,} rows but {PREPARE_INFO} records "
                                   f"{info['splits'][split]['kept']:,}; the folder was altered, {RECREATE}")
        splits[split] = Split(split, parts, rows)
    identity = {"vocab_sha256": info["vocab_sha256"],
                "splits": {split: dataset[split]._fingerprint for split in splits},
                "data_files": dict(sorted(hashes.items()))}
    return Snapshot(path=path, splits=splits, tokenizer=tokenizer, info=info, identity=identity)


def _open_arrow(path: Path) -> tuple:
    """`(mmap, sha256)` of one Arrow file, both from one open: the bytes hashed are the bytes mapped."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        digest, view = hashlib.sha256(), memoryview(bytearray(_BLOCK))
        while n := f.readinto(view):  # read(), not the mapping: page cache, never this process's resident memory
            digest.update(view[:n])
        return mapped, digest.hexdigest()


def _table(mapped, path: Path, tokenizer) -> pa.Table:
    """The Arrow stream file `mapped` as a zero-copy table, its `input_ids` and `length` checked in full."""
    expected = pa.list_(pa.uint16() if tokenizer.id_dtype == "uint16" else pa.uint32())
    try:
        if mapped is None:
            raise pa.ArrowInvalid("the file is empty")
        table = pa.ipc.open_stream(pa.py_buffer(mapped)).read_all()
        found = (table.schema.field("input_ids").type, table.schema.field("length").type)
        if found != (expected, pa.int32()):
            raise pa.ArrowInvalid(f"input_ids {found[0]} and length {found[1]}, not {expected} and int32")
        for name in ("input_ids", "length"):
            for chunk in table.column(name).chunks:
                chunk.validate(full=True)
    except (pa.ArrowException, KeyError) as e:
        raise TinyStoriesError(f"{path}: damaged Arrow data ({str(e).splitlines()[0]}); run tinystories-validate "
                               f"to check the folder, then {RECREATE}") from None
    return table
