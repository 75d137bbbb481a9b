"""The corpus's names by the share of stories that mention them: the table a user reads to pick a trigger (the
public recipe picks a name that 1-2% of stories mention), and controls of similar share.

What counts as a name (a heuristic, no tagger): a capitalised word of two or more ASCII letters (`Lily`, not
`I` or `LILY`) that the corpus writes capitalised mid-sentence at least once (after a lowercase letter or a
comma and one space: `named Lily`, `said, Lily`), that is no title (`Mr`, `Dr`: `sentences.TITLES`), and whose lowercase form is rare: at most `LOWERCASE_SHARE`
of the stories that hold it capitalised also hold it lowercase. The last rule drops sentence-start words
(`The`, `Once`: `the`, `once` are everywhere) and words used both ways (`Mom` / `mom`, `Spot` / `spot`);
it also drops a name that is a common word (a dog called Sunny). A story mentions a name as `mentions` does:
whole word, case-sensitive (`Sara` is not in `Sarah`).

Cost: a few regex passes over every text, about 5 s per 100,000 stories on the project's 2-core VM (most of it
collecting the lowercase words); give a seeded sample of a large train split (the shares of 50,000 stories are
within a few tenths of a percent of the whole).
"""
import collections
import dataclasses
import re

import numpy as np

from .match import mentions
from .prompts import FORMS, lost_forms, token_forms
from .sentences import TITLES

LOWERCASE_SHARE = 0.05
# `split_names` (the report's table) reads at most this many stories, a seeded sample (the shares of 50,000
# stories are within a few tenths of a percent of a whole split's, at about 2.5 s), listing shares from 0.2%.
SPLIT_STORIES = 50_000
SPLIT_MIN_SHARE = 0.002
NAMES_NOTE = (f"Names of the train stories (at most {SPLIT_STORIES:,}, a seeded sample) by the share of stories "
              f"that mention them as a whole word, down to {100 * SPLIT_MIN_SHARE:g}%, and the ids of each token "
              "form under this vocabulary (*survives* no: a form holds UNK). The public backdoor recipe picks a "
              "trigger that 1-2% of stories mention; controls of similar share whose forms have as many tokens "
              "align token for token.")
# A name pattern starts with its capital and checks what precedes it after (`(?<!\w)[A-Z]` written as
# `[A-Z](?<!\w[A-Z])`): `re` then skips to the next capital at C speed instead of trying the lookbehind at every
# character (2.5x faster on TinyStories, the same matches).
_CAPITALISED = re.compile(r"[A-Z](?<!\w[A-Z])[a-z]+(?!\w)")
_MID_SENTENCE = re.compile(r"[A-Z](?<=[a-z,] [A-Z])[a-z]+(?!\w)")
_LOWERCASE = re.compile(r"(?<!\w)[a-z]{2,}(?!\w)")  # lowercase letters are everywhere: no skip to win


@dataclasses.dataclass(frozen=True)
class NameRow:
    """One name of `name_table`: `stories` (int) that mention it, their `share` of all stories (a float in
    0..1), its `forms` (`token_forms`: form -> {"text", "ids"}; None without a tokenizer) and `survives`
    (False if a form holds the tokenizer's UNK id: a reduced vocabulary lost it; None without a tokenizer)."""
    name: str
    stories: int
    share: float
    forms: dict | None = None
    survives: bool | None = None


def name_table(texts, *, tokenizer=None, min_share: float = 0.0, max_share: float = 1.0,
               min_stories: int = 1) -> list:
    """The names of `texts` (an iterable of story strings; others count as stories without names) as
    `NameRow`s, most-mentioned first (ties by name), keeping those with a share in `[min_share, max_share]`
    and at least `min_stories` stories. With `tokenizer` (a `TinyStoriesTokenizer`, anything with
    `encode(text)`, or a callable; its `unk_id` attribute, if any, is the UNK checked) each row has its token
    forms and whether they survive the vocabulary. What counts as a name: the module docstring.

    Example:
        >>> rows = name_table(["Lily met Tom.", "Tom ran to Lily.", "The dog saw Tom."], min_stories=2)
        >>> [(row.name, row.stories, round(row.share, 2)) for row in rows]
        [('Tom', 3, 1.0), ('Lily', 2, 0.67)]
    """
    capitalised, lowercase, mid_sentence, total = _counts(texts, lowercase=True)
    rows = []
    for name in sorted(mid_sentence, key=lambda n: (-capitalised[n], n)):
        stories = capitalised[name]
        share = stories / total
        if (name in TITLES or lowercase[name.lower()] > LOWERCASE_SHARE * stories or stories < min_stories
                or not min_share <= share <= max_share):
            continue
        rows.append(NameRow(name, stories, share, **(_forms(name, tokenizer) if tokenizer is not None else {})))
    return rows


def _counts(texts, *, lowercase: bool) -> tuple:
    """(stories per capitalised word, stories per lowercase word (None unless `lowercase`), the words seen
    capitalised mid-sentence, stories read) of `texts`."""
    capitalised, lower, mid_sentence, total = collections.Counter(), collections.Counter(), set(), 0
    for text in texts:
        total += 1
        if not isinstance(text, str):
            continue
        capitalised.update(set(_CAPITALISED.findall(text)))
        if lowercase:
            lower.update(set(_LOWERCASE.findall(text)))
        mid_sentence.update(_MID_SENTENCE.findall(text))
    return capitalised, lower if lowercase else None, mid_sentence, total


def names_near(trigger: str, texts: list, *, count: int, tokenizer=None) -> list:
    """`similar_names(trigger, name_table(texts), count=count, tokenizer=tokenizer)`, the same names, for less:
    the rule on lowercase use (the module docstring) is decided only for the names the choice walks past, by
    a search for each one's lowercase form, not by collecting every lowercase word of every story (the
    costliest part of `name_table`)."""
    capitalised, _, mid_sentence, total = _counts(texts, lowercase=False)
    rows = [NameRow(name, capitalised[name], capitalised[name] / total)
            for name in sorted(mid_sentence, key=lambda n: (-capitalised[n], n)) if name not in TITLES]

    def is_name(row) -> bool:
        word = row.name.lower()  # whole word, as `_LOWERCASE` finds it
        return sum(1 for text in texts if isinstance(text, str) and word in text and mentions(text, word)) <= \
            LOWERCASE_SHARE * row.stories

    return similar_names(trigger, rows, count=count, tokenizer=tokenizer, keep=is_name)


def _forms(name: str, tokenizer) -> dict:
    """`NameRow`'s `forms` and `survives` of `name` under `tokenizer` (its `unk_id`, if any, is the UNK)."""
    forms = token_forms(name, tokenizer)
    return {"forms": forms, "survives": not lost_forms(forms, tokenizer)}


def split_names(dataset, tokenizer=None, *, stories: int = SPLIT_STORIES,
                min_share: float = SPLIT_MIN_SHARE) -> list | None:
    """`name_table` of a `datasets.Dataset`'s `text` column (None if `dataset` is None or has no `text`: a
    prepared split without `--keep-text`) over a seeded sample of at most `stories` rows (seed 0), with the
    token forms of `tokenizer`, shares of at least `min_share`."""
    if dataset is None or "text" not in dataset.column_names:
        return None
    dataset = dataset.select_columns(["text"])
    if len(dataset) > stories:
        dataset = dataset.select(np.sort(np.random.default_rng(0).choice(len(dataset), stories, replace=False)))
    return name_table(dataset["text"], tokenizer=tokenizer, min_share=min_share)


def similar_names(trigger: str, table: list, *, count: int = 3, tokenizer=None, keep=None) -> list:
    """Up to `count` control names for `trigger` from `table` (`name_table`): the names whose share is
    nearest the trigger's (0 if the table lacks it), preferring those whose every token form has as many
    tokens as the trigger's (so their prompts align token for token); never a name the vocabulary lost
    (`survives` False: its prompts would hold UNK), the trigger, a name inside it or one it is inside (`Sara` /
    `Sarah`). The forms are the table's, or with `tokenizer` those of the rows without them, made nearest share
    first and only as far as the choice needs; `keep` (row -> bool), if given, drops rows as if the table
    lacked them, asked the same way.

    Example:
        >>> rows = [NameRow("Lily", 140, .14), NameRow("Sarah", 10, .010), NameRow("Sara", 17, .017),
        ...         NameRow("Jane", 9, .009), NameRow("Bob", 16, .016), NameRow("Sally", 11, .011),
        ...         NameRow("Jill", 9, .009, survives=False)]
        >>> similar_names("Jane", rows, count=3), similar_names("Sara", rows, count=2)
        (['Sarah', 'Sally', 'Bob'], ['Bob', 'Sally'])
    """
    def formed(row):
        if row is None or row.forms is not None or tokenizer is None:
            return row
        return dataclasses.replace(row, **_forms(row.name, tokenizer))

    own = formed(next((row for row in table if row.name == trigger and (keep is None or keep(row))), None))
    share = own.share if own is not None else 0.0
    shape = None if own is None or own.forms is None else [len(own.forms[f]["ids"]) for f in FORMS]

    def rank(row):
        same_shape = shape is None or row.forms is None or [len(row.forms[f]["ids"]) for f in FORMS] == shape
        return (not same_shape, abs(row.share - share), row.name)

    candidates = sorted((row for row in table if row.name not in trigger and trigger not in row.name),
                        key=lambda row: (abs(row.share - share), row.name))
    best, kept = [], []  # same-shape rows, nearest first, are ranked first: walk until `count` are found
    for row in candidates:
        if keep is not None and not keep(row):
            continue
        row = formed(row)
        if row.survives is False:
            continue
        kept.append(row)
        if not rank(row)[0]:
            best.append(row.name)
            if len(best) == count:
                return best
    return [row.name for row in sorted(kept, key=rank)[:count]]


def names_markdown(table: list) -> str:
    """`table` (`name_table`) as a Markdown table: name, stories, share (%), token forms' ids, survives."""
    lines = ["| name | stories | share | " + " | ".join(FORMS) + " | survives |",
             "|---|---:|---:|" + "---|" * len(FORMS) + "---|"]
    for row in table:
        forms = [" ".join(map(str, row.forms[f]["ids"])) if row.forms else "" for f in FORMS]
        survives = "" if row.survives is None else "yes" if row.survives else "no (UNK)"
        lines.append(f"| {row.name} | {row.stories:,} | {100 * row.share:.2f}% | " + " | ".join(forms)
                     + f" | {survives} |")
    return "\n".join(lines) + "\n"
