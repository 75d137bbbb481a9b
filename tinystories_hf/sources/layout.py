"""Decide what a `--source` is: its layout, its one story format, and its splits with their files.

Splits come from `datasets.data_files`, the rules `load_dataset(folder)` and the Hub use: first the default
config of a README.md's YAML header (`configs:` with `data_files` or `data_dir`), else the
`data/{split}-00000-of-00001.*` shards (any split name), else split names in folder names, else in file
names (train/training; validation/valid/val/dev; test/testing/eval/evaluation; delimited by `-._ ` or
digits), else every file is train. Hidden files and folders (`.name`, `__name`) are not read. The files of a
split are read in the order of their paths (code point order: `train-10` before `train-2`). Files that fall
in no split (beside named ones) are not read and are listed in `Layout.ignored`. The format comes from the
file suffix; a folder whose split files are not all of one story format is refused with the list of what it
holds, never read with a fallback reader.

Where datasets' rules and a file's name disagree, the folder is refused rather than read against the name: a
file of the story format whose name names a split (in any case, by the same keywords) but that the rules put
in another split or in none (`Valid.txt` read as train: the rules match lower case only; `valid.txt` beside
`train/` folders: folder names decide). So are a broken symbolic link, a link to a folder (datasets does
not read into it) and a Git LFS pointer where the data should be.

A folder that `save_to_disk` wrote (`dataset_dict.json`, or a single dataset's `state.json` and
`dataset_info.json`; `tinystories-prepare` writes one, with `prepare_info.json`) or that `tinystories-push
--to-folder` wrote (`prepare_info.json` beside `data/`) holds Arrow or parquet tables, not files of stories:
it is refused as what it is, saying how it is read, rather than as a folder of mixed formats.
"""
import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
from datasets.data_files import (
    DEFAULT_PATTERNS_SPLIT_IN_DIR_NAME,
    DEFAULT_PATTERNS_SPLIT_IN_FILENAME,
    DataFilesDict,
    EmptyDatasetError,
    get_data_patterns,
    resolve_pattern,
    sanitize_patterns,
)
from fsspec.utils import glob_translate

from ..errors import TinyStoriesError, flag
from ..utils.json_files import read_json
from . import demo, hub, json, parquet, txt

FORMATS = {"parquet": parquet, "json": json, "txt": txt}
FORMAT_MODULES = {**FORMATS, "demo": demo}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HASH_BLOCK = 16 << 20
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
# A split's keywords as datasets matches them in folder and file names: what a file's path says.
_NAMED = {str(split): DEFAULT_PATTERNS_SPLIT_IN_DIR_NAME[split] + DEFAULT_PATTERNS_SPLIT_IN_FILENAME[split]
          for split in DEFAULT_PATTERNS_SPLIT_IN_DIR_NAME}
# The files that mark a folder written by save_to_disk / tinystories-prepare / tinystories-push (sources/ comes
# before store/ on the data's path, so store.folder.PREPARE_INFO is spelled out here).
PREPARE_INFO = "prepare_info.json"
SAVED_DICT, SAVED_DATASET = ("dataset_dict.json",), ("state.json", "dataset_info.json")
_SAYS = {case: {split: [re.compile(glob_translate(p), case) for p in patterns] for split, patterns in _NAMED.items()}
         for case in (0, re.IGNORECASE)}


def _says(name: str, case=re.IGNORECASE) -> list:
    """The splits whose keywords the relative path `name` holds, as datasets matches them (in any case)."""
    return [split for split, rules in _SAYS[case].items() if any(rule.match(name) for rule in rules)]


@dataclass
class Layout:
    """What `find_layout` decided. `data_files`: split -> files in path order, the splits in datasets' order
    (train, validation, test, then the others); `ignored`: files of a folder in no split (relative paths).

    Example:
        >>> find_layout("demo").format, find_layout("demo").data_files
        ('demo', {'train': ['train'], 'validation': ['validation']})
    """

    source: str
    layout: str  # demo | hub | file | folder
    format: str  # demo | parquet | json | txt
    data_files: dict
    ignored: list = field(default_factory=list)


def format_of(path: str) -> str | None:
    """The story format of a file by its suffix (parquet, json, txt), None for any other file."""
    name = os.path.basename(path).lower()
    return next((fmt for fmt, module in FORMATS.items() if name.endswith(module.SUFFIXES)), None)


def _label(fmt: str | None, path: str) -> str:
    if fmt:
        return FORMATS[fmt].NAME
    suffix = Path(path).suffix or "no suffix"
    return f"{suffix}, not a story format"


def _one_format(where: str, files: list, base: str) -> str:
    """The story format all `files` share; else raise a `TinyStoriesError` listing what the folder holds."""
    formats = {path: format_of(path) for path in files}
    kinds = list(dict.fromkeys(formats.values()))
    if len(kinds) == 1 and kinds[0] is not None:
        return kinds[0]
    groups = {}
    for path, fmt in formats.items():
        groups.setdefault(_label(fmt, path), []).append(os.path.relpath(path, base) if base else path)
    found = "; ".join(f"{len(names)} {label} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                      for label, names in groups.items())
    what = "files of more than one format" if len(kinds) > 1 else "files that are not stories"
    raise TinyStoriesError(f"{where} holds {what} in its splits: {found}; keep one story format (.parquet, "
                           f".jsonl/.json or TinyStoriesV2 .txt) and move the other files out, or pass one file as "
                           f"{flag('source')}")


def _splits(data_files, where: str, base: str = "") -> dict:
    """`{split: [files in path order]}` without repeats; a file named for two splits is refused."""
    splits, owner = {}, {}
    for split, paths in data_files.items():
        split = str(split)
        for path in dict.fromkeys(str(p) for p in paths):
            if path in owner:
                raise TinyStoriesError(f"{path}: its name matches both split {owner[path]!r} and split {split!r}; "
                                       "rename it so that it names one split (train, validation/valid/val/dev, test)")
            owner[path] = split
            splits.setdefault(split, []).append(path)
    if not splits:
        raise TinyStoriesError(f"could not read {where}: EmptyDatasetError: the folder doesn't contain any data "
                               "files (hidden files and folders, .name or __name, are not read); pass a folder of "
                               ".parquet, .jsonl/.json or TinyStoriesV2 .txt files")
    return {split: sorted(paths, key=lambda p: os.path.relpath(p, base) if base else p)
            for split, paths in splits.items()}


def _check_files(files) -> None:
    """Refuse an empty file, and a Git LFS pointer left where the data should be (a clone without `git lfs`)."""
    for path in files:
        if not os.path.isfile(path):  # a FIFO (a read would block, or see nothing), a socket, a device
            raise TinyStoriesError(f"{path}: not a regular file (a FIFO, socket or device); pass a file with stories")
        if os.path.getsize(path) == 0:
            raise TinyStoriesError(f"{path}: the file is empty; remove it or pass a file with stories")
        with open(path, "rb") as f:
            if f.read(len(LFS_POINTER)) == LFS_POINTER:
                raise TinyStoriesError(f"{path}: a Git LFS pointer, not the data; fetch the files (git lfs pull in "
                                       "the clone) or download them again")


def _check_links(base: str) -> None:
    """Refuse a broken symbolic link, a link to a folder (datasets lists no file inside one: its stories
    would be left out without a word) and a file that is not a regular one (datasets lists no FIFO, socket
    or device: a split named by one would be carved from train instead)."""
    for folder, dirs, names in os.walk(base):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        for name in dirs + names:
            path = os.path.join(folder, name)
            if name.startswith((".", "__")):
                continue
            if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
                raise TinyStoriesError(f"{path}: not a regular file (a FIFO, socket or device), which datasets does "
                                       "not read; remove it or replace it with the file of stories")
            if not os.path.islink(path):
                continue
            target = os.readlink(path)
            if not os.path.exists(path):
                hint = " (git annex get?)" if ".git/annex/" in target else ""
                raise TinyStoriesError(f"{path}: a broken symbolic link (to {target}){hint}; restore its target or "
                                       "remove the link")
            if os.path.isdir(path):
                raise TinyStoriesError(f"{path}: a symbolic link to a folder ({target}), which datasets does not "
                                       "read into; pass the real folder, or link the files instead of the folder")


def _rules(patterns: dict) -> str:
    """Which of datasets' rules decided the splits."""
    first = next(iter(patterns.values()))[0]
    return ("the data/{split}-* shards decide the splits here" if first.startswith("data/")
            else "folder names decide the splits here" if first.endswith("/**")
            else "every file is train here" if first == "**" else "file names decide the splits here")


def _check_names(base: str, files: list, splits: dict, fmt: str, patterns: dict) -> None:
    """Refuse a file of the story format whose name says one split while datasets' rules read it as another
    split or none (see the module docstring); the data/{split}-* shards name their split themselves."""
    owner = {path: split for split, paths in splits.items() for path in paths}
    rules = _rules(patterns)
    for path in files:
        split = owner.get(path)
        if format_of(path) != fmt or (split and rules.startswith("the data/")):
            continue
        name = os.path.relpath(path, base).replace(os.sep, "/")
        named = _says(name)
        if not named or split in named:
            continue
        if named[0] in _says(name, 0):
            reason, fix = rules, "rename or move it so that its name and its place agree, or move it out"
        else:
            reason, fix = "datasets matches split names in lower case only", "write the split name in lower case"
        raise TinyStoriesError(f"{path}: its name says split {named[0]!r}, but datasets' rules read it as "
                               f"{'split ' + repr(split) if split else 'no split'} ({reason}); {fix}")


def _card_config(base: str):
    """`(data files patterns, their base folder)` of the default config that the folder's README.md declares
    in its YAML header (`configs:`, with `data_files` or `data_dir`), as `load_dataset(folder)` and the Hub
    read it; None if it declares none."""
    readme = os.path.join(base, "README.md")
    if not os.path.isfile(readme):
        return None
    import yaml
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    try:
        configs = MetadataConfigs.from_dataset_card_data(DatasetCard.load(readme).data)
        name = configs.get_default_config_name()
    except (ValueError, yaml.YAMLError) as e:
        reason = " ".join(str(e).split())
        raise TinyStoriesError(f"{readme}: its configs cannot be read ({reason}); fix the YAML header (see "
                               "datasets' 'Manual configuration' docs) or remove it") from None
    if not configs:
        return None
    if name is None:
        raise TinyStoriesError(f"{readme}: it declares configs {', '.join(configs)} and none is the default; mark one "
                               "'default: true' in its YAML header, or pass the folder of one config's files")
    config = configs[name]
    if config.get("data_files"):
        return sanitize_patterns(config["data_files"]), base
    if config.get("data_dir"):
        folder = os.path.join(base, config["data_dir"])
        return get_data_patterns(glob.escape(folder)), folder
    return None


def _recorded_source(folder: Path) -> str:
    """`prepare_info.json`'s source, as `' (made from SOURCE)'`; empty if the file cannot tell (untrusted: a
    damaged file only loses the hint)."""
    try:
        source = read_json(folder / PREPARE_INFO, {"source": {"source": str}}, fix="")["source"]["source"]
    except TinyStoriesError:
        return ""
    return f" (made from {source[:200]!r})"


def _check_not_saved(path: Path) -> None:
    """Refuse a prepared, pushed or `save_to_disk` folder given as a source of stories, saying what it is and
    how it is read (see the module docstring)."""
    whole = all((path / name).is_file() for name in SAVED_DICT)
    if (path / PREPARE_INFO).is_file():
        writer = "tinystories-prepare" if whole else "tinystories-push --to-folder"
        raise TinyStoriesError(
            f"{path}: a folder written by {writer}{_recorded_source(path)}: token ids, not stories; read it with "
            f"tinystories_hf.load_prepared or datasets.load_{'from_disk' if whole else 'dataset'}, or write a "
            f"trainer's files with tinystories-export; {flag('source')} needs the original stories")
    if whole or all((path / name).is_file() for name in SAVED_DATASET):
        loaded = f"datasets.load_from_disk({str(path)!r})"
        each = (f"{loaded}[split].to_parquet(f'stories/{{split}}.parquet') for each split" if whole
                else f"{loaded}.to_parquet('stories/train.parquet')")
        raise TinyStoriesError(
            f"{path}: a folder written by datasets' save_to_disk, which load_dataset does not read; pass the files "
            f"of stories it came from as {flag('source')}, or write them out first: {each}")


def _folder(path: Path) -> Layout:
    _check_not_saved(path)
    base = str(path.resolve())
    _check_links(base)
    declared = _card_config(base)
    try:
        # datasets joins the folder to its patterns: a `[`, `*` or `?` in the folder's own path must match itself
        patterns, where = declared or (get_data_patterns(glob.escape(base)), base)
        data_files = DataFilesDict.from_patterns(patterns, base_path=glob.escape(where))
    except EmptyDatasetError:
        patterns, data_files = {}, {}
    except FileNotFoundError as e:  # a pattern of the README's configs that matches no file
        raise TinyStoriesError(f"{path / 'README.md'}: its default config names files that are not there ({e}); fix "
                               "its data_files or remove the configs") from None
    except ValueError as e:  # a `data/{split}-00000-of-00001` shard whose split name is not a word
        raise TinyStoriesError(f"{path}: {e}; name the shards data/train-00000-of-00001.parquet and so on") from None
    splits = _splits(data_files, str(path), base)
    files = [p for paths in splits.values() for p in paths]
    fmt = _one_format(str(path), files, base)
    _check_files(files)
    try:
        every = resolve_pattern("**", base_path=glob.escape(base))
    except FileNotFoundError:
        every = []
    if not declared:  # the README's configs name each split's files themselves
        _check_names(base, every, splits, fmt, patterns)
    used = set(files)
    ignored = sorted(os.path.relpath(p, base) for p in every if p not in used)
    return Layout(source=str(path), layout="folder", format=fmt, data_files=splits, ignored=ignored)


def find_layout(source: str, *, text_column: str = "text", cache_dir=None) -> Layout:
    """Decide `source`'s layout, format and splits; raise a one-line `TinyStoriesError` if it is not one of
    them (see the module docstring for the rules).

    Example:
        >>> find_layout("demo").data_files
        {'train': ['train'], 'validation': ['validation']}
    """
    path = Path(source).expanduser()
    if source == "demo":
        if text_column != "text":
            raise TinyStoriesError(f"demo: split 'train' has no column {text_column!r} (columns found: text); "
                                   f"pass {flag('text_column')} text")
        return Layout(source=source, layout="demo", format="demo", data_files={s: [s] for s in demo.DEMO_SPLITS})
    if path.is_dir():
        layout = _folder(path)
    elif path.exists():
        fmt = format_of(str(path))
        if fmt is None:
            raise TinyStoriesError(f"{path}: unsupported file type; use .parquet, .jsonl, .json or a "
                                   "TinyStoriesV2 .txt file")
        _check_files([str(path)])
        layout = Layout(source=source, layout="file", format=fmt, data_files={"train": [str(path.resolve())]})
    elif os.path.islink(path):  # before the Hub: a link whose target is missing is a path, not a dataset id
        raise TinyStoriesError(f"{path} is a symlink to {os.readlink(path)}, which does not exist (or a symlink "
                               "loop); restore its target or pass another source")
    elif HUB_ID.match(source) and format_of(source) is None:
        splits = _splits(hub.data_files(source, cache_dir=cache_dir), source)
        files = [p for paths in splits.values() for p in paths]
        layout = Layout(source=source, layout="hub", format=_one_format(source, files, ""), data_files=splits)
    else:
        raise TinyStoriesError(f"source {source!r} not found: no such file or folder (pass an existing path, a Hub "
                               "dataset id like roneneldan/TinyStories, or 'demo')")
    if layout.format == "txt" and text_column != "text":  # V2 text has no fields to choose from
        raise TinyStoriesError(f"{source}: no column {text_column!r} (columns found: text, the only one of "
                               f"TinyStoriesV2 text); pass {flag('text_column')} text")
    return layout


def content_hash(layout: Layout) -> str | None:
    """xxh3-128 of a local source's files (names relative to the source, sizes and bytes), or None for the
    demo corpus and Hub datasets (their files are addressed by commit). Part of the cache key, so an edited
    file is read again even if its size and modification time are unchanged."""
    if layout.layout not in ("file", "folder"):
        return None
    digest, base = xxhash.xxh3_128(), Path(layout.source).expanduser()
    buffer = bytearray(HASH_BLOCK)
    for split, paths in layout.data_files.items():
        for path in paths:
            digest.update(f"{split}\0{os.path.relpath(path, base) if base.is_dir() else ''}\0".encode())
            with open(path, "rb", buffering=0) as f:
                while count := f.readinto(buffer):
                    digest.update(memoryview(buffer)[:count])
    return digest.hexdigest()
