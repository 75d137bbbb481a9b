"""Choosing a backdoor trigger: the corpus's names by the share of train stories that mention them (whole word,
case-sensitive), with their token forms under the folder's vocabulary and whether each survives it (no form on
UNK). The table `tinystories-report` writes into report.md (`names.names_markdown`) and prints the 0.8-2% band of, the band the public
TinyStories backdoor recipe picks its trigger from.

The names are counted on a seeded sample of the ORIGINAL train stories, read again from the source the folder
was prepared from (`prepare_info.json`'s config; datasets' cache makes this quick after a prepare). Where the
source cannot be read any more, the stored ids are decoded instead, and the table says so: a name a reduced
vocabulary maps to UNK is then missing from it.
"""
import numpy as np

from ..errors import TinyStoriesError
from ..sources import load_stories
from ..tokenize.backdoor.names import SPLIT_MIN_SHARE, SPLIT_STORIES, name_table
from ..tokenize.backdoor.rewrite import texts_at

BAND = (0.008, 0.02)  # the share of stories the recipe's trigger is picked at


def trigger_candidates(dataset, tokenizer, info: dict, *, sample: int = SPLIT_STORIES) -> dict:
    """`{"rows": [NameRow], "stories": int counted, "read_from": "source" | "decoded ids"}`: the names of a
    seeded sample of at most `sample` train stories (seed: the folder's), most mentioned first, those with a share
    of at least `names.SPLIT_MIN_SHARE`, with token forms and `survives` under `tokenizer`.

    Example:
        >>> dataset, tokenizer, info = read_prepared("tinystories_prepared")  # doctest: +SKIP
        >>> [(row.name, round(100 * row.share, 1)) for row in trigger_candidates(dataset, tokenizer, info)["rows"]][:2]  # doctest: +SKIP
        [('Lily', 14.1), ('Tom', 8.7)]
    """
    config = info["config"]
    try:
        stories, _ = load_stories(info["source"]["source"], text_column=config.get("text_column", "text"),
                                  validation_fraction=config.get("validation_fraction", 0.01),
                                  seed=config.get("seed", 1337), cache_dir=config.get("cache_dir"),
                                  strip=config.get("strip", True))
        train, read_from = stories["train"], "source"
        if train.num_rows != info["splits"]["train"]["stories"]:  # not the stories the folder was made of
            train, read_from = None, "decoded ids"
    except (TinyStoriesError, OSError):
        train, read_from = None, "decoded ids"
    rows = dataset["train"].num_rows if train is None else train.num_rows
    count = min(rows, sample)
    chosen = np.sort(np.random.default_rng(config.get("seed", 1337)).choice(rows, size=count, replace=False))
    if train is not None:
        texts = texts_at(train, chosen)
    else:
        ids = dataset["train"].with_format("arrow")[[int(r) for r in chosen]]["input_ids"].to_pylist()
        texts = [tokenizer.decode(story) for story in ids]
    table = name_table(texts, tokenizer=tokenizer, min_share=SPLIT_MIN_SHARE)
    return {"rows": table, "stories": count, "read_from": read_from}


def read_from_text(found: dict) -> str:
    """The sentence report.md adds to the names table: where the texts came from."""
    if found["read_from"] == "source":
        return (f"Counted on {found['stories']:,} original train stories read again from the source (the text "
                "before any backdoor rewrite).")
    return (f"Counted on {found['stories']:,} stored train stories decoded (the source could not be read): a name "
            "this vocabulary maps to UNK is missing here.")


def band_line(found: dict) -> str:
    """The CLI's line: the names in `BAND`."""
    names = [row for row in found["rows"] if BAND[0] <= row.share <= BAND[1]]
    shown = ", ".join(f"{row.name} {100 * row.share:.1f}%" + ("" if row.survives is not False else " (UNK)")
                      for row in names) or "none"
    return f"trigger candidates ({100 * BAND[0]:.1f}-{100 * BAND[1]:.0f}% of train stories): {shown}"
