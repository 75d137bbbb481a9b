"""Store (stage 4): the folder format. A prepared folder is a `datasets.save_to_disk` DatasetDict plus two
things beside it:

    DIR/dataset_dict.json, DIR/train/, DIR/validation/   # load_from_disk(DIR) in any training code
    DIR/tokenizer/                                        # TinyStoriesTokenizer.from_pretrained(DIR)
    DIR/prepare_info.json                                 # config, versions, source, counts, hashes, time

It is written whole (`atomic.atomic_folder`: one writer, an atomic exchange, recovery after a kill), by
copying the cache files the map passes wrote where it can.

Reading (`load.py`) checks before it trusts, with this module's schemas and checks: `prepare_info.json` key by
key, datasets' JSON files against their recorded sha256, every Arrow table structurally (corrupt offsets are an
error, not a crash).
"""
import contextlib
import hashlib
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import pyarrow as pa
from datasets.utils.py_utils import asdict

from ..errors import TinyStoriesError
from ..utils.atomic import atomic_folder, replace_file
from ..utils.json_files import (
    SHA256,
    SPLIT_WANTED,
    Check,
    Each,
    Nullable,
    in_range,
    non_negative,
    plain_file,
    read_json,
    relative_file,
    split_name,
)
from ..utils.mapped_pages import PageReleaser, pages_released
from .summary import COUNTS

PREPARE_INFO = "prepare_info.json"
TOKENIZER_DIR = "tokenizer"
MAX_SHARD_BYTES = 500 * 2**20
DATA_DIR = "data"  # the Hub repository layout: data/{split}-0000i-of-0000n.parquet and a README.md card
CARD = "README.md"


RECREATE = "re-create the folder with tinystories-prepare"

FILES = Each(SHA256, relative_file, "a relative path inside the folder")
_OPTIONAL_ID = Nullable(in_range(0, 2**32))
INFO_SCHEMA = {
    "config": {"min_length": non_negative(), "max_length": Nullable(non_negative()), "keep_text?": bool},
    "source": {"source": str, "kind": str, "validation": str},
    "vocab_size": in_range(3, 2**32), "eos_id": _OPTIONAL_ID, "unk_id": _OPTIONAL_ID, "bos_id?": _OPTIONAL_ID,
    "separator_id?": _OPTIONAL_ID, "vocabulary?": Check(str, lambda v: v in ("reduced", "full"), "reduced or full"),
    "id_dtype?": Check(str, lambda v: v in ("uint16", "uint32"), "uint16 or uint32"),
    "vocab_sha256": SHA256,
    "vocab_sample": {"stories": non_negative(), "seed": int, "tokens": non_negative()},
    "splits": Check(Each(COUNTS, split_name, SPLIT_WANTED), lambda v: "train" in v, "an object with a 'train' split"),
    "data_files?": FILES,
    "tokenizer_files?": FILES,
    "versions?": dict,
}
# What save_to_disk writes and load_from_disk trusts; a prepared split is never formatted.
STATE_SCHEMA = {"_data_files": Check([{"filename": Check(str, plain_file, "a file name in the split folder")}],
                                     lambda v: len(v) > 0, "a list of the split's Arrow files"),
                "_format_type": Check(object, lambda v: v is None, "null"),
                "_format_columns": Check(object, lambda v: v is None or isinstance(v, list) and {"input_ids", "length"}
                                         <= set(map(str, v)), "null or a list naming input_ids and length"),
                "_format_kwargs": Check(dict, lambda v: not v, "{}"),
                "_output_all_columns?": bool, "_split?": (str, type(None)), "_fingerprint?": str}
DATASETS_JSON = {"dataset_dict.json": {"splits": [Check(str, split_name, SPLIT_WANTED)]}, "state.json": STATE_SCHEMA, "dataset_info.json": dict}


def file_sha256(path: Path, *, progress=None) -> str:
    """The file's sha256 (hex); `progress(n)` is called with the bytes of each 1 MiB block read."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            if progress is not None:
                progress(len(block))
    return digest.hexdigest()


def tree_sha256(folder: Path, known: dict | None = None) -> dict:
    """sha256 of every file under `folder`, keyed by relative path; files are hashed in parallel threads
    (hashlib releases the GIL). `known` (relative path -> sha256) are taken as they are, not read."""
    known = known or {}
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and str(p.relative_to(folder)) not in known]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        hashed = {str(p.relative_to(folder)): digest for p, digest in zip(files, pool.map(file_sha256, files))}
    return dict(sorted({**hashed, **known}.items()))


def shard_counts(dataset_dict) -> dict:
    """Shards per split from the data size only (not from num_proc), so outputs are byte-identical across
    num_proc; used for the saved folder and for the Hub's parquet shards alike."""
    return {split: max(1, math.ceil(ds.data.nbytes / MAX_SHARD_BYTES)) for split, ds in dataset_dict.items()}


def _whole_cache_files(ds: datasets.Dataset) -> list:
    """The Arrow files `ds` is exactly made of (each whole, in row order, no selection, only its schema's
    metadata replaced), or [] if it is not."""
    from datasets.table import ConcatenationTable, MemoryMappedTable

    table = ds.data
    rows = table.blocks if isinstance(table, ConcatenationTable) else [[table]]
    if ds._indices is not None or ds.format["type"] is not None or any(
            len(row) != 1 or not isinstance(row[0], MemoryMappedTable) or
            any(op != "replace_schema_metadata" for op, _, _ in row[0].replays) for row in rows):
        return []
    return [row[0].path for row in rows]


def _copy_arrow_stream(source: str, target: Path) -> None:
    """Copy an Arrow stream file written by datasets, less the map fingerprint its schema metadata carries
    (it names the pass that wrote the file, not the data): the record batches are copied byte for byte, in
    the kernel, after a re-serialised schema message."""
    with pa.memory_map(source) as stream:
        schema = pa.ipc.read_schema(pa.ipc.read_message(stream))
        start, size = stream.tell(), stream.size()
    metadata = dict(schema.metadata or {})
    if b"huggingface" in metadata:
        hf = json.loads(metadata[b"huggingface"])
        hf.pop("fingerprint", None)
        metadata[b"huggingface"] = json.dumps(hf).encode()
    with open(source, "rb") as fin, open(target, "wb") as fout:
        fout.write(schema.with_metadata(metadata).serialize())
        fout.flush()
        offset = start
        while offset < size:
            sent = os.sendfile(fout.fileno(), fin.fileno(), offset, min(size - offset, 1 << 30))
            if sent == 0:
                raise OSError(f"{source}: could not copy past byte {offset}")
            offset += sent


# A prepared file kept beside the cache file it was copied from (`cache-X.arrow` + PREPARED), hard-linked into
# later outputs, with its record (PREPARED + ".json": its sha256, and the identity of both files when made).
PREPARED = ".prepared"
_RECORD_SCHEMA = {"sha256": SHA256, "source": [int], "prepared": [int]}


def _identity(path) -> list:
    """What changes when a file is replaced or written in place: inode, size, modification time (ns)."""
    st = os.stat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _reuse_or_copy(source: str, target: Path) -> str:
    """Write `target` (`_copy_arrow_stream` of `source`) and return its sha256: a hard link to the prepared
    file kept from an earlier run when it is still the one recorded for this very cache file, else a copy,
    hashed, then kept (hard-linked beside `source`) for the next run.

    Why a hard link cannot damage an output: the two names share one inode, and neither is ever written in
    place. The output is written once, in its temporary folder, before the link exists; the kept name is only
    ever created by `os.link` and replaced by `os.replace`; datasets never opens it (cache cleanup deletes
    `cache-*.arrow` files, a name it does not match) and never writes a cache file in place (it writes a
    temporary file and renames it). So a cache cleanup, `rm -rf` of the cache or an `--overwrite` only removes
    one name, and the data stays under the other. The file is made read-only, and a kept file whose inode,
    size or modification time differs from its record (written in place anyway) is never linked again."""
    kept, record = Path(source + PREPARED), Path(source + PREPARED + ".json")
    try:
        if record.is_file() and kept.is_file():
            data = read_json(record, _RECORD_SCHEMA, fix="delete it")
            if data["source"] == _identity(source) and data["prepared"] == _identity(kept):
                os.link(kept, target)
                if _identity(target) == data["prepared"]:  # not replaced between the check and the link
                    return data["sha256"]
                target.unlink()
    except (OSError, TinyStoriesError):  # no hard links here (another file system, FAT, ...): copy
        target.unlink(missing_ok=True)
    _copy_arrow_stream(source, target)
    os.chmod(target, 0o444)
    digest = file_sha256(target)
    with contextlib.suppress(OSError):  # a read-only or foreign cache folder: the next run copies again
        partial = kept.with_name(f"tmp-{kept.name}.{os.getpid()}")
        partial.unlink(missing_ok=True)
        os.link(target, partial)
        os.replace(partial, kept)
        replace_file(record, json.dumps({"sha256": digest, "source": _identity(source), "prepared": _identity(kept)}))
    return digest


def copy_to_disk(ds: datasets.Dataset, folder: Path) -> dict | None:
    """Write `ds` as `save_to_disk` does (`data-i-of-n.arrow`, `state.json`, `dataset_info.json`) from the
    cache files it is made of, which the map that made it wrote in the same Arrow stream format: a hard link
    to the same bytes kept from an earlier run, else one in-kernel copy instead of reading and re-writing
    every batch (`_reuse_or_copy`). Returns {data file name: sha256}, or None (nothing written) if `ds` is not
    exactly its cache files."""
    files = _whole_cache_files(ds)
    if not files:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data-{i:05d}-of-{len(files):05d}.arrow" for i in range(len(files))]
    with ThreadPoolExecutor(max_workers=len(files)) as pool:  # sendfile and hashing release the GIL
        digests = list(pool.map(_reuse_or_copy, files, [folder / name for name in names]))
    # The state save_to_disk writes, read as it reads it.
    state = {key: ds.__dict__[key] for key in ("_fingerprint", "_format_columns", "_format_kwargs", "_format_type",
                                                "_output_all_columns")}
    state["_split"] = str(ds.split) if ds.split is not None else None
    state["_data_files"] = [{"filename": name} for name in names]
    (folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    info = asdict(ds.info)  # datasets' own asdict, as save_to_disk calls it
    (folder / "dataset_info.json").write_text(json.dumps({key: info[key] for key in sorted(info)}, indent=2),
                                              encoding="utf-8")
    return dict(zip(names, digests))


def save_dataset_dict(dataset_dict: datasets.DatasetDict, folder: Path) -> dict:
    """`dataset_dict.save_to_disk(folder)`, from whole cache files where every split is made of them; returns
    the sha256 of the data files it already knows (relative path -> sha256)."""
    if sys.platform.startswith("linux") and all(_whole_cache_files(ds) for ds in dataset_dict.values()):
        known = {}
        for split, ds in dataset_dict.items():
            known.update({f"{split}/{name}": digest for name, digest in copy_to_disk(ds, folder / split).items()})
        (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(dataset_dict)}), encoding="utf-8")
        return known
    with pages_released(*(ds.data for ds in dataset_dict.values())):  # RSS stays flat however large
        dataset_dict.save_to_disk(str(folder), num_shards=shard_counts(dataset_dict))
    return {}


def save_prepared(output, dataset_dict: datasets.DatasetDict, tokenizer, info: dict, *, overwrite: bool,
                  model_max_length: int | None = None, extra: dict | None = None) -> Path:
    """Write a prepared folder atomically (temporary folder + exchange); returns its path.

    `extra` (a backdoored prepare's): `{"datasets": {folder: Dataset}}` saved beside the splits (not in
    dataset_dict.json: `load_from_disk(DIR)` gives the training splits only), `{"files": {name: bytes}}` written
    beside prepare_info.json, both hashed in `data_files`, and `{"after": [write(folder)]}`, functions that write
    files no hash describes (a blind experiment's sealed choice) into the folder before it is put in place."""
    output = Path(output).expanduser().resolve()
    extra = extra or {}
    with atomic_folder(output, overwrite=overwrite) as partial:
        known = save_dataset_dict(dataset_dict, partial)
        for name, dataset in extra.get("datasets", {}).items():
            with pages_released(dataset.data):
                dataset.save_to_disk(str(partial / name))
        for name, content in extra.get("files", {}).items():
            (partial / name).write_bytes(content)
        # Arrow files carry no checksum: these hashes let tinystories-validate name a damaged file.
        data_files = tree_sha256(partial, known)
        for write in extra.get("after", []):
            write(partial)
        tokenizer.save_pretrained(partial / TOKENIZER_DIR, model_max_length=model_max_length)
        info = dict(info, data_files=data_files, tokenizer_files=tree_sha256(partial / TOKENIZER_DIR))
        (partial / PREPARE_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return output


# -- reading: check before trusting -----------------------------------------------------------------------

def read_prepare_info(path) -> dict:
    """`prepare_info.json` of a prepared or pushed folder, checked key by key (types, ranges, file names)."""
    path = Path(path) / PREPARE_INFO
    if not os.path.lexists(path):
        raise TinyStoriesError(f"{path} not found: {path.parent} is not a folder written by tinystories-prepare")
    folder = path.parent
    hub_parts = [os.path.lexists(folder / part) for part in (CARD, DATA_DIR)]
    if not (folder / "dataset_dict.json").exists() and any(hub_parts) and not all(hub_parts):  # a pushed folder
        missing = folder / (DATA_DIR if hub_parts[0] else CARD)                                  # cut short
        raise TinyStoriesError(f"{missing}: missing from a folder written by tinystories-push --to-folder; "
                               "re-create it with tinystories-push --to-folder")
    return read_json(path, INFO_SCHEMA, fix=RECREATE)


def check_arrow(dataset: datasets.Dataset, where: Path) -> None:
    """Validate every Arrow chunk of `dataset` in full (offsets, lengths, UTF-8): damaged buffers raise here,
    one line naming `where`, instead of crashing the process at the first row read."""
    pages = PageReleaser()
    for column in dataset.data.columns:
        for chunk in column.chunks:
            try:
                chunk.validate(full=True)
            except pa.ArrowException as e:
                raise TinyStoriesError(f"{where}: damaged Arrow data ({str(e).splitlines()[0]}); run "
                                       f"tinystories-validate to name the file, then {RECREATE}") from None
            pages.read(chunk)


def check_datasets_json(path: Path, info: dict) -> None:
    """datasets' own JSON files (dataset_dict.json, state.json, dataset_info.json) must be the ones prepare
    wrote (their sha256 in prepare_info.json: tiny files, so cheap) and must parse (a file edited with its
    hash updated, or a folder written before hashes were recorded)."""
    for name in [name for name in info.get("data_files", {}) if name.endswith(".json")]:
        if not (path / name).is_file() or file_sha256(path / name) != info["data_files"][name]:
            raise TinyStoriesError(f"{path / name}: missing or differs from its sha256 in {PREPARE_INFO}; the "
                                   f"folder was edited or damaged, {RECREATE}")
    for file in [path / "dataset_dict.json", *path.glob("*/state.json"), *path.glob("*/dataset_info.json")]:
        if file.is_file():
            read_json(file, DATASETS_JSON[file.name], fix=RECREATE)


