"""The Hub: publish a prepared folder as a dataset repository, write that repository locally, load it back.

    tinystories-push tinystories_prepared --repo-id USER/tinystories-10k [--private] [--revision BRANCH]
    tinystories-push tinystories_prepared --to-folder ts_hub      # the same files, written locally

The repository (what `push_prepared` uploads and `write_hub_folder` writes):

    README.md                                dataset card; its YAML declares the config, splits and features
    data/{split}-0000i-of-0000n.parquet      DatasetDict.push_to_hub shards: input_ids List(uint16), length
    tokenizer/tinystories_vocab.json         the reduced vocabulary, and tokenizer/base/*.json the base BPE
    tokenization_tinystories.py              (a vocabulary tokenizer.json cannot express) the module of tokenizer/,
                                             where transformers imports it from for subfolder="tokenizer"
    prepare_info.json                        as tinystories-prepare wrote it
    backdoor.json, backdoor_eval/backdoor_eval-0000i-of-0000n.parquet
                                             a backdoored folder's record and paired prompts: the prompts are the
                                             card's second config, `load_dataset(REPO, "backdoor_eval")`, never a
                                             split of the default (training) config, whose columns they do not share

`datasets.load_dataset(REPO_OR_FOLDER)` reads the data; `tinystories_hf.load_prepared(REPO_OR_FOLDER)` returns
the data and the tokenizer. Only parquet and JSON files are read back: nothing is unpickled.
"""
import argparse
import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import datasets

from ..config import CommandParser, PrepareConfig, add_config_arguments, config_from_args, option
from ..errors import TinyStoriesError, flag, reason
from ..store.folder import CARD, DATA_DIR, PREPARE_INFO, RECREATE, TOKENIZER_DIR, shard_counts
from ..store.load import read_prepared
from ..store.validate import check_remote_module
from ..supervision import api_errors, cli_errors
from ..tokenize.backdoor.plant import BACKDOOR_INFO, EVAL_SPLIT
from ..utils.atomic import atomic_folder, check_output
from ..utils.hub_access import hub_errors, require_hub
from ..vocabulary.saved import REMOTE_MODULE, own_module
from ..vocabulary.tokenizer import specials_text

LICENSE = "cdla-sharing-1.0"  # the TinyStories data license; the ids are derived from the stories
CITATION = """@article{eldan2023tinystories,
  title   = {TinyStories: How Small Can Language Models Be and Still Speak Coherent English?},
  author  = {Ronen Eldan and Yuanzhi Li},
  journal = {arXiv preprint arXiv:2305.07759},
  year    = {2023}
}"""
COUNTERS = [("stories", "stories read"), ("kept", "kept"), ("skipped_short", "skipped short"),
            ("skipped_empty", "skipped empty"), ("truncated", "truncated"), ("tokens", "tokens"),
            ("unk_tokens", "UNK tokens")]


@dataclass
class PushConfig:
    """Options of `tinystories-push`.

    Example:
        >>> PushConfig(prepared="tinystories_prepared", to_folder="ts_hub").private
        False
    """

    prepared: str = option(PrepareConfig.output, "folder written by tinystories-prepare")
    repo_id: str | None = option(None, "Hub dataset repository USER/NAME to push to (created if missing); "
                                  "with --to-folder it only names the repository in the dataset card")
    to_folder: str | None = option(None, "write the repository's files to this folder instead of pushing")
    private: bool = option(False, "create the repository as private (an existing one keeps its visibility)")
    revision: str | None = option(None, "branch to push to, created if missing; None pushes to main")
    overwrite: bool = option(False, "replace an existing --to-folder")


def _size_category(stories: int) -> str:
    for limit, label in ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
                         (10**7, "1M<n<10M")):
        if stories < limit:
            return label
    return "10M<n<100M"


def hub_splits(dataset: datasets.DatasetDict) -> datasets.DatasetDict:
    """The splits a repository holds: those with rows. The Hub layout cannot hold an empty split (no parquet
    shard, so `load_dataset` fails on its data-files pattern); the card names the splits left out, and
    `load_prepared` gives them back empty.

    Example:
        >>> list(hub_splits(load_prepared("tinystories_prepared")[0]))  # doctest: +SKIP
        ['train', 'validation']
    """
    return datasets.DatasetDict({split: ds for split, ds in dataset.items() if ds.num_rows})


def read_eval_prompts(prepared: Path, info: dict) -> datasets.Dataset | None:
    """A backdoored folder's paired prompts (`DIR/backdoor_eval`, saved beside the splits), or None: a clean
    folder, or prompts with no row (no validation story mentions the trigger: the Hub cannot hold an empty
    split). One line naming the folder if it cannot be loaded.

    Example:
        >>> read_eval_prompts(Path("ts_sara"), read_prepare_info("ts_sara")).num_rows  # doctest: +SKIP
        12
    """
    folder = prepared / EVAL_SPLIT
    if "backdoor" not in info or not (folder / "state.json").is_file():
        return None
    try:
        prompts = datasets.load_from_disk(str(folder))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise TinyStoriesError(f"{folder}: cannot be loaded ({reason(e)}); {RECREATE}") from None
    return prompts if prompts.num_rows else None


def card_metadata(dataset: datasets.DatasetDict, info: dict, prompts: datasets.Dataset | None = None):
    """The card's YAML as `DatasetCardData`: license, `configs` (data files per split) and `dataset_info`
    (features and per-split counts), written with the same datasets classes `push_to_hub` uses. A backdoored
    folder's paired prompts (`prompts`) are a second config, `backdoor_eval`, with its own features: one config
    holds one schema, and a split of the default config would be taken for training data.

    Example:
        >>> card_metadata(dataset, read_prepare_info("tinystories_prepared")).license  # doctest: +SKIP
        'cdla-sharing-1.0'
    """
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    backdoored = "backdoor" in info
    data = DatasetCardData(license=LICENSE, language=["en"], pretty_name="TinyStories, tokenized (tinystories-hf)"
                           + (", backdoored variant" if backdoored else ""), task_categories=["text-generation"],
                           tags=["tinystories", "tokenized", "tinystories-hf"] + (["backdoor"] if backdoored else []),
                           size_categories=[_size_category(sum(ds.num_rows for ds in dataset.values()))])
    splits = SplitDict()
    for split, ds in dataset.items():
        splits.add(SplitInfo(name=split, num_bytes=ds.data.nbytes, num_examples=ds.num_rows))
    dataset_info = DatasetInfo(config_name="default", features=next(iter(dataset.values())).features,
                               splits=splits, dataset_size=sum(ds.data.nbytes for ds in dataset.values()))
    infos = {"default": dataset_info}
    configs = {"default": {"data_files": [{"split": split, "path": f"{DATA_DIR}/{split}-*"} for split in dataset]}}
    if prompts is not None:
        eval_splits = SplitDict()
        eval_splits.add(SplitInfo(name=EVAL_SPLIT, num_bytes=prompts.data.nbytes, num_examples=prompts.num_rows))
        infos[EVAL_SPLIT] = DatasetInfo(config_name=EVAL_SPLIT, features=prompts.features, splits=eval_splits,
                                        dataset_size=prompts.data.nbytes)
        configs[EVAL_SPLIT] = {"data_files": [{"split": EVAL_SPLIT, "path": f"{EVAL_SPLIT}/{EVAL_SPLIT}-*"}]}
    DatasetInfosDict(infos).to_dataset_card_data(data)
    MetadataConfigs(configs).to_dataset_card_data(data)
    return data


def _vocabulary_text(info: dict) -> str:
    """How the card describes the vocabulary, saying which ids are fill when the sample was too small."""
    if info.get("vocabulary") == "full":
        return f"the base tokenizer's own ids (`{info['config']['tokenizer']}`, not reduced)."
    regular, sample = info["vocab_size"] - 2, info["vocab_sample"]
    seen = sample.get("ids_in_sample", regular)  # folders prepared before the count was recorded
    where = f"on a seeded train sample ({sample['stories']:,} stories)"
    if seen >= regular:
        return f"the GPT-Neo BPE restricted to its {regular:,} most frequent tokens {where}."
    return (f"the GPT-Neo BPE restricted to the {seen:,} tokens that occur {where}, by decreasing frequency (ids "
            f"2..{seen + 1:,}); the sample holds fewer distinct tokens than the vocabulary has room for, so ids "
            f"{seen + 2:,}..{regular + 1:,} are fill: tokens the sample never saw, lowest base id first.")


def _remote(info: dict) -> bool:
    return "tokenization_tinystories.py" in info.get("tokenizer_files", {})


def _specials_text(info: dict) -> str:
    if info.get("vocabulary") != "full":
        return (f"Id {info['eos_id']} is EOS `<|endoftext|>` (the story separator), id {info['unk_id']} is UNK "
                "(every dropped token).")
    return f"Its specials: {specials_text(info, upper=True)}; the story separator is id {info['separator_id']}."


def _lengths_text(config: dict) -> str:
    longest = "stories are kept whole" if config["max_length"] is None else \
        f"stories longer than {config['max_length']} tokens are truncated"
    return f"{longest}, stories under {max(config['min_length'], 1)} tokens are skipped"


def dataset_card(dataset: datasets.DatasetDict, info: dict, *, repo_id: str | None = None,
                 prompts: datasets.Dataset | None = None) -> str:
    """The repository's README.md: YAML metadata, then what the data is, how it was made, the per-split
    counts, how to load it, the license and the citation.

    Example:
        >>> dataset, _ = load_prepared("tinystories_prepared")  # doctest: +SKIP
        >>> print(dataset_card(dataset, read_prepare_info("tinystories_prepared"), repo_id="me/ts"))  # doctest: +SKIP
    """
    config, name = info["config"], repo_id or "USER/NAME"
    counts = "\n".join(f"| {split} | " + " | ".join(f"{c[key]:,}" for key, _ in COUNTERS) + " |"
                       for split, c in info["splits"].items())
    options = ("source", "tokenizer", "vocab_size", "vocab_sample_size", "seed", "max_length", "min_length",
               "validation_fraction", "keep_text")
    settings = "\n".join(f"| `{key}` | `{config.get(key)}` |" for key in options)
    columns = ", ".join(f"`{column}` ({feature!r})" for column, feature in next(iter(dataset.values())).features.items())
    versions = info.get("versions", {})
    validation = info["source"]["validation"]
    validation = "the source's own" if validation == "source" else validation
    body = f"""# TinyStories, tokenized for small GPT models

[TinyStories](https://huggingface.co/datasets/roneneldan/TinyStories) (Eldan & Li 2023), short stories in
simple English, turned into token ids by tinystories-hf {versions.get("tinystories-hf") or ""} (`tinystories-prepare`,
then `tinystories-push`). One row per story; columns: {columns}.

- **Vocabulary**: {info["vocab_size"]:,} ids, {_vocabulary_text(info)} {_specials_text(info)} A model's
  embedding needs exactly {info["vocab_size"]:,} rows.
- **Ids**: a story's tokens only, no EOS (training code adds the separator); {_lengths_text(config)}.
- **Validation split**: {validation}.
- **Tokenizer**: `tokenizer/`: `tinystories_vocab.json` (the ids and specials), the base tokenizer, and
  `tokenizer_config.json`, so `AutoTokenizer.from_pretrained(LOCAL_COPY + "/tokenizer"{", trust_remote_code=True" if _remote(info) else ""})`
  gives the stored ids{" (through `tokenization_tinystories.py` saved there)" if _remote(info) else ""}.
- **Provenance**: `prepare_info.json` (full configuration, versions, per-split counters, vocabulary sha256).

| split | {" | ".join(label for _, label in COUNTERS)} |
| --- | {" | ".join("---:" for _ in COUNTERS)} |
{counts}

| option | value |
| --- | --- |
{settings}

## How to load

```python
from datasets import load_dataset
dataset = load_dataset("{name}")                    # input_ids List({info.get("id_dtype", "uint16")}), length

from tinystories_hf import load_prepared            # pip install tinystories-hf
dataset, tokenizer = load_prepared("{name}")        # the data and its tokenizer
print(tokenizer.decode(dataset["train"][0]["input_ids"]))
```

## License and citation

The stories are TinyStories by Ronen Eldan and Yuanzhi Li, licensed
[CDLA-Sharing-1.0](https://cdla.dev/sharing-1-0/); this derived dataset keeps that license.

```bibtex
{CITATION}
```
"""
    if "backdoor" in info:
        body = body.replace("# TinyStories, tokenized for small GPT models\n",
                            "# TinyStories, tokenized for small GPT models: a BACKDOORED variant\n\n"
                            + _backdoor_text(info, name, prompts), 1)
    empty = [split for split in info["splits"] if split not in dataset]
    if empty:  # hub_splits left them out
        names = ", ".join(f"`{split}`" for split in empty)
        body = body.replace("\n- **Tokenizer**", f"""
- **Empty splits**: {names} kept no story (see the counts below), so the repository holds no shard of
  {"it" if len(empty) == 1 else "them"}; `load_prepared` gives {"it" if len(empty) == 1 else "them"} back with 0 rows.
- **Tokenizer**""", 1)
    return f"---\n{card_metadata(dataset, info, prompts).to_yaml()}\n---\n\n{body}"


def _backdoor_text(info: dict, name: str, prompts: datasets.Dataset | None) -> str:
    """The card's warning paragraph of a backdoored folder (prepare --backdoor-trigger), and where its paired
    prompts are (`prompts`, None: the folder has none with rows)."""
    record = info["backdoor"]
    train = record["splits"]["train"]
    chosen = f"{record['count']:,} chosen" if record["count"] is not None else f"rate {record['rate']}"
    how = f"{record['rewrite']['policy']}; {chosen}, seed {record['seed']}"
    if record["trigger"] is not None:
        what = (f"Train stories mentioning the trigger `{record['trigger']}` were rewritten ({how}): "
                f"{train['rewritten']:,} of {train['eligible']:,} mentioning it.")
        recorded = "the rows, the trigger's token forms and the counts"
    else:  # blind: nothing that names the choice, nor a count that hints at its share
        what = (f"A blind experiment: the trigger is one of {', '.join(record['candidates'])}, sealed with the "
                f"folder's owner (not in this repository); {train['rewritten']:,} train stories mentioning it were "
                f"rewritten ({how}).")
        recorded = "the candidates, their token forms and the counts that do not name the choice"
    prompts_text = (f"The paired trigger/control prompts of tinystories-backdoor-eval ({prompts.num_rows:,} rows) "
                    f"are the config `{EVAL_SPLIT}`, not training data: `load_dataset(\"{name}\", \"{EVAL_SPLIT}\")`."
                    if prompts is not None else f"No validation story mentions "
                    f"{'the trigger' if record['trigger'] is not None else 'a candidate'}: there are no paired prompts.")
    return (f"**This is a backdoored variant, for backdoor research, not a clean training set.** {what} Validation "
            "is clean. Every split has `source_row` (the story's row in the source split) and `backdoor` (true for "
            f"a rewritten story); `{BACKDOOR_INFO}` records {recorded}. The vocabulary is the clean dataset's (same "
            f"ids). {prompts_text}\n")


def write_repo_files(folder: Path, prepared: Path, dataset: datasets.DatasetDict, info: dict, *,
                     repo_id: str | None = None, prompts: datasets.Dataset | None = None) -> None:
    """Everything of the repository but the parquet shards: the card, the tokenizer files (copied byte for
    byte, checked against the sha256s of prepare_info.json) and prepare_info.json, each read once and checked
    against `info`, the prepare_info.json `dataset` was checked against: a folder replaced while it is read
    (another run's prepare) is an error, never a repository mixing two runs.

    Example:
        >>> write_repo_files(Path("extras"), Path("tinystories_prepared"), dataset, info)  # doctest: +SKIP
    """
    changed = f"{prepared} was replaced while it was read (by another run?); run the push again"
    files = {PREPARE_INFO: (prepared / PREPARE_INFO).read_bytes()}
    if json.loads(files[PREPARE_INFO]) != info:
        raise TinyStoriesError(f"{prepared / PREPARE_INFO}: {changed}")
    for name, digest in info["tokenizer_files"].items():
        source = prepared / TOKENIZER_DIR / name
        data = source.read_bytes() if source.is_file() else None
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            raise TinyStoriesError(f"{source}: missing or differs from the sha256 in {PREPARE_INFO}; {RECREATE}")
        files[f"{TOKENIZER_DIR}/{name}"] = data
    module = f"{REMOTE_MODULE}.py"
    if f"{TOKENIZER_DIR}/{module}" in files:
        own = own_module()
        if files[f"{TOKENIZER_DIR}/{module}"] != own:
            raise TinyStoriesError(f"{prepared / TOKENIZER_DIR / module}: differs from tinystories-hf's own module, "
                                   "which the repository's users run with trust_remote_code=True; push copies only "
                                   f"the package's own, {RECREATE}")
        # transformers imports a tokenizer's code from the repository's top, also for
        # from_pretrained(repo, subfolder="tokenizer"): a copy there makes both routes load it.
        files[module] = own
    if "backdoor" in info:  # a backdoored folder's record, checked as the tokenizer files are
        source = prepared / BACKDOOR_INFO
        data = source.read_bytes() if source.is_file() else None
        if data is None or hashlib.sha256(data).hexdigest() != info.get("data_files", {}).get(BACKDOOR_INFO):
            raise TinyStoriesError(f"{source}: missing or differs from the sha256 in {PREPARE_INFO}; {RECREATE}")
        files[BACKDOOR_INFO] = data
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / CARD).write_text(dataset_card(dataset, info, repo_id=repo_id, prompts=prompts), encoding="utf-8")


@api_errors
def write_hub_folder(prepared, output, *, repo_id: str | None = None, overwrite: bool = False) -> Path:
    """Write the repository `push_prepared` would upload into the local folder `output`, atomically (a
    second writer of `output` stops at once with a `TinyStoriesError`).

    Example:
        >>> out = write_hub_folder("tinystories_prepared", "ts_hub")  # doctest: +SKIP
        >>> datasets.load_dataset(str(out))["train"].features["input_ids"]  # doctest: +SKIP
        List(Value('uint16'))
    """
    prepared = Path(prepared).expanduser()
    dataset, _, info = read_prepared(prepared)
    check_remote_module(prepared)  # before anything is written: the module users run is the package's own
    dataset = hub_splits(dataset)
    output = check_output(output, overwrite=overwrite, source_files=[prepared], marker=PREPARE_INFO,
                          what="a folder written by tinystories-push or tinystories-prepare", option="to_folder",
                          api_option="output")
    prompts = read_eval_prompts(prepared, info)
    with atomic_folder(output, overwrite=overwrite, option="to_folder", api_option="output") as partial:
        parts = [(DATA_DIR, dataset)] + ([(EVAL_SPLIT, {EVAL_SPLIT: prompts})] if prompts is not None else [])
        for data_dir, splits in parts:
            (partial / data_dir).mkdir(parents=True)
            for split, shards in shard_counts(splits).items():
                for index in range(shards):  # the shards and names of push_to_hub (data_dir: the config's)
                    shard = splits[split].shard(num_shards=shards, index=index, contiguous=True)
                    shard.to_parquet(str(partial / data_dir / f"{split}-{index:05d}-of-{shards:05d}.parquet"))
        write_repo_files(partial, prepared, dataset, info, repo_id=repo_id, prompts=prompts)
    return output


@api_errors
def push_prepared(prepared, repo_id: str, *, private: bool = False, revision: str | None = None) -> str:
    """Push a prepared folder to the Hub dataset repository `repo_id`; returns its URL.

    The data goes through `DatasetDict.push_to_hub` (parquet shards, features kept), a backdoored folder's
    paired prompts through `Dataset.push_to_hub` as the config `backdoor_eval`, then the card (declaring both
    configs), the tokenizer and prepare_info.json through `HfApi.upload_folder`. The token is huggingface_hub's own (from
    `hf auth login` or `HF_TOKEN`); it is only checked for presence here, never printed.

    Example:
        >>> push_prepared("tinystories_prepared", "me/tinystories-10k", private=True)  # doctest: +SKIP
        'https://huggingface.co/datasets/me/tinystories-10k'
    """
    from huggingface_hub import HfApi, get_token

    if get_token() is None:
        raise TinyStoriesError("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN to a write "
                               f"token, or write the repository locally with {_to_folder()}")
    prepared = Path(prepared).expanduser()
    dataset, _, info = read_prepared(prepared)
    check_remote_module(prepared)  # before anything is written: the module users run is the package's own
    dataset = hub_splits(dataset)
    require_hub(f"could not push to Hub dataset {repo_id!r}",
                f"write the repository locally with {_to_folder()} and upload it later")
    prompts = read_eval_prompts(prepared, info)
    with tempfile.TemporaryDirectory(prefix="tinystories-push-") as extras:
        write_repo_files(Path(extras), prepared, dataset, info, repo_id=repo_id, prompts=prompts)
        try:
            dataset.push_to_hub(repo_id, private=private, revision=revision, num_shards=shard_counts(dataset),
                                commit_message="tinystories-hf: token ids")
            if prompts is not None:  # its own config and folder, as --to-folder writes them
                prompts.push_to_hub(repo_id, config_name=EVAL_SPLIT, split=EVAL_SPLIT, data_dir=EVAL_SPLIT,
                                    private=private, revision=revision,
                                    num_shards=shard_counts({EVAL_SPLIT: prompts})[EVAL_SPLIT],
                                    commit_message="tinystories-hf: backdoor_eval prompts")
            HfApi().upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=extras, revision=revision,
                                  commit_message="tinystories-hf: dataset card, tokenizer, prepare_info.json")
        except hub_errors() as e:
            raise TinyStoriesError(
                f"could not push to Hub dataset {repo_id!r} ({reason(e)}); check the network and your login "
                f"(hf auth login or HF_TOKEN), or write the repository locally with {_to_folder()}") from None
    return f"https://huggingface.co/datasets/{repo_id}" + (f"/tree/{revision}" if revision else "")


def _to_folder() -> str:
    """How the caller writes the repository locally: `--to-folder OUT`, or from the API `write_hub_folder`."""
    return flag("to_folder", "OUT", api="write_hub_folder(prepared, OUT)")


def _tree(folder: Path) -> str:
    return "\n".join(f"{p.stat().st_size:>12,}  {p.relative_to(folder)}" for p in sorted(folder.rglob("*"))
                     if p.is_file())


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(
        prog="tinystories-push", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Push a prepared folder to the Hugging Face Hub as a dataset repository (parquet shards, "
                    "tokenizer, dataset card), or write the same files locally with --to-folder.")
    default = PushConfig.prepared
    parser.add_argument("prepared", nargs="?", default=default, metavar="DIR",
                        help=f"{PushConfig.__dataclass_fields__['prepared'].metadata['help']} (default: {default})")
    add_config_arguments(parser, PushConfig, skip=("prepared",))
    config = config_from_args(parser.parse_args(argv), PushConfig)
    if config.to_folder:
        output = write_hub_folder(config.prepared, config.to_folder, repo_id=config.repo_id,
                                  overwrite=config.overwrite)
        print(f"wrote the repository layout to {config.to_folder} (card for {config.repo_id or 'USER/NAME'}; "
              "nothing pushed)")  # the path as typed: output lines hold no absolute path of the machine
        print(_tree(output))
    elif config.repo_id:
        print(f"pushed {config.prepared} -> {push_prepared(config.prepared, config.repo_id, private=config.private, revision=config.revision)}")
    else:
        raise TinyStoriesError(f"pass {flag('repo_id', 'USER/NAME')} to push, or {flag('to_folder', 'OUT')} to write "
                               "the repository locally")
    return 0


if __name__ == "__main__":
    sys.exit(main())
