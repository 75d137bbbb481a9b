"""`tinystories-validate DIR`: prove a prepared folder is intact and consistent before spending GPU hours on it.

    tinystories-validate demo_prepared     # one "ok" line, or one "error:" line naming the file, exit code 2
    tinystories-validate ts_hub            # the same checks on the Hub repository layout (tinystories-push)

Checks, in order: every file recorded in `prepare_info.json` is present with the same sha256 (Arrow files
carry no checksum of their own, so this is what catches a flipped byte); the folder loads (`load_prepared`:
vocabulary hash, row counts, features); then, per split, from the Arrow buffers: every id `< vocab_size`,
no separator (EOS, or BOS where there is no EOS) inside a story, `length` equals the number of ids and lies in `[min_length, max_length]`, and the
token and UNK counts equal the recorded ones. In the Hub layout the tokenizer files are hashed (the parquet
shards have no recorded hash: the content checks cover them) and the card's YAML is checked. Last, the
`tokenization_tinystories.py` the folder holds (what `AutoTokenizer.from_pretrained(..., trust_remote_code=True)`
runs) must be this package's own, byte for byte: hashes re-recorded after replacing it do not hide it.
"""
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..config import CommandParser, add_config_arguments, config_from_args, option
from ..errors import TinyStoriesError, flag
from ..supervision import api_errors, cli_errors, doing
from ..tokenize.backdoor.plant import BACKDOOR_INFO, BACKDOOR_SCHEMA
from ..tokenize.backdoor.sealed import SEALED_FILE, unseal
from ..utils.json_files import read_json
from ..vocabulary.saved import REMOTE_MODULE, module_differs
from .folder import PREPARE_INFO, TOKENIZER_DIR, file_sha256, read_prepare_info
from .load import check_prepared_path, is_hub_layout, read_prepared, same_vocabulary


@dataclass
class ValidateConfig:
    """Options of `tinystories-validate`; `path` is the prepared folder (the positional DIR)."""

    path: str = option("tinystories_prepared", "prepared folder to check")
    hash_files: bool = option(True, "compare every data and tokenizer file with its sha256 in prepare_info.json "
                                     "(reads every byte; --no-hash-files runs only the content checks)")
    unseal: bool = option(False, "instead of the checks: check the seal of a blind experiment's "
                          "backdoor.sealed.json and print the trigger it holds")
    same_vocabulary: str | None = option(None, "instead of the checks: say in one line whether DIR and this prepared "
                                         "folder give every token the same id (exit code 1 if not)")


def _progress(total: int, what: str, unit: str):
    """A tqdm bar on stderr, as the other long commands show (datasets' tqdm: off with
    HF_DATASETS_DISABLE_PROGRESS_BARS, as theirs)."""
    from datasets.utils.tqdm import tqdm

    return tqdm(total=total, desc=what, unit=unit, unit_scale=unit == "B")


def check_file_hashes(path: Path, info: dict, *, hub_layout: bool = False) -> int:
    """Compare each recorded file with its sha256; raise naming the first changed or missing file. The
    recorded data files are prepare's Arrow files: a folder in the Hub layout holds parquet shards instead."""
    recorded = {} if hub_layout else dict(info.get("data_files", {}))
    recorded.update({f"tokenizer/{name}": digest for name, digest in info.get("tokenizer_files", {}).items()})
    size = sum((path / name).stat().st_size for name in recorded if (path / name).is_file())
    with _progress(size, "validate: hashing files", "B") as bar:
        bad = [name for name, digest in recorded.items()
               if not (path / name).is_file() or file_sha256(path / name, progress=bar.update) != digest]
    if bad:
        what = "is missing" if not (path / bad[0]).is_file() else f"has changed (sha256 differs from {PREPARE_INFO})"
        more = f" (and {len(bad) - 1} more: {', '.join(bad[1:4])})" if len(bad) > 1 else ""
        raise TinyStoriesError(f"{path / bad[0]} {what}{more}; the folder was edited or damaged, re-create it "
                               "with tinystories-prepare")
    return len(recorded)


def check_remote_module(path: Path) -> None:
    """Raise naming the file when the folder's `tokenization_tinystories.py` (in `tokenizer/`, and at the top of
    a folder in the Hub layout) is not this package's own: users run it with `trust_remote_code=True`."""
    for folder in (path / TOKENIZER_DIR, path):
        if module_differs(folder):
            raise TinyStoriesError(f"{folder / REMOTE_MODULE}.py differs from tinystories-hf's own module (the code "
                                   "AutoTokenizer runs with trust_remote_code=True: replaced, or from another "
                                   "version); do not load it with trust_remote_code=True, re-create the folder with "
                                   "tinystories-prepare")


def check_split(where: Path, dataset, counts: dict, *, vocab_size: int, min_length: int, max_length: int | None,
                separator_id: int, unk_id: int | None) -> dict:
    """Content checks of one split straight from its Arrow buffers; raise naming the split folder and row.
    `max_length` None: stories were kept whole; `unk_id` None: the vocabulary has no UNK."""
    longest = np.iinfo(np.int64).max if max_length is None else max_length
    shortest = max(min_length, 1)
    tokens = unk = row = 0
    with _progress(len(dataset), f"validate: checking {where.name}", " stories") as bar:
        for batch in dataset.with_format("arrow").iter(batch_size=100_000):
            ids = _check_batch(batch, where, row, vocab_size=vocab_size, separator_id=separator_id,
                               shortest=shortest, longest=longest, max_length=max_length)
            tokens += len(ids)
            unk += 0 if unk_id is None else int(np.count_nonzero(ids == unk_id))
            row += batch.num_rows
            bar.update(batch.num_rows)
    for name, found in (("tokens", tokens), ("unk_tokens", unk)):
        if found != counts[name]:
            raise TinyStoriesError(f"{where}: {found} {name} but {PREPARE_INFO} records {counts[name]}; the data "
                                   "was altered, re-create the folder")
    return {"rows": row, "tokens": tokens, "unk_tokens": unk}


def _check_batch(batch, where: Path, row: int, *, vocab_size: int, separator_id: int, shortest: int, longest: int,
             max_length: int | None) -> np.ndarray:
    """The checks of `check_split` on one Arrow batch whose first row is `row`; returns its ids, flat."""
    column = batch.column("input_ids").combine_chunks()
    ids = column.flatten().to_numpy()
    sizes = np.diff(column.offsets.to_numpy())
    lengths = batch.column("length").to_numpy()
    ends = np.cumsum(sizes)
    checks = [(np.searchsorted(ends, np.flatnonzero(ids >= vocab_size), side="right"),
               f"an id >= vocab_size {vocab_size}"),
              (np.searchsorted(ends, np.flatnonzero(ids == separator_id), side="right"),
               f"the separator id {separator_id} inside the story"),
              (np.flatnonzero(sizes != lengths), "a length column that differs from its number of ids"),
              (np.flatnonzero((lengths < shortest) | (lengths > longest)),
               f"a length outside [min_length {shortest}, max_length {max_length}]")]
    for bad_rows, what in checks:
        if len(bad_rows):
            raise TinyStoriesError(f"{where}: row {row + int(bad_rows[0])} has {what}; the data was altered, "
                                   "re-create the folder")
    return ids


def check_backdoor(path: Path, dataset, info: dict, *, check_seal_file: bool = True) -> dict:
    """A backdoored folder's provenance: `backdoor.json` checked (`BACKDOOR_SCHEMA`), every split holding
    `source_row` and train `backdoor`, and train's `backdoor` rows all among the recorded rewritten rows, as many
    as recorded; a blind experiment's seal present and intact (`check_seal`; `check_seal_file` False for the Hub
    layout, which never carries it); returns {"rewritten": rows flagged, "sealed": whether blind}."""
    record = read_json(path / BACKDOOR_INFO, BACKDOOR_SCHEMA, fix="re-create the folder with tinystories-prepare")
    for split in info["splits"]:
        missing = [name for name in ("source_row", "backdoor") if name not in dataset[split].column_names]
        if missing:
            raise TinyStoriesError(f"{path / split}: no {missing[0]!r} column, which a backdoored folder has in every "
                                   "split; re-create the folder with tinystories-prepare")
    for split in info["splits"]:
        if split != "train" and dataset[split].data.column("backdoor").to_numpy().any():
            raise TinyStoriesError(f"{path / split}: rows marked backdoor outside train (only train is rewritten); "
                                   "the folder was altered, re-create it")
    train = dataset["train"].data
    flagged = train.column("backdoor").to_numpy()
    rows = train.column("source_row").to_numpy()[flagged]
    # A blind experiment records no rows (they would name the choice): only the count is checked there.
    stray = np.setdiff1d(rows, np.asarray(record["rewritten_rows"], dtype=np.int64)) if record["trigger"] else []
    if len(stray):
        raise TinyStoriesError(f"{path / 'train'}: source_row {int(stray[0])} is marked backdoor but is not among the "
                               f"rewritten rows of {BACKDOOR_INFO}; the folder was altered, re-create it")
    kept = record["splits"]["train"].get("rewritten_kept")
    if kept is not None and kept != len(rows):
        raise TinyStoriesError(f"{path / 'train'}: {len(rows)} rows marked backdoor but {BACKDOOR_INFO} records "
                               f"{kept}; the folder was altered, re-create it")
    if record["trigger"] is None and check_seal_file:
        check_seal(path)
    return {"rewritten": len(rows), "sealed": record["trigger"] is None}


def check_seal(path: Path) -> str:
    """The trigger sealed in a blind experiment's folder `path` (`sealed.unseal`: schema and sha256 checked),
    with a one-line TinyStoriesError for a seal that is gone: `backdoor.json` records the trigger sealed in
    `backdoor.sealed.json`, so a folder without it is incomplete and its choice lost. Callers that only check
    the seal discard the result: nothing prints it but `--unseal`."""
    sealed = path / SEALED_FILE
    if not os.path.lexists(sealed):
        raise TinyStoriesError(f"{sealed}: missing, though {BACKDOOR_INFO} records the trigger sealed there: the "
                               "folder is incomplete and the blind choice is lost; restore the file from a copy "
                               "of the folder, or prepare the blind experiment again")
    return unseal(sealed)


def sealed_trigger(path) -> str:
    """`tinystories-validate DIR --unseal`: the trigger of the blind experiment in `path`, after checking that
    `path` is one (a prepared folder whose `backdoor.json` records a sealed trigger) and its seal (`check_seal`);
    otherwise one line saying what the folder is instead and what --unseal needs.

    Example:
        >>> sealed_trigger("ts_blind")  # doctest: +SKIP
        'Sara'
    """
    path = Path(path).expanduser()
    blind = f"{flag('unseal', True)} reads the trigger of a blind experiment (tinystories-prepare " \
            f"{flag('backdoor_trigger', 'random:A,B,...')})"
    if not path.is_dir():
        raise TinyStoriesError(f"{path}: not found or not a folder; {blind}: pass its folder as DIR")
    if not os.path.lexists(path / PREPARE_INFO):
        raise TinyStoriesError(f"{path}: not a folder written by tinystories-prepare (no {PREPARE_INFO}); {blind}: "
                               "pass its folder as DIR")
    if not os.path.lexists(path / BACKDOOR_INFO):
        raise TinyStoriesError(f"{path}: not a backdoored folder (no {BACKDOOR_INFO}), so nothing is sealed; "
                               f"{blind}")
    record = read_json(path / BACKDOOR_INFO, BACKDOOR_SCHEMA, fix="re-create the folder with tinystories-prepare")
    if record["trigger"] is not None:
        raise TinyStoriesError(f"{path}: not a blind experiment: its trigger {record['trigger']!r} is in "
                               f"{BACKDOOR_INFO}, nothing is sealed; {blind}")
    return check_seal(path)


@api_errors
def validate_prepared(path, *, hash_files: bool = True) -> dict:
    """Run every check on a prepared folder; return a summary, or raise a one-line `TinyStoriesError`.

    Example:
        >>> summary = validate_prepared("demo_prepared")  # doctest: +SKIP
        >>> summary["splits"]["train"]["rows"], summary["hashed_files"]  # doctest: +SKIP
        (2970, 9)
    """
    path = Path(path).expanduser()
    doing(f"validating {path}")
    check_prepared_path(path)
    info = read_prepare_info(path)
    hub_layout = is_hub_layout(path)
    hashed = check_file_hashes(path, info, hub_layout=hub_layout) if hash_files else 0
    dataset, tokenizer, info = read_prepared(path)
    check_remote_module(path)
    config = info["config"]
    try:
        splits = {split: check_split(path / split, dataset[split], counts, vocab_size=tokenizer.vocab_size,
                                     min_length=config["min_length"], max_length=config["max_length"],
                                     separator_id=tokenizer.separator_id, unk_id=tokenizer.unk_id)
                  for split, counts in info["splits"].items()}
    except pa.ArrowException as e:  # only reachable with --no-hash-files: the hashes name damaged files first
        raise TinyStoriesError(f"{path}: unreadable Arrow data ({str(e).splitlines()[0]}); run without "
                               f"{flag('hash_files', False)} to name the damaged file, then re-create the "
                               "folder") from None
    backdoor = check_backdoor(path, dataset, info, check_seal_file=not hub_layout) if "backdoor" in info else None
    return {"path": str(path), "vocab_size": tokenizer.vocab_size, "vocab_sha256": info["vocab_sha256"],
            "hashed_files": hashed, "backdoor": backdoor, "data_hashes_recorded": "data_files" in info or hub_layout,
            "layout": "hub" if hub_layout else "prepared", "splits": splits}


def check_modes(config: ValidateConfig) -> None:
    """--unseal and --same-vocabulary each replace the checks: one at a time, and --no-hash-files (an option of
    the checks) with neither; one line naming the options otherwise."""
    modes = [flag(name, value) for name, value in (("unseal", True), ("same_vocabulary", config.same_vocabulary))
             if getattr(config, name) not in (None, False)]
    if len(modes) > 1:
        raise TinyStoriesError(f"{' and '.join(modes)}: each replaces the checks; pass one of them per run")
    if modes and not config.hash_files:
        raise TinyStoriesError(f"{flag('hash_files', False)} is an option of the checks, which {modes[0]} "
                               f"replaces; drop {flag('hash_files', False)}")


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(prog="tinystories-validate", description=__doc__.splitlines()[0].replace("`", ""))
    parser.add_argument("path", metavar="DIR", help="prepared folder to check")
    add_config_arguments(parser, ValidateConfig, skip=("path",))
    config = config_from_args(parser.parse_args(argv), ValidateConfig)
    check_modes(config)
    if config.unseal:
        print(f"sealed trigger of {config.path}: {sealed_trigger(config.path)}")
        return 0
    if config.same_vocabulary is not None:
        same, line = same_vocabulary(config.path, config.same_vocabulary)
        print(line)
        return 0 if same else 1
    summary = validate_prepared(config.path, hash_files=config.hash_files)
    splits = "; ".join(f"{split} {s['rows']:,} rows, {s['tokens']:,} tokens" for split, s in summary["splits"].items())
    hashes = f"{summary['hashed_files']} files match their sha256" if config.hash_files else "file hashes not checked"
    if config.hash_files and not summary["data_hashes_recorded"]:
        hashes += " (data file hashes not recorded: folder written before they were)"
    if config.hash_files and summary["layout"] == "hub":
        hashes += " (the parquet shards have no recorded hash: their content was checked)"
    layout = " (Hub layout)" if summary["layout"] == "hub" else ""
    backdoor = summary["backdoor"]
    seal = "" if not backdoor or not backdoor["sealed"] else \
        f", trigger sealed ({SEALED_FILE} not carried: the Hub layout leaves it out)" if summary["layout"] == "hub" \
        else f", trigger sealed ({SEALED_FILE} intact)"
    backdoor = f"; backdoored: {backdoor['rewritten']:,} train rows rewritten{seal}" if backdoor else ""
    print(f"ok {summary['path']}{layout}: {splits}; ids < {summary['vocab_size']}; {hashes}{backdoor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
