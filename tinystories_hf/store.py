"""Step 4: store. A prepared folder is a `datasets.save_to_disk` DatasetDict plus two things beside it:

    DIR/dataset_dict.json, DIR/train/, DIR/validation/   # load_from_disk(DIR) in any training code
    DIR/tokenizer/                                        # TinyStoriesTokenizer.from_pretrained(DIR)
    DIR/prepare_info.json                                 # config, versions, source, counts, hashes, time

It is written to a hidden temporary folder beside DIR and renamed into place, so an interrupted run leaves
either no DIR or the previous complete one, never a half-written one. `load_prepared` also reads the same
data in the Hub repository layout (`hub.py`), from a local folder or a Hub repo id.
"""
import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import pyarrow as pa
from datasets.utils.py_utils import asdict

from .errors import TinyStoriesError
from .mapped_pages import pages_released
from .tokenize import reduced_features

PREPARE_INFO = "prepare_info.json"
TOKENIZER_DIR = "tokenizer"
MAX_SHARD_BYTES = 500 * 2**20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder: Path) -> dict:
    """sha256 of every file under `folder`, keyed by relative path; files are hashed in parallel threads
    (hashlib releases the GIL)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        return {str(p.relative_to(folder)): digest for p, digest in zip(files, pool.map(file_sha256, files))}


def check_output(output, *, overwrite: bool, source_files=(), marker: str = "dataset_dict.json",
                 what: str = "a prepared dataset folder") -> Path:
    """Refuse an output that exists (without --overwrite), that is not `what` (has no `marker` file), that
    lies inside the source, or is unwritable."""
    output = Path(output).expanduser().resolve()
    if output.exists() and not overwrite:
        raise TinyStoriesError(f"{output} already exists; pass --overwrite to replace it or choose another --output")
    if output.exists() and not output.is_dir():
        raise TinyStoriesError(f"{output} is a file, not {what}; refusing to replace it")
    if output.exists() and not (output / marker).exists() and any(output.iterdir()):
        raise TinyStoriesError(f"{output} exists and is not {what}; refusing to replace it")
    for f in source_files:
        source = Path(f).resolve()
        if output == source or source in output.parents or output in source.parents:
            raise TinyStoriesError(f"--output {output} overlaps the source {source}; write it elsewhere")
    parent = output.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise TinyStoriesError(f"cannot write to {output}: {parent} is a file; choose another --output")
    try:  # a real probe: os.access says yes to root even on /proc, /sys or a read-only mount
        tempfile.TemporaryDirectory(prefix=f".{output.name}.probe-", dir=parent).cleanup()
    except OSError as e:
        raise TinyStoriesError(f"cannot write to {parent} ({e.strerror}); choose a writable --output") from None
    return output


def _remove_stale_partials(output: Path) -> None:
    for partial in output.parent.glob(f".{output.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(partial, ignore_errors=True)


def shard_counts(dataset_dict) -> dict:
    """Shards per split from the data size only (not from num_proc), so outputs are byte-identical across
    num_proc; used for the saved folder and for the Hub's parquet shards alike."""
    return {split: max(1, math.ceil(ds.data.nbytes / MAX_SHARD_BYTES)) for split, ds in dataset_dict.items()}


@contextlib.contextmanager
def atomic_folder(output: Path, *, overwrite: bool):
    """Yield a hidden temporary folder beside `output`; when the block succeeds it replaces `output` by a
    rename, when it fails it is removed, so `output` is never half-written."""
    output.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(output)
    partial = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        yield partial
        if output.exists() and not overwrite:
            raise TinyStoriesError(f"{output} appeared while writing it; pass --overwrite to replace it")
        move_into_place(partial, output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


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


def save_prepared(output, dataset_dict: datasets.DatasetDict, tokenizer, info: dict, *, overwrite: bool) -> Path:
    """Write a prepared folder atomically (temporary folder + rename); returns its path."""
    output = Path(output).expanduser().resolve()
    with atomic_folder(output, overwrite=overwrite) as partial:
        save_dataset_dict(dataset_dict, partial)
        # Arrow files carry no checksum: these hashes let tinystories-validate name a damaged file.
        data_files = tree_sha256(partial)
        tokenizer.save_pretrained(partial / TOKENIZER_DIR)
        info = dict(info, data_files=data_files, tokenizer_files=tree_sha256(partial / TOKENIZER_DIR))
        (partial / PREPARE_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return output


def move_into_place(partial: Path, target: Path) -> None:
    """Rename a finished folder to `target`, replacing an existing one; each step is an atomic rename."""
    if target.exists():
        previous = target.parent / f".{target.name}.previous-{os.getpid()}"
        os.rename(target, previous)
        os.rename(partial, target)
        shutil.rmtree(previous)
    else:
        os.rename(partial, target)


def read_prepare_info(path) -> dict:
    path = Path(path) / PREPARE_INFO
    if not path.exists():
        raise TinyStoriesError(f"{path} not found: {path.parent} is not a folder written by tinystories-prepare")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TinyStoriesError(f"{path}: not valid JSON ({e}); re-create the folder with tinystories-prepare") from None


def load_prepared(path_or_repo_id, *, revision=None):
    """Load prepared data: `(DatasetDict, TinyStoriesTokenizer)`, with cheap consistency checks, from a folder
    written by tinystories-prepare, a folder in the Hub layout (`tinystories-push --to-folder`), or the repo
    id of a pushed dataset (downloaded with huggingface_hub into its cache; `revision` picks a branch/tag).

    Example:
        >>> dataset, tokenizer = load_prepared("tinystories_prepared")  # doctest: +SKIP
        >>> dataset, tokenizer = load_prepared("someone/tinystories-10k")  # doctest: +SKIP
        >>> dataset["train"][0]["input_ids"][:4], tokenizer.vocab_size  # doctest: +SKIP
    """
    from .hub import download_repo, is_hub_layout, load_hub_folder
    from .sources import HUB_ID
    from .vocab import TinyStoriesTokenizer

    path = Path(path_or_repo_id).expanduser()
    if not path.exists() and HUB_ID.match(str(path_or_repo_id)):
        path = download_repo(str(path_or_repo_id), revision=revision)
    if not path.exists():
        raise TinyStoriesError(f"{path} not found; pass a folder written by tinystories-prepare or "
                               "tinystories-push --to-folder, or the Hub repo id of a pushed dataset")
    info = read_prepare_info(path)
    hub_layout = is_hub_layout(path)
    # The recorded data files are the save_to_disk shards; a pushed folder holds parquet shards instead.
    missing = [] if hub_layout else [name for name in info.get("data_files", {}) if not (path / name).is_file()]
    if missing:
        raise TinyStoriesError(f"{path / missing[0]}: missing ({len(missing)} recorded data file(s) missing); "
                               "the folder is incomplete, re-create it with tinystories-prepare")
    try:
        dataset = load_hub_folder(path) if hub_layout else datasets.load_from_disk(str(path))
    except (OSError, ValueError, pa.ArrowException) as e:  # e.g. a damaged Arrow file or state.json
        raise TinyStoriesError(f"{path}: cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0]}); run "
                               "tinystories-validate to find the damaged file, then re-create the folder") from None
    tokenizer = TinyStoriesTokenizer.from_pretrained(path / TOKENIZER_DIR)
    if tokenizer.fingerprint != info["vocab_sha256"]:
        raise TinyStoriesError(f"{path / TOKENIZER_DIR}: vocabulary hash differs from {PREPARE_INFO}; the "
                               "tokenizer was edited or replaced, re-create the folder with tinystories-prepare")
    for split, counts in info["splits"].items():
        if split not in dataset or dataset[split].num_rows != counts["kept"]:
            found = dataset[split].num_rows if split in dataset else "missing"
            raise TinyStoriesError(f"{path / split}: {found} rows but {PREPARE_INFO} records {counts['kept']}; "
                                   "the folder is incomplete or altered, re-create it")
        found, expected = dataset[split].features.get("input_ids"), reduced_features(False)["input_ids"]
        if found != expected:
            raise TinyStoriesError(f"{path / split}: input_ids is {found}, not {expected}; the folder was "
                                   "altered, re-create it")
    return dataset, tokenizer
