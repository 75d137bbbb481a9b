"""Reading a prepared folder back, in either layout: the `save_to_disk` folder tinystories-prepare writes, or the
Hub repository layout (a `README.md` card naming `data/` parquet shards: `tinystories-push --to-folder`, a pushed
repository downloaded by id). Every file is checked before it is trusted (`read_prepared`); `load_prepared` is
what users call.
"""
import os
from pathlib import Path

import datasets
import pyarrow as pa

from ..errors import IN_CLI, TinyStoriesError, flag, reason
from ..sources import HUB_ID
from ..sources.layout import format_of
from ..supervision import api_errors
from ..tokenize.backdoor.plant import BACKDOOR_INFO, EVAL_SPLIT
from ..tokenize.passes import reduced_features
from ..utils.hub_access import hub_errors, require_hub
from ..utils.json_files import SPLIT_WANTED, Check, check, read_text, relative_file, split_name
from ..vocabulary.tokenizer import TinyStoriesTokenizer
from .folder import (
    CARD,
    DATA_DIR,
    PREPARE_INFO,
    RECREATE,
    TOKENIZER_DIR,
    check_arrow,
    check_datasets_json,
    read_prepare_info,
)

MAX_CARD_BYTES = 1 << 20  # a card is a few kB; a larger one is not read (YAML parsing is slow)


# The data files of the card's configs: the splits under data/, a backdoored folder's prompts under backdoor_eval/.
CARD_SCHEMA = {"configs": [{"config_name": str, "data_files": [{"split": Check(str, split_name, SPLIT_WANTED), "path": Check(
    str, lambda v: relative_file(v) and v.startswith((DATA_DIR + "/", EVAL_SPLIT + "/")),
    f"a pattern under {DATA_DIR}/ or {EVAL_SPLIT}/")}]}]}


def download_repo(repo_id: str, *, revision: str | None = None, tokenizer_only: bool = False) -> Path:
    """Download a pushed repository (or only its tokenizer and prepare_info.json) into the huggingface_hub
    cache and return the local folder; parquet and JSON files only.

    Example:
        >>> download_repo("me/tinystories-10k", tokenizer_only=True)  # doctest: +SKIP
        PosixPath('~/.cache/huggingface/hub/datasets--me--tinystories-10k/snapshots/...')
    """
    from huggingface_hub import snapshot_download

    require_hub(f"could not download Hub dataset {repo_id!r}", "pass a local folder (written by tinystories-prepare "
                "or tinystories-push --to-folder), or set HF_HUB_OFFLINE=1 to use a copy already in the Hugging Face "
                "cache")
    patterns = [f"{TOKENIZER_DIR}/*.json", f"{TOKENIZER_DIR}/*/*.json", f"{TOKENIZER_DIR}/*/*.model", PREPARE_INFO]
    if not tokenizer_only:
        patterns += [CARD, f"{DATA_DIR}/*.parquet", BACKDOOR_INFO, f"{EVAL_SPLIT}/*.parquet"]
    try:
        folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns))
    except hub_errors() as e:
        raise TinyStoriesError(
            f"could not download Hub dataset {repo_id!r} ({reason(e)}); if the Hub is unreachable, pass a local "
            "folder (written by tinystories-prepare or tinystories-push --to-folder)") from None
    if not (folder / PREPARE_INFO).exists():
        raise TinyStoriesError(f"Hub dataset {repo_id!r} has no {PREPARE_INFO}: it was not pushed by "
                               "tinystories-push; load it with datasets.load_dataset instead")
    return folder


def is_hub_layout(path: Path) -> bool:
    """True for a folder in the repository layout (README.md card and data/ shards).

    Example:
        >>> is_hub_layout(Path("ts_hub")), is_hub_layout(Path("tinystories_prepared"))  # doctest: +SKIP
        (True, False)
    """
    path = Path(path)  # the card is checked when read: a damaged one is named, not taken for another layout
    return os.path.lexists(path / CARD) and (path / DATA_DIR).is_dir() and not (path / "dataset_dict.json").exists()


def card_yaml(path: Path) -> dict:
    """The YAML metadata of the folder's card, checked: the `configs` datasets reads the data files from."""
    import yaml

    card = Path(path) / CARD
    fix = "re-create it with tinystories-push --to-folder"
    if card.is_symlink() and Path(path).resolve() not in card.resolve().parents:  # as for every file it names
        raise TinyStoriesError(f"{card}: a symlink to {os.readlink(card)}, outside the folder; {fix}")
    text = read_text(card, fix=fix, what="Markdown", limit=MAX_CARD_BYTES)
    if not text.startswith("---\n") or "\n---" not in text[3:]:
        raise TinyStoriesError(f"{card}: no YAML metadata block (--- ... ---); {fix}")
    try:
        meta = yaml.safe_load(text[4:text.index("\n---", 3)])
    except yaml.YAMLError as e:
        raise TinyStoriesError(f"{card}: YAML metadata not readable ({reason(e)}); {fix}") from None
    except RecursionError:
        raise TinyStoriesError(f"{card}: YAML metadata nested too deeply; {fix}") from None
    check(meta, CARD_SCHEMA, card, fix=fix)
    return meta


def load_hub_folder(path: Path, info: dict | None = None) -> datasets.DatasetDict:
    """The `DatasetDict` of a folder in the repository layout, read by `datasets.load_dataset` from its card.
    Splits recorded in `info` with 0 rows (the Hub cannot hold an empty split: push leaves them out and the
    card names them) come back empty, so both layouts give the same splits.

    Example:
        >>> load_hub_folder(Path("ts_hub"))["train"].features["input_ids"]  # doctest: +SKIP
        List(Value('uint16'))
    """
    import yaml

    card_yaml(path)
    try:
        dataset = datasets.load_dataset(str(path))
    except (datasets.exceptions.DatasetsError, ValueError, TypeError, KeyError, FileNotFoundError, yaml.YAMLError,
            pa.ArrowException) as e:  # DatasetsError: also the split sizes or names differing from the card's
        raise TinyStoriesError(f"{path}: could not read the repository layout ({type(e).__name__}: {reason(e):.300}); "
                               "re-create it with tinystories-push --to-folder") from None
    for split, counts in (info or {}).get("splits", {}).items():
        if split not in dataset and counts["kept"] == 0:
            features = reduced_features(bool(info["config"].get("keep_text")))
            dataset[split] = datasets.Dataset.from_dict({name: [] for name in features}, features=features,
                                                        split=split)
    return dataset


def check_prepared_path(path_or_repo_id) -> None:
    """Refuse a prepared-folder argument that cannot be one: a path that does not exist (unless it is spelled
    as a Hub repo id), a dangling link, a file. Commands call it before they download, read or write anything,
    so the error names the input, never an output folder they would have made beside it."""
    path = Path(path_or_repo_id).expanduser()
    if not os.path.lexists(path) and HUB_ID.match(str(path_or_repo_id)):
        return
    wanted = "pass a folder written by tinystories-prepare or tinystories-push --to-folder"
    if not path.exists():
        what = "is a symlink to nothing (dangling, or a loop)" if os.path.lexists(path) else "not found"
        raise TinyStoriesError(f"{path} {what}; {wanted}, or the Hub repo id of a pushed dataset")
    if not path.is_dir():
        stories = f" (a file of stories is prepared first: tinystories-prepare --source {path})" if format_of(
            str(path)) else ""
        raise TinyStoriesError(f"{path} is a file, not a folder; {wanted}{stories}")


def read_prepared(path_or_repo_id, *, revision=None) -> tuple:
    """`load_prepared`'s checks and load, returning also what they were checked against: `(DatasetDict,
    TinyStoriesTokenizer, prepare_info dict)`, one consistent snapshot for a caller that reads the folder's
    files again (a push copies its tokenizer and prepare_info.json)."""
    check_prepared_path(path_or_repo_id)
    path = Path(path_or_repo_id).expanduser()
    if not os.path.lexists(path) and HUB_ID.match(str(path_or_repo_id)):
        path = download_repo(str(path_or_repo_id), revision=revision)
    info = read_prepare_info(path)
    hub_layout = is_hub_layout(path)
    fix = "re-create it with tinystories-push --to-folder" if hub_layout else RECREATE
    # The recorded data files are the save_to_disk shards; a pushed folder holds parquet shards instead.
    missing = [] if hub_layout else [name for name in info.get("data_files", {}) if not (path / name).is_file()]
    if missing:
        raise TinyStoriesError(f"{path / missing[0]}: missing ({len(missing)} recorded data file(s) missing); "
                               f"the folder is incomplete, {RECREATE}")
    if not (path / TOKENIZER_DIR).is_dir():
        raise TinyStoriesError(f"{path / TOKENIZER_DIR}: missing; the folder is incomplete, {fix}")
    if hub_layout:
        dataset = load_hub_folder(path, info)
    else:
        check_datasets_json(path, info)
        try:
            dataset = datasets.load_from_disk(str(path))
        except (OSError, ValueError, LookupError, TypeError, AttributeError, pa.ArrowException) as e:  # damaged
            raise TinyStoriesError(f"{path}: cannot be loaded ({type(e).__name__}: {reason(e)}); run "
                                   f"tinystories-validate to find the damaged file, then {RECREATE}") from None
    tokenizer = TinyStoriesTokenizer.from_pretrained(path / TOKENIZER_DIR)
    if tokenizer.fingerprint != info["vocab_sha256"]:
        raise TinyStoriesError(f"{path / TOKENIZER_DIR}: vocabulary hash differs from {PREPARE_INFO}; the "
                               f"tokenizer was edited or replaced, {fix}")
    extra = [split for split in dataset if split not in info["splits"]]
    if extra:  # a split nothing records would reach the user unchecked
        raise TinyStoriesError(f"{path}: split {extra[0]!r} is not one of the splits {PREPARE_INFO} records "
                               f"({', '.join(info['splits'])}); the folder was altered, {fix}")
    for split, counts in info["splits"].items():
        if split not in dataset or dataset[split].num_rows != counts["kept"]:
            found = dataset[split].num_rows if split in dataset else "missing"
            raise TinyStoriesError(f"{path / split}: {found} rows but {PREPARE_INFO} records {counts['kept']}; "
                                   "the folder is incomplete or altered, re-create it")
        found, expected = dataset[split].features.get("input_ids"), reduced_features(False, tokenizer.id_dtype)["input_ids"]
        if found != expected:
            raise TinyStoriesError(f"{path / split}: input_ids is {found}, not {expected}; the folder was "
                                   "altered, re-create it")
        check_arrow(dataset[split], path / split)
    return dataset, tokenizer, info


@api_errors
def load_prepared(path_or_repo_id, *, revision=None):
    """Load prepared data: `(DatasetDict, TinyStoriesTokenizer)`, after checks that cost no full read, from
    a folder written by tinystories-prepare, a folder in the Hub layout (`tinystories-push --to-folder`), or
    the repo id of a pushed dataset (downloaded with huggingface_hub into its cache; `revision` picks a
    branch/tag). Raises a one-line `TinyStoriesError` naming the damaged file or key.

    Example:
        >>> dataset, tokenizer = load_prepared("tinystories_prepared")  # doctest: +SKIP
        >>> dataset, tokenizer = load_prepared("someone/tinystories-10k")  # doctest: +SKIP
        >>> dataset["train"][0]["input_ids"][:4], tokenizer.vocab_size  # doctest: +SKIP
    """
    dataset, tokenizer, _ = read_prepared(path_or_repo_id, revision=revision)
    return dataset, tokenizer


def reuse_vocabulary(path, *, backend: str = "auto", given_as: str | None = None) -> tuple:
    """`(TinyStoriesTokenizer, prepare_info dict)` of a prepared folder (either layout), for a prepare that
    reuses its vocabulary exactly (`--vocabulary-from`): reduced, full or trained, the same ids, EOS/UNK/BOS,
    separator and fingerprint. Only `prepare_info.json` and `tokenizer/` are read.

    `given_as` names how the caller passed `path` in the error lines (default: `--vocabulary-from`).

    Raises:
        TinyStoriesError: the folder does not exist or is not a prepared folder (no prepare_info.json), or its
            tokenizer differs from the fingerprint its `prepare_info.json` records.

    Example:
        >>> tokenizer, info = reuse_vocabulary("tinystories_prepared")  # doctest: +SKIP
        >>> tokenizer.fingerprint == info["vocab_sha256"]  # doctest: +SKIP
        True
    """
    path = Path(path).expanduser()
    given_as = given_as or flag("vocabulary_from")
    if not path.is_dir():
        raise TinyStoriesError(f"{path}: not found or not a folder; pass a folder written by tinystories-prepare "
                               f"as {given_as}")
    if not os.path.lexists(path / PREPARE_INFO):
        raise TinyStoriesError(f"{path}: not a folder written by tinystories-prepare (no {PREPARE_INFO}); pass "
                               f"one as {given_as}")
    info = read_prepare_info(path)
    if not (path / TOKENIZER_DIR).is_dir():
        raise TinyStoriesError(f"{path / TOKENIZER_DIR}: missing; the folder is incomplete, {RECREATE}")
    tokenizer = TinyStoriesTokenizer.from_pretrained(path / TOKENIZER_DIR, backend=backend)
    if tokenizer.fingerprint != info["vocab_sha256"]:
        raise TinyStoriesError(f"{path / TOKENIZER_DIR}: vocabulary hash differs from {PREPARE_INFO}; the "
                               f"tokenizer was edited or replaced, {RECREATE}")
    return tokenizer, info


def same_vocabulary(a, b) -> tuple:
    """`(same: bool, line: str)`: whether two prepared folders give every token the same id (equal vocabulary
    fingerprints: the base tokenizer and the id table, or a full vocabulary's specials), and one line saying so.

    Example:
        >>> same_vocabulary("ts_clean", "ts_backdoor")  # doctest: +SKIP
        (True, 'ts_clean and ts_backdoor share ids: vocabulary sha256 3f1c..., 10000 ids (reduced)')
    """
    first, _ = reuse_vocabulary(a, given_as="DIR" if IN_CLI.get() else "same_vocabulary's first argument")
    second, _ = reuse_vocabulary(b, given_as=flag("same_vocabulary", api="same_vocabulary's second argument"))
    if first.fingerprint == second.fingerprint:
        return True, (f"{a} and {b} share ids: vocabulary sha256 {first.fingerprint[:12]}..., "
                      f"{first.vocab_size} ids ({first.kind})")
    return False, (f"{a} and {b} do NOT share ids: vocabulary sha256 {first.fingerprint[:12]}... "
                   f"({first.vocab_size} ids, {first.kind}) vs {second.fingerprint[:12]}... ({second.vocab_size} ids, "
                   f"{second.kind}); prepare one with --vocabulary-from the other")
