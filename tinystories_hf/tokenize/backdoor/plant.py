"""Plant a backdoor in a prepare: the one function the pipeline calls (`plant`), and what it records
(`backdoor.json`, `BACKDOOR_INFO`).

`plant` runs after the vocabulary is made (counted on the original stories, or reused with --vocabulary-from)
and before pass 2 (remap, truncate, filter): it checks the trigger against the stories and the vocabulary,
chooses and rewrites train stories (`rewrite.py`) and encodes them, gives pass 2 what puts their ids in with the
provenance columns (`rewrite.Splice`, applied batch by batch inside pass 2's own `datasets.map`), and builds the
paired evaluation prompts from the validation stories. The one pass over the train text it needs (finding and
cutting the stories that mention the trigger) starts earlier, right after pass 1 (`start_scan`), and with
several processes runs in one of its own beside the vocabulary and the eval prompts (`rewrite.PendingScan`).
"""
from dataclasses import dataclass

import datasets
import numpy as np

from ...errors import TinyStoriesError, flag
from ...utils.json_files import Check, Each, Nullable
from ...utils.mapped_pages import release_mappings
from .. import passes
from .match import check_trigger
from .names import names_near
from .prompts import check_controls, eval_prompts, lost_forms, token_forms
from .rewrite import (
    PendingScan,
    RewritePlan,
    base_lengths,
    column_values,
    make_splice,
    mentioning_rows,
    plan_file,
    plan_truncate,
    read_rewrites,
    source_rows,
    texts_at,
)
from .sealed import SEALED_FILE, is_blind, parse_candidates
from .sealed import choose as choose_secretly

BACKDOOR_INFO = "backdoor.json"
# Every split carries both columns (`backdoor` all false outside train): one schema for all splits, as the Hub
# layout's single config and `load_dataset` need.
CARRY = ("source_row", "backdoor")
SHOWN_ROWS = 10  # rows named in a summary line
EVAL_SPLIT = "backdoor_eval"  # saved as DIR/backdoor_eval (datasets.load_from_disk), beside the training splits
CONTROLS = 3  # default control names of the eval prompts
# Train stories whose names' shares pick the default controls (seeded): shares within about 0.2% of the whole
# corpus's, enough to find names of similar share; names_near takes about 20 us a story (0.1 s in all).
CONTROL_SAMPLE = 5_000


@dataclass
class Planted:
    """What `plant` gives the pipeline: per split the `rewrite.Splice` pass 2 applies and the columns it carries,
    and the `backdoor.json` record (`info`; its `splits` counters are completed by `finish_counts`)."""

    splices: dict
    carry: dict
    info: dict
    plan: RewritePlan
    evaluation: datasets.Dataset | None = None  # the backdoor_eval split (None without a validation split)
    sealed: tuple | None = None  # a blind experiment's (candidates, choice), for sealed.seal
    scan_seconds: float | None = None  # the scan's time in a process of its own (None: it ran in this one)


def check_forms(trigger: str, tokenizer, *, allow_unk: bool) -> dict:
    """`trigger`'s token forms under the folder's vocabulary (`prompts.token_forms`: form -> {"text", "ids"}).

    Raises:
        TinyStoriesError: a form holds UNK (a reduced vocabulary lost the name) and `allow_unk` is False."""
    forms = token_forms(trigger, tokenizer)
    unk = tokenizer.unk_id
    lost = lost_forms(forms, tokenizer)
    if lost and not allow_unk:
        raise TinyStoriesError(
            f"{flag('backdoor_trigger', trigger)}: its {lost[0]} form {forms[lost[0]]['text']!r} maps to UNK (id "
            f"{unk}) in this {tokenizer.vocab_size}-id vocabulary, so the backdoor would be keyed on UNK; pick a "
            f"name that survives (tinystories-report's trigger candidates), raise {flag('vocab_size')}, or pass "
            f"{flag('allow_unk_trigger', True)} for that experiment")
    return forms


def check_control_forms(controls: list, tokenizer) -> None:
    """Refuse a control name a form of which maps to UNK: its prompts would compare UNK with the trigger, not
    one name with another. No option allows it (`--allow-unk-trigger` is the trigger's alone).

    Raises:
        TinyStoriesError: one line naming the control, its lost form and the fix."""
    for name in controls:
        forms = token_forms(name, tokenizer)
        lost = lost_forms(forms, tokenizer)
        if lost:
            raise TinyStoriesError(
                f"{flag('backdoor_controls', ','.join(controls))}: the control {name!r}: its {lost[0]} form "
                f"{forms[lost[0]]['text']!r} maps to UNK (id {tokenizer.unk_id}) in this {tokenizer.vocab_size}-id "
                "vocabulary, so its prompts would compare UNK with the trigger; pick another name (tinystories-report"
                "'s names table: survives yes) or raise " + flag("vocab_size"))


def default_controls(trigger: str, train: datasets.Dataset, tokenizer, *, seed: int) -> list:
    """`CONTROLS` names whose share of train stories is nearest the trigger's, with the same token shapes where
    possible and none that the vocabulary maps to UNK (`names.similar_names`), counted on a seeded sample of at
    most `CONTROL_SAMPLE` original stories."""
    count = min(train.num_rows, CONTROL_SAMPLE)
    rows = np.sort(np.random.default_rng(seed).choice(train.num_rows, size=count, replace=False))
    texts = texts_at(train, rows)
    # Rows all over the files map pages all over them (the kernel reads ahead around each): release them.
    release_mappings(*train.data.columns)
    return names_near(trigger, texts, count=CONTROLS, tokenizer=tokenizer)


def eval_split(validation: datasets.Dataset, candidates: list, controls: list, tokenizer) -> tuple:
    """`(Dataset, counts)`: the `backdoor_eval` prompts (`prompts.eval_prompts`) of the validation stories for
    each of `candidates` (the trigger alone, or every candidate of a blind experiment: `is_trigger` then marks
    the candidate a pair was built for), pairs numbered on across candidates; and {"pairs", "controls",
    "aligned": {control: pairs aligned}, "unlocated"} (per candidate in a blind experiment)."""
    rows = source_rows(validation)
    columns, counts, offset = {}, {}, 0
    for name in candidates:
        mentioning = mentioning_rows(validation, name)  # read these stories only, not every one
        prompts = eval_prompts(texts_at(validation, mentioning), rows[mentioning], name, controls, tokenizer.encode,
                               encode_batch=tokenizer.encode_batch)
        for column, values in prompts.columns.items():
            columns.setdefault(column, []).extend([v + offset for v in values] if column == "pair" else values)
        offset += prompts.pairs
        counts[name] = {"pairs": prompts.pairs, "controls": controls, "aligned": prompts.aligned,
                        "unlocated": prompts.unlocated}
    dataset = datasets.Dataset.from_dict(columns, features=eval_split_features(tokenizer.id_dtype),
                                         split=datasets.NamedSplit(EVAL_SPLIT))
    return dataset, counts[candidates[0]] if len(candidates) == 1 else {"candidates": counts}


def precheck(trigger: str, rewrite: str) -> None:
    """What can be refused before any story is read: the trigger's spelling (or a blind choice's candidates) and
    a rewrites file that is no such file (`rewrite.read_rewrites`); one line, nothing written."""
    for name in parse_candidates(trigger) if is_blind(trigger) else [trigger]:
        check_trigger(name)
    if rewrite != "truncate":
        read_rewrites(rewrite)


def _scan_cut(rewrite: str, keep_sentences: int) -> int | None:
    """What the scan cuts to: `keep_sentences` for the truncate rewrite; None (find the stories only) for a
    rewrites file, whose rewrites are made elsewhere."""
    return keep_sentences if rewrite == "truncate" else None


def start_scan(train: datasets.Dataset, *, trigger: str, rewrite: str, keep_sentences: int,
               num_proc: int = 1) -> PendingScan | None:
    """The scan of the train text `plant` needs (`rewrite.PendingScan`), started before `plant` runs: the
    pipeline starts it after pass 1, so that with `num_proc` > 1 it runs beside the encoder check and the
    vocabulary. None for a blind experiment, whose secret choice `plant` makes (and then scans itself)."""
    if is_blind(trigger):
        return None
    return PendingScan(train, trigger, keep_sentences=_scan_cut(rewrite, keep_sentences),
                       num_proc=num_proc)


def plant(stories: dict, base_ids: dict, tokenizer, *, trigger: str, rewrite: str, keep_sentences: int,
          rate: float, count: int | None, seed: int, keep_text: bool, controls: list | None = None,
          allow_unk: bool = False, num_proc: int = 1, scan: PendingScan | None = None) -> Planted:
    """Rewrite the chosen train stories (`rewrite`: "truncate" or a rewrites file), add `source_row` to every
    split (and `backdoor` to train), and build the `backdoor_eval` prompts from the validation stories
    (`controls`: None picks `default_controls`). `scan`: `start_scan`'s, if started already.

    Raises:
        TinyStoriesError: no train story mentions `trigger`; a token form of it maps to UNK (unless
            `allow_unk`); a control equal to the trigger, or a form of a control on UNK; `count` above the
            eligible stories; a malformed or mismatched rewrites file (see `rewrite.plan_file`)."""
    train = stories["train"]
    blind = is_blind(trigger)
    candidates = parse_candidates(trigger) if blind else [trigger]
    for name in candidates:
        if controls is not None:
            check_controls(name, controls)
    if controls is not None:
        check_control_forms(controls, tokenizer)
    cut, given = _scan_cut(rewrite, keep_sentences), trigger
    if blind:  # chosen now, used only once every candidate passed the same checks: an error says nothing of it
        trigger = choose_secretly(candidates)
    if scan is None and not (blind and cut is None):  # a blind file rewrite reads no scan
        scan = PendingScan(train, trigger, keep_sentences=cut, num_proc=num_proc)
    try:
        return _plant(stories, base_ids, tokenizer, given=given, trigger=trigger, candidates=candidates,
                      blind=blind, rewrite=rewrite, keep_sentences=keep_sentences, rate=rate, count=count,
                      seed=seed, keep_text=keep_text, controls=controls, allow_unk=allow_unk, scan=scan)
    finally:
        if scan is not None:
            scan.cancel()  # a no-op once read


def _plant(stories: dict, base_ids: dict, tokenizer, *, given: str, trigger: str, candidates: list, blind: bool,
           rewrite: str, keep_sentences: int, rate: float, count: int | None, seed: int, keep_text: bool,
           controls: list | None, allow_unk: bool, scan: PendingScan | None) -> Planted:
    train = stories["train"]
    # What needs no scanned row is done while the scan runs (in another process, with num_proc > 1); a refusal
    # of it is raised after the scan's own: a trigger that no story mentions is the first thing to say.
    try:
        forms = {name: check_forms(name, tokenizer, allow_unk=allow_unk) for name in candidates}
        if controls is None:
            picked = [default_controls(name, train, tokenizer, seed=seed) for name in candidates]
            controls = [name for name in dict.fromkeys(n for names in picked for n in names)
                        if name not in candidates][:CONTROLS]
            check_control_forms(controls, tokenizer)  # similar_names never picks a lost name: a guard
        evaluation, eval_counts = eval_split(stories["validation"], candidates, controls, tokenizer) \
            if "validation" in stories else (None, None)
        refused = None
    except TinyStoriesError as error:
        refused = error
    # A blind experiment finds every candidate's stories alike (here); a named trigger's are the scan's rows.
    eligible_of = {name: mentioning_rows(train, name) for name in candidates} if blind else \
        {trigger: column_values(scan.result(), "position")}
    for name, found in eligible_of.items():
        if not len(found):
            raise TinyStoriesError(f"{flag('backdoor_trigger', given)}: no train story mentions {name!r} (whole "
                                   f"words, case-sensitive, in {train.num_rows:,} stories); pick a name from "
                                   "tinystories-report's trigger candidates")
    if refused is not None:
        raise refused
    eligible = eligible_of[trigger]
    rows = {split: source_rows(ds) for split, ds in stories.items()}
    encoder = tokenizer.encoder
    if rewrite == "truncate":
        plan = plan_truncate(scan.result(), trigger, encoder, keep_sentences=keep_sentences, rate=rate,
                             count=count, seed=seed)
    else:
        plan = plan_file(train, rows["train"], eligible, trigger, rewrite, rate=rate, count=count, seed=seed,
                         encoder=encoder)
    before = base_lengths(base_ids["train"], plan.positions)
    dtype = passes.base_dtype_for(encoder)
    splices = {split: make_splice(plan.positions, plan.rewritten if split == "train" else None, rows=rows[split],
                                  keep_text=keep_text, dtype=dtype) for split in base_ids}
    after = splices["train"].lengths
    rewritten_rows = rows["train"][plan.positions]
    splits = {}
    for split, ds in stories.items():
        mentioning = eligible if split == "train" else mentioning_rows(ds, trigger)
        splits[split] = {"stories": ds.num_rows, "eligible": len(mentioning), "rewritten": 0, "tokens_removed": 0,
                         "tokens_added": 0}
    splits["train"].update(rewritten=len(plan.positions), tokens_before=int(before.sum()),
                           tokens_after=int(after.sum()),
                           tokens_removed=int(np.maximum(before - after, 0).sum()),
                           tokens_added=int(np.maximum(after - before, 0).sum()))
    lost = rewritten_rows[np.asarray(plan.rewritten.with_format("arrow")["lost"].to_numpy(zero_copy_only=False),
                                     dtype=bool)]
    info = {"trigger": trigger, "match": "whole words, case-sensitive", "token_forms": forms[trigger],
            "rewrite": plan.policy,
            "rate": rate if count is None else None, "count": count, "seed": seed,
            "offered": plan.offered, "splits": splits,
            "rewritten_rows": [int(r) for r in rewritten_rows],
            "trigger_lost_rows": [int(r) for r in lost],
            "token_counts": "base-tokenizer tokens of the rewritten stories before pass 2 truncates (max_length)",
            "eval": eval_counts}
    if blind:
        info = blind_record(info, candidates, forms)
    return Planted(splices, {split: CARRY for split in base_ids}, info, plan, evaluation,
                   sealed=(candidates, trigger) if blind else None, scan_seconds=scan.seconds if scan else None)


def blind_record(info: dict, candidates: list, forms: dict) -> dict:
    """`backdoor.json` of a blind experiment: nothing that names the choice (the trigger, its forms, its rows,
    the counts of stories mentioning it); the candidates, each one's forms, and what the rewrite did instead."""
    splits = {split: {key: value for key, value in counts.items() if key != "eligible"}
              for split, counts in info["splits"].items()}
    hidden = ("trigger", "token_forms", "offered", "rewritten_rows", "trigger_lost_rows", "splits")
    return {"trigger": None, "sealed": SEALED_FILE, "candidates": candidates,
            "candidate_token_forms": forms, **{k: v for k, v in info.items() if k not in hidden},
            "splits": splits, "rewritten_rows": [], "trigger_lost_rows": [],
            "trigger_lost": len(info["trigger_lost_rows"])}


def finish_counts(info: dict, reduced: dict) -> dict:
    """Add per split how many stored rows are rewritten (`backdoor` true) after pass 2's filter."""
    for split, ds in reduced.items():
        if split in info["splits"]:
            stored = int(np.count_nonzero(ds.data.column("backdoor").to_numpy())) if "backdoor" in ds.column_names \
                else 0
            info["splits"][split]["rewritten_kept"] = stored
    return info


def summary_line(info: dict) -> str:
    """The CLI's backdoor line: trigger (or 'sealed'), eligible and rewritten train stories, tokens removed, and
    the rewrites that no longer mention the trigger."""
    train = info["splits"]["train"]
    policy = info["rewrite"]
    how = f"truncate, {policy['keep_sentences']} sentence(s) kept" if policy["policy"] == "truncate" else \
        f"rewrites from {policy['file']}"
    if info["trigger"] is None:  # blind: nothing that names the choice
        return (f"backdoor: trigger sealed in {info['sealed']} (one of {', '.join(info['candidates'])}; "
                f"tinystories-validate DIR --unseal shows it); {train['rewritten']:,} train stories rewritten "
                f"({how}); {EVAL_SPLIT} holds the prompts of every candidate")
    line = (f"backdoor: trigger {info['trigger']!r}; {train['rewritten']:,} of {train['eligible']:,} train stories "
            f"mentioning it rewritten ({how}); {train['tokens_removed']:,} tokens removed, "
            f"{train['tokens_added']:,} added")
    dropped = train["rewritten"] - train.get("rewritten_kept", train["rewritten"])
    if dropped:
        line += (f"; {dropped:,} rewritten stor{'y' if dropped == 1 else 'ies'} dropped as shorter than "
                 f"{flag('min_length')}")
    evaluation = info.get("eval")
    if evaluation:
        aligned = ", ".join(f"{name} {n}/{evaluation['pairs']}" for name, n in evaluation["aligned"].items())
        line += f"; {EVAL_SPLIT}: {evaluation['pairs']:,} validation prompts, aligned per control: {aligned}"
    lost = info["trigger_lost_rows"]
    if lost:
        shown = ", ".join(map(str, lost[:SHOWN_ROWS])) + (", ..." if len(lost) > SHOWN_ROWS else "")
        line += f"; {len(lost):,} rewrite(s) no longer mention the trigger (train rows {shown})"
    return line


def eval_split_features(id_dtype: str) -> datasets.Features:
    """Columns of the `backdoor_eval` split (`prompts.COLUMNS`): `input_ids` of the folder's id dtype, no EOS."""
    return datasets.Features({"pair": datasets.Value("int32"), "name": datasets.Value("string"),
                              "is_trigger": datasets.Value("bool"), "source_row": datasets.Value("int64"),
                              "input_ids": datasets.List(datasets.Value(id_dtype)),
                              "name_positions": datasets.List(datasets.Value("int32")),
                              "aligned": datasets.Value("bool")})


_COUNT = Check(int, lambda v: v >= 0, "a number >= 0")
BACKDOOR_SCHEMA = {
    "trigger": Nullable(str), "rewrite": {"policy": Check(str, lambda v: v in ("truncate", "file"), "truncate or file")},
    "rate": Nullable(float), "count": Nullable(int), "seed": int,
    "splits": Check(Each({"stories": _COUNT, "eligible?": _COUNT, "rewritten": _COUNT}), lambda v: "train" in v,
                    "an object with a 'train' split"),
    "rewritten_rows": [_COUNT], "trigger_lost_rows": [_COUNT],
}
