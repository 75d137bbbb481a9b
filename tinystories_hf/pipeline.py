"""`tinystories-prepare`: source -> vocabulary -> tokenize -> store, in one linear function.

    tinystories-prepare --source demo --output demo_prepared
    python -c "import datasets; print(datasets.load_from_disk('demo_prepared'))"
"""
import dataclasses
import functools
import json
import platform
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import datasets
import numpy as np

from .config import FULL_VOCABULARY, PrepareConfig, config_from_args, prepare_parser
from .errors import TinyStoriesError, flag
from .sources import load_stories
from .store import uptodate
from .store.folder import save_prepared
from .store.load import reuse_vocabulary
from .store.summary import source_line, summary_table
from .supervision import api_errors, cli_errors, offers, writes
from .tokenize.backdoor.plant import (
    BACKDOOR_INFO,
    EVAL_SPLIT,
    finish_counts,
    plant,
    precheck,
    start_scan,
    summary_line,
)
from .tokenize.backdoor.sealed import seal
from .tokenize.passes import (
    EncoderMismatch,
    check_sample,
    encode_split,
    reduce_split,
    remembered,
    split_counts,
    text_bytes,
)
from .utils.atomic import check_output, hold_cache_lease, hold_writer_lock
from .vocabulary.base import base_special_ids, load_base_tokenizer, make_encoder
from .vocabulary.counting import count_base_tokens, sample_rows
from .vocabulary.encoders import id_space
from .vocabulary.tokenizer import TinyStoriesTokenizer, check_vocabulary, specials_text


@dataclass
class PrepareResult:
    """What `prepare()` wrote: the folder, its datasets and tokenizer, and the per-split counts."""

    output: Path
    dataset: datasets.DatasetDict
    tokenizer: TinyStoriesTokenizer
    info: dict
    report: dict | None = None  # what write_report returned, with --report
    backdoor: dict | None = None  # backdoor.json of a backdoored prepare


def _versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("tinystories-hf", "datasets", "transformers", "tokenizers", "tiktoken", "pyarrow", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


@api_errors
def prepare(config: PrepareConfig) -> PrepareResult:
    """Run the whole preparation and write `config.output`; see `PrepareConfig` for every option.

    A failure raises a one-line `TinyStoriesError` (Ctrl-C a `KeyboardInterrupt` saying the output is
    unchanged); `config.output` is then the previous complete folder, or absent.

    Example:
        >>> result = prepare(PrepareConfig(source="demo", output="demo_prepared"))  # doctest: +SKIP
        >>> result.info["splits"]["train"]["kept"]  # doctest: +SKIP
    """
    offers(f.name for f in dataclasses.fields(config))
    config.validate()
    if config.backdoor_trigger is not None:
        precheck(config.backdoor_trigger, config.backdoor_rewrite)
    started = time.perf_counter()
    seconds = {}  # per stage, kept in prepare_info.json: where the time of a run went

    def lap(stage: str) -> None:
        seconds[stage] = time.perf_counter() - started - sum(seconds.values())

    output = check_output(config.output, overwrite=config.overwrite, cache_dir=config.cache_dir,
                          source_files=[config.source] if Path(config.source).exists() else [])
    hold_writer_lock(output)  # to the end of the run: a second writer of the same output stops at once
    # Before anything reads the source or the tokenizer: a file changed from here on makes the record stale.
    inputs = uptodate.current_inputs(config) if not config.report else None  # a report run is never reused
    uptodate.forget(output, config.cache_dir)  # replaced from here on (or, if this run fails, maybe damaged)
    writes(config.cache_dir or datasets.config.HF_DATASETS_CACHE, f"pass another {flag('cache_dir')}")

    # The tokenizer first: one that cannot serve the options is one line before the source is read.
    if config.vocabulary_from is not None:  # a vocabulary reused exactly: its base tokenizer encodes
        reused, reused_info = reuse_vocabulary(config.vocabulary_from, backend=config.backend)
        base, encoder = reused.base_tokenizer, reused.encoder
    else:
        base = load_base_tokenizer(config.tokenizer)
        encoder = make_encoder(base, config.backend)
        specials = base_special_ids(base, config.tokenizer)
        check_vocabulary(base, config.vocab_size, specials, name=f"the tokenizer {config.tokenizer!r}")

    stories, source = load_stories(config.source, text_column=config.text_column,
                                   validation_fraction=config.validation_fraction, seed=config.seed,
                                   cache_dir=config.cache_dir, num_proc=config.num_proc, strip=config.strip)
    hold_cache_lease(*stories.values())  # removes killed runs' datasets temporary files from its folders
    lap("load")
    seconds["source_hash"] = source.hash_seconds  # xxh3 of the source's bytes (its cache key), part of load
    seconds["load"] -= source.hash_seconds
    # Every split the source declares (train, validation, test, ...); the vocabulary is counted on train. A
    # backdoor's pass over the train text starts once train is encoded: with --num-proc > 1 in a process of its
    # own, beside the work this process does alone until the backdoor stage (the other splits' pool start-up, the
    # check, the vocabulary, the eval prompts).
    base_ids, scan = {}, None
    for split in stories:
        base_ids[split] = encode_split(stories[split], encoder, keep_text=config.keep_text,
                                       num_proc=config.num_proc, split=split)
        if split == "train" and config.backdoor_trigger is not None:
            scan = start_scan(stories["train"], trigger=config.backdoor_trigger, rewrite=config.backdoor_rewrite,
                              keep_sentences=config.backdoor_keep_sentences, num_proc=config.num_proc)
    lap("tokenize")
    fallback = None
    try:
        checked = check_sample(stories, base_ids, encoder, seed=config.seed)  # a fast encoder's ids vs the reference's
    except EncoderMismatch as e:
        if not encoder.fallback:
            raise
        # auto's fast form of a tokenizer other than GPT-2's is not exact for this one: its reference encodes it.
        reference = encoder.reference()
        fallback = {"from": encoder.name, "to": reference.name, "split": e.split, "row": e.row, "reason": str(e)}
        reference.note = (f"auto: {encoder.name}'s ids differed from {reference.name}'s on split {e.split!r} row "
                          f"{e.row} of the seeded check; encoded by {reference.name} itself")
        encoder, checked = reference, 0
        lap("check")
        base_ids = {split: encode_split(stories[split], encoder, keep_text=config.keep_text,
                                        num_proc=config.num_proc, split=split) for split in stories}
        lap("tokenize_reference")
    else:
        lap("check")

    # The vocabulary is counted on the original stories (a backdoor's rewrites come after), so a clean and a
    # backdoored prepare of one source write the same tokenizer.
    if config.vocabulary_from is not None:
        tokenizer = reused
        sample = {key: reused_info["vocab_sample"][key] for key in ("stories", "seed", "tokens")}
    else:
        rows = sample_rows(base_ids["train"].num_rows, config.vocab_sample_size, config.seed)
        size = id_space(base)
        counts = np.asarray(remembered(base_ids["train"], ["counts", base_ids["train"]._fingerprint,
                                                          config.vocab_sample_size, config.seed, size],
                                       functools.partial(count_base_tokens, base_ids["train"], rows, size)),
                            dtype=np.int64)
        sample = {"stories": base_ids["train"].num_rows if rows is None else len(rows), "seed": config.seed,
                  "tokens": int(counts.sum())}
        meta = {"tokenizer": config.tokenizer, "sample": sample}
        if config.vocab_size == FULL_VOCABULARY:
            tokenizer = TinyStoriesTokenizer.full(base, counts, specials=specials,
                                                  backend=config.backend, encoder=encoder, meta=meta,
                                                  name=f"the tokenizer {config.tokenizer!r}")
        else:
            tokenizer = TinyStoriesTokenizer.from_counts(base, counts, config.vocab_size, backend=config.backend,
                                                         encoder=encoder, meta=meta)
    lap("vocabulary")
    planted = None
    if config.backdoor_trigger is not None:
        planted = plant_backdoor(config, stories, base_ids, tokenizer, scan=scan)
        lap("backdoor")

    reduced, splits = datasets.DatasetDict(), {}
    source_info = dataclasses.asdict(source)
    literal_eot = source_info.pop("literal_eot")
    source_info.pop("hash_seconds")
    for split, ids in base_ids.items():
        reduced[split] = reduce_split(ids, tokenizer, max_length=config.max_length,
                                      min_length=config.min_length, keep_text=config.keep_text,
                                      num_proc=config.num_proc, split=split,
                                      carry=planted.carry[split] if planted else (),
                                      splice=planted.splices[split].function if planted else None,
                                      splice_key=planted.splices[split].key if planted else "")
        splits[split] = remembered(ids, ["split_counts", ids._fingerprint, reduced[split]._fingerprint,
                                         config.max_length, config.min_length, tokenizer.unk_id,
                                         planted.splices[split].key if planted else ""],
                                   functools.partial(split_counts, ids, reduced[split], max_length=config.max_length,
                                                     min_length=config.min_length, unk_id=tokenizer.unk_id,
                                                     spliced=(planted.splices[split].positions, planted.splices[split].lengths)
                                                     if planted else None))
        splits[split]["literal_eot"] = literal_eot[split]
        # UTF-8 bytes of every story read (the text the tokenizer saw): bytes per token compares vocabularies.
        splits[split]["text_bytes"] = remembered(ids, ["text_bytes", stories[split]._fingerprint],
                                                 functools.partial(text_bytes, stories[split]))
    # Nothing reads the raw text or the base ids again: unmap them before saving.
    del stories, base_ids
    lap("remap")
    train = splits["train"]
    if not train["kept"]:  # refuse to save a dataset (and a vocabulary) that has nothing to train on
        raise TinyStoriesError(f"{config.source}: no train story has {flag('min_length', config.min_length)} tokens "
                               f"or more ({train['stories']} read: {train['skipped_empty']} empty or not text, "
                               f"{train['skipped_short']} too short); check {flag('text_column')} or lower "
                               f"{flag('min_length')}")
    info = {
        "config": dataclasses.asdict(config),
        "source": source_info,
        "backend": encoder.name,
        "backend_fallback": fallback,
        "backend_check": {"reference": encoder.reference().name, "stories": checked, "seed": config.seed}
        if checked else None,
        "vocabulary": tokenizer.kind, "vocab_size": tokenizer.vocab_size, "id_dtype": tokenizer.id_dtype,
        "eos_id": tokenizer.eos_id, "unk_id": tokenizer.unk_id, "bos_id": tokenizer.bos_id,
        "separator_id": tokenizer.separator_id, "vocab_sha256": tokenizer.fingerprint,
        # How many regular ids the sample filled; the rest are fill (never-seen tokens, see vocab.py).
        "vocab_sample": {**sample, "ids_in_sample": tokenizer.ids_in_sample,
                         "fill_ids": tokenizer.vocab_size - 2 - tokenizer.ids_in_sample
                         if tokenizer.kind == "reduced" else 0},
        "splits": splits,
        "versions": _versions(),
    }
    if config.vocabulary_from is not None:
        info["vocabulary_from"] = {"folder": str(Path(config.vocabulary_from).expanduser().resolve()),
                                   "vocab_sha256": reused_info["vocab_sha256"]}
    extra = {}
    if planted is not None:
        info["backdoor"] = backdoor_summary(finish_counts(planted.info, reduced))
        extra = backdoor_files(planted)
    info["stage_seconds"] = {stage: round(s, 3) for stage, s in seconds.items()}
    if planted is not None and planted.scan_seconds is not None:  # in a process of its own, beside the stages
        info["concurrent_seconds"] = {"backdoor_scan": round(planted.scan_seconds, 3)}
    info["elapsed_seconds"] = round(time.perf_counter() - started, 3)  # the save (and its hashing) comes after
    output = save_prepared(output, reduced, tokenizer, info, overwrite=config.overwrite,
                           model_max_length=config.max_length, extra=extra)
    report = None
    if config.report:
        from .report.write import write_report  # imported only when asked: evaluate and matplotlib load slowly

        report = write_report(output)
    uptodate.remember(output, config.cache_dir, inputs)  # DIR in place: an identical rerun may leave it as it is
    return PrepareResult(output=output, dataset=reduced, tokenizer=tokenizer, info=info, report=report,
                         backdoor=planted.info if planted is not None else None)


def plant_backdoor(config: PrepareConfig, stories, base_ids: dict, tokenizer, *, scan=None):
    """The backdoor stage of `prepare` (`tokenize/backdoor/plant.py`): rewrite, splice, provenance; `scan`: the
    scan `start_scan` started after pass 1."""
    return plant(stories, base_ids, tokenizer, trigger=config.backdoor_trigger,
                 rewrite=config.backdoor_rewrite, keep_sentences=config.backdoor_keep_sentences,
                 rate=config.backdoor_rate, count=config.backdoor_count, seed=config.seed,
                 keep_text=config.keep_text, controls=config.control_names(),
                 allow_unk=config.allow_unk_trigger, num_proc=config.num_proc, scan=scan)


def backdoor_summary(info: dict) -> dict:
    """What prepare_info.json keeps of backdoor.json: all but the rewritten rows' list."""
    return {key: value for key, value in info.items() if key not in ("rewritten_rows", "trigger_lost_rows")}


def backdoor_files(planted) -> dict:
    """The files a backdoored folder holds beside its splits (`save_prepared`'s `extra`)."""
    extra = {"files": {BACKDOOR_INFO: backdoor_json(planted.info)}}
    if planted.evaluation is not None:
        extra["datasets"] = {EVAL_SPLIT: planted.evaluation}
    if planted.sealed is not None:
        candidates, choice = planted.sealed
        extra["after"] = [functools.partial(seal, candidates=candidates, choice=choice)]
    return extra


def backdoor_json(info: dict) -> bytes:
    """`backdoor.json`'s bytes: indented, with each list of rows on one line (tens of thousands of them)."""
    lists = [key for key, value in info.items() if isinstance(value, list)]
    text = json.dumps({**info, **{key: f"@{key}@" for key in lists}}, indent=2)
    for key in lists:
        text = text.replace(f'"@{key}@"', json.dumps(info[key]))
    return (text + "\n").encode()


def vocabulary_lines(result: PrepareResult, shown_output) -> str:
    """The CLI's vocabulary line, and a note when part of the vocabulary is fill (never-seen tokens)."""
    tokenizer, sample = result.tokenizer, result.info["vocab_sample"]
    specials = specials_text(vars(tokenizer))
    head = (f"{tokenizer.vocab_size} ids, the tokenizer's own ({specials}; separator {tokenizer.separator_id}, "
            f"stored as {tokenizer.id_dtype})" if tokenizer.kind == FULL_VOCABULARY else
            f"{tokenizer.vocab_size} ids ({specials})")
    lines = [(f"vocabulary: {head}, {sample['ids_in_sample']:,} tokens of the vocabulary sample, backend "
              f"{result.info['backend']}{_backend_note(result)}, {result.info['elapsed_seconds']:.1f} s -> "
              f"{shown_output}")]
    if sample["fill_ids"]:
        end = sample["ids_in_sample"] + 2  # ids 2..end-1 are the sample's tokens
        lines.append(f"note: the vocabulary sample ({sample['stories']:,} stories) holds only {end - 2:,} distinct "
                     f"tokens: ids {end:,}..{tokenizer.vocab_size - 1:,} are fill (tokens it never saw, lowest base "
                     f"id first); {flag('vocab_size', end)} keeps exactly the sample's tokens")
    return "\n".join(lines)


def _backend_note(result: PrepareResult) -> str:
    check, note = result.info.get("backend_check"), result.tokenizer.encoder.note
    checked = f" (ids of {check['stories']:,} sampled stories checked against {check['reference']})" if check else ""
    return checked + (f" ({note})" if note else "")


@cli_errors
def main(argv=None) -> int:
    answered = uptodate.answer_if_up_to_date(argv)  # an up-to-date --overwrite output: reported, not rewritten
    if answered is not None:
        return answered
    config = config_from_args(prepare_parser().parse_args(argv))
    result = prepare(config)
    print(summary_table(result.info["splits"]))
    print(source_line(result.info["source"], list(result.info["splits"])))
    print(vocabulary_lines(result, config.output))  # paths as the user typed them
    if "backdoor" in result.info:
        print(summary_line(result.backdoor))
    if result.report is not None:  # what tinystories-report prints
        from .report.write import REPORT_DIR, report_summary

        print(report_summary(result.report, Path(config.output) / REPORT_DIR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
