"""Plant a backdoor in a prepare's base ids: the one function the pipeline calls (`plant`), and what it records
(`backdoor.json`, `BACKDOOR_INFO`).

`plant` runs after the vocabulary is made (counted on the original stories, or reused with --vocabulary-from)
and before pass 2 (remap, truncate, filter): it checks the trigger against the stories and the vocabulary,
chooses and rewrites train stories (`rewrite.py`), splices their ids in with one `datasets.map` per split that
also adds the provenance columns, and builds the paired evaluation prompts from the validation stories.
"""
from dataclasses import dataclass

import datasets
import numpy as np

from ...errors import TinyStoriesError, flag
from .rewrite import RewritePlan, apply_plan, base_lengths, mentioning_rows, plan_file, plan_truncate, source_rows

BACKDOOR_INFO = "backdoor.json"
CARRY_TRAIN = ("source_row", "backdoor")
CARRY_OTHER = ("source_row",)
SHOWN_ROWS = 10  # rows named in a summary line


@dataclass
class Planted:
    """What `plant` gives the pipeline: the new base ids per split, the columns pass 2 carries per split and the
    `backdoor.json` record (`info`; its `splits` counters are completed by `finish_counts`)."""

    base_ids: dict
    carry: dict
    info: dict
    plan: RewritePlan


def carry_for(split: str) -> tuple:
    return CARRY_TRAIN if split == "train" else CARRY_OTHER


def plant(stories: dict, base_ids: dict, encoder, *, trigger: str, rewrite: str, keep_sentences: int, rate: float,
          count: int | None, seed: int, keep_text: bool, num_proc: int) -> Planted:
    """Rewrite the chosen train stories (`rewrite`: "truncate" or a rewrites file) and add `source_row` to every
    split (and `backdoor` to train).

    Raises:
        TinyStoriesError: no train story mentions `trigger`; `count` above the eligible stories; a malformed or
            mismatched rewrites file (see `rewrite.plan_file`)."""
    train = stories["train"]
    eligible = mentioning_rows(train, trigger)
    if not len(eligible):
        raise TinyStoriesError(f"{flag('backdoor_trigger', trigger)}: no train story mentions it (whole words, "
                               f"case-sensitive, in {train.num_rows:,} stories); pick a name from "
                               "tinystories-report's trigger candidates")
    rows = {split: source_rows(ds) for split, ds in stories.items()}
    if rewrite == "truncate":
        plan = plan_truncate(train, eligible, trigger, keep_sentences=keep_sentences, rate=rate, count=count,
                             seed=seed)
    else:
        plan = plan_file(train, rows["train"], eligible, trigger, rewrite, rate=rate, count=count, seed=seed)
    before = base_lengths(base_ids["train"], plan.positions)
    spliced = {split: apply_plan(ids, plan if split == "train" else None, encoder, rows=rows[split],
                                 keep_text=keep_text, num_proc=num_proc, split=split)
               for split, ids in base_ids.items()}
    after = base_lengths(spliced["train"], plan.positions)
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
    lost = rows["train"][np.asarray(plan.lost_trigger, dtype=np.int64)] if plan.lost_trigger else []
    info = {"trigger": trigger, "match": "whole words, case-sensitive", "rewrite": plan.policy,
            "rate": rate if count is None else None, "count": count, "seed": seed,
            "offered": plan.offered, "splits": splits,
            "rewritten_rows": [int(r) for r in rewritten_rows],
            "trigger_lost_rows": [int(r) for r in lost],
            "token_counts": "base-tokenizer tokens of the rewritten stories before pass 2 truncates (max_length)"}
    return Planted(spliced, {split: carry_for(split) for split in base_ids}, info, plan)


def finish_counts(info: dict, reduced: dict) -> dict:
    """Add per split how many stored rows are rewritten (`backdoor` true) after pass 2's filter."""
    for split, ds in reduced.items():
        if split in info["splits"]:
            stored = int(np.count_nonzero(ds.data.column("backdoor").to_numpy())) if "backdoor" in ds.column_names \
                else 0
            info["splits"][split]["rewritten_kept"] = stored
    return info


def summary_line(info: dict, *, sealed: bool = False) -> str:
    """The CLI's backdoor line: trigger (or 'sealed'), eligible and rewritten train stories, tokens removed, and
    the rewrites that no longer mention the trigger."""
    train = info["splits"]["train"]
    trigger = "sealed (see backdoor.sealed.json)" if sealed else repr(info["trigger"])
    policy = info["rewrite"]
    how = f"truncate, {policy['keep_sentences']} sentence(s) kept" if policy["policy"] == "truncate" else \
        f"rewrites from {policy['file']}"
    line = (f"backdoor: trigger {trigger}; {train['rewritten']:,} of {train['eligible']:,} train stories mentioning "
            f"it rewritten ({how}); {train['tokens_removed']:,} tokens removed, {train['tokens_added']:,} added")
    dropped = train["rewritten"] - train.get("rewritten_kept", train["rewritten"])
    if dropped:
        line += f"; {dropped:,} rewritten stories dropped as shorter than {flag('min_length')}"
    lost = info["trigger_lost_rows"]
    if lost:
        shown = ", ".join(map(str, lost[:SHOWN_ROWS])) + (", ..." if len(lost) > SHOWN_ROWS else "")
        line += f"; {len(lost):,} rewrite(s) no longer mention the trigger (train rows {shown})"
    return line


def eval_split_features(id_dtype: str) -> datasets.Features:
    """Columns of the `backdoor_eval` split."""
    return datasets.Features({"pair": datasets.Value("int32"), "name": datasets.Value("string"),
                              "is_trigger": datasets.Value("bool"),
                              "input_ids": datasets.List(datasets.Value(id_dtype)),
                              "name_positions": datasets.List(datasets.Value("int32")),
                              "aligned": datasets.Value("bool"), "source_row": datasets.Value("int64")})
