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
from ..utils.atomic import atomic_folder
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

PREPARE_INFO = "prepare_info.json"
TOKENIZER_DIR = "tokenizer"
MAX_SHARD_BYTES = 500 * 2**20
DATA_DIR = "data"  # the Hub repository layout: data/{split}-0000i-of-0000n.parquet and a README.md card
CARD = "README.md"


RECREATE = "re-create the folder with tinystories-prepare"

COUNTS = {name: non_negative() for name in ("stories", "kept", "skipped_short", "skipped_empty", "truncated",
                                            "tokens", "unk_tokens")}
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


def tree_sha256(folder: Path) -> dict:
    """sha256 of every file under `folder`, keyed by relative path; files are hashed in parallel threads
    (hashlib releases the GIL)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        return {str(p.relative_to(folder)): digest for p, digest in zip(files, pool.map(file_sha256, files))}


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


def copy_to_disk(ds: datasets.Dataset, folder: Path) -> bool:
    """Write `ds` as `save_to_disk` does (`data-i-of-n.arrow`, `state.json`, `dataset_info.json`) by copying
    the cache files it is made of, which the map that made it wrote in the same Arrow stream format: one
    in-kernel copy instead of reading and re-writing every batch. False (nothing written) if `ds` is not
    exactly its cache files."""
    files = _whole_cache_files(ds)
    if not files:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data-{i:05d}-of-{len(files):05d}.arrow" for i in range(len(files))]
    with ThreadPoolExecutor(max_workers=len(files)) as pool:  # sendfile releases the GIL
        list(pool.map(_copy_arrow_stream, files, [folder / name for name in names]))
    # The state save_to_disk writes, read as it reads it.
    state = {key: ds.__dict__[key] for key in ("_fingerprint", "_format_columns", "_format_kwargs", "_format_type",
                                                "_output_all_columns")}
    state["_split"] = str(ds.split) if ds.split is not None else None
    state["_data_files"] = [{"filename": name} for name in names]
    (folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    info = asdict(ds.info)  # datasets' own asdict, as save_to_disk calls it
    (folder / "dataset_info.json").write_text(json.dumps({key: info[key] for key in sorted(info)}, indent=2),
                                              encoding="utf-8")
    return True


def save_dataset_dict(dataset_dict: datasets.DatasetDict, folder: Path) -> None:
    """`dataset_dict.save_to_disk(folder)`, copying whole cache files where a split is made of them."""
    if sys.platform.startswith("linux") and all(_whole_cache_files(ds) for ds in dataset_dict.values()):
        for split, ds in dataset_dict.items():
            copy_to_disk(ds, folder / split)
        (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(dataset_dict)}), encoding="utf-8")
        return
    with pages_released(*(ds.data for ds in dataset_dict.values())):  # RSS stays flat however large
        dataset_dict.save_to_disk(str(folder), num_shards=shard_counts(dataset_dict))


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
        save_dataset_dict(dataset_dict, partial)
        for name, dataset in extra.get("datasets", {}).items():
            with pages_released(dataset.data):
                dataset.save_to_disk(str(partial / name))
        for name, content in extra.get("files", {}).items():
            (partial / name).write_bytes(content)
        # Arrow files carry no checksum: these hashes let tinystories-validate name a damaged file.
        data_files = tree_sha256(partial)
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


