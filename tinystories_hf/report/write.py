"""`tinystories-report DIR`: look at a prepared dataset before training on it.

    tinystories-report demo_prepared       # prints per-split stats, writes demo_prepared/report/

Writes `DIR/report/` (to a hidden folder renamed into place, like the dataset): `lengths.png` (story length in tokens per split, with
the truncation and minimum lines), `coverage.png` (share of tokens covered by vocabulary size, with the cut
at `vocab_size`), `unk.png` (UNK tokens per story), `report.md` embedding them with the numbers, and
`report.json`. With the story text kept (`--keep-text`), the report also lists the train split's names by
the share of stories that mention them, with their token forms (`tokenize.backdoor.name_table`): the table
to pick a backdoor trigger from. The numbers come from the package's own `evaluate` measurements (`measurements/`), imported
from the installed package: `evaluate.load` would run its copy in the modules cache under HF_HOME, which
anyone who can write there can change.
"""
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import CommandParser, add_config_arguments, config_from_args, option
from ..errors import TinyStoriesError, flag
from ..store.folder import PREPARE_INFO
from ..store.load import check_prepared_path, read_prepared
from ..supervision import api_errors, cli_errors, current_run
from ..tokenize.backdoor.names import NAMES_NOTE, names_markdown
from ..utils.atomic import atomic_folder, check_output, hold_writer_lock, resolve
from ..vocabulary.tokenizer import specials_text
from .plots import NO_STORY_WITH_UNK, NO_UNK, PLOT_FILES, plot
from .triggers import band_line, read_from_text, trigger_candidates

REPORT_DIR = "report"
COVERAGE_SIZES = (500, 1000, 2000, 5000, 10_000, 20_000)
SHARES = (0.9, 0.99, 0.999)


@dataclass
class ReportConfig:
    """Options of `tinystories-report`; `path` is the prepared folder (the positional DIR)."""

    path: str = option("tinystories_prepared", "prepared folder to report on")
    output: str | None = option(None, "folder to write the report to; None means DIR/report")


def _progress(total: int, what: str, unit: str = " stories"):
    """A tqdm bar on stderr, as the other long commands show (datasets' tqdm: HF_DATASETS_DISABLE_PROGRESS_BARS
    turns it off, as theirs)."""
    from datasets.utils.tqdm import tqdm

    return tqdm(total=total, desc=what, unit=unit)


def split_arrays(dataset, *, vocab_size: int, unk_id: int, name: str = "split") -> dict:
    """One pass over a split's Arrow buffers: story lengths, UNK tokens per story, and id frequencies."""
    lengths, unk, counts = [], [], np.zeros(vocab_size, dtype=np.int64)
    with _progress(len(dataset), f"report: measuring {name}") as bar:
        for batch in dataset.with_format("arrow").iter(batch_size=50_000):
            _add_batch(batch, lengths, unk, counts, vocab_size=vocab_size, unk_id=unk_id)
            bar.update(batch.num_rows)
    return {"lengths": np.concatenate(lengths or [np.zeros(0)]).astype(np.int32),
            "unk_tokens": np.concatenate(unk or [np.zeros(0)]).astype(np.int32), "counts": counts}


def _add_batch(batch, lengths: list, unk: list, counts: np.ndarray, *, vocab_size: int, unk_id: int | None) -> None:
    column = batch.column("input_ids").combine_chunks()
    ids = column.flatten().to_numpy()
    offsets = column.offsets.to_numpy()
    is_unk = np.concatenate([[0], np.cumsum(ids == unk_id if unk_id is not None else np.zeros(len(ids), bool))])
    lengths.append(np.diff(offsets))
    unk.append(is_unk[offsets[1:]] - is_unk[offsets[:-1]])
    counts += np.bincount(ids, minlength=vocab_size)[:vocab_size]


def measure(dataset_dict, tokenizer, info: dict) -> tuple[dict, dict]:
    """Run the token_stats and vocab_coverage measurements; returns (figures, per-split arrays for plots)."""
    import tempfile

    # imported here: evaluate takes seconds to import and only the report needs it
    from .measurements.token_stats import TokenStats
    from .measurements.vocab_coverage import VocabCoverage

    with tempfile.TemporaryDirectory(prefix="tinystories-report-") as scratch:  # kept in memory: nothing lands here
        token_stats = TokenStats(keep_in_memory=True, cache_dir=scratch)
        coverage = VocabCoverage(keep_in_memory=True, cache_dir=scratch)
        return _measure(dataset_dict, tokenizer, info, token_stats, coverage)


def _measure(dataset_dict, tokenizer, info, token_stats, coverage) -> tuple[dict, dict]:
    sizes = [k for k in COVERAGE_SIZES if k < tokenizer.vocab_size] + [tokenizer.vocab_size]
    arrays = {split: split_arrays(ds, vocab_size=tokenizer.vocab_size, unk_id=tokenizer.unk_id, name=split)
              for split, ds in dataset_dict.items()}
    figures = {"splits": {}, "coverage": {}}
    for split, a in arrays.items():
        figures["splits"][split] = token_stats.compute(lengths=a["lengths"], unk_tokens=a["unk_tokens"],
                                                       max_length=info["config"]["max_length"])
        counts = info["splits"][split]
        if counts.get("text_bytes") is not None and counts.get("base_tokens"):  # folders of older versions lack it
            figures["splits"][split]["bytes_per_token"] = counts["text_bytes"] / counts["base_tokens"]
        if counts.get("tokens_before_truncation") is not None and counts["kept"]:
            figures["splits"][split]["tokens_per_story"] = counts["tokens_before_truncation"] / counts["kept"]
    # The sample the vocabulary was ranked on: counts of kept ids, id 1 holding every dropped token.
    sources = {"vocabulary sample": tokenizer.counts} if tokenizer.counts is not None else {}
    sources |= {split: a["counts"] for split, a in arrays.items()}
    rank, unk, specials = np.arange(tokenizer.vocab_size), tokenizer.unk_id, 2
    if tokenizer.kind == "full":  # its ids are not ranked: rank them by the sample's counts (ties: lower id first)
        rank = np.argsort(-next(iter(sources.values())), kind="stable")
        unk = None if tokenizer.unk_id is None else int(np.flatnonzero(rank == tokenizer.unk_id)[0])
        specials = 0
    for name, counts in sources.items():
        figures["coverage"][name] = coverage.compute(counts=np.asarray(counts)[rank], unk_id=unk, shares=SHARES,
                                                     sizes=sizes, num_special=specials)
    return figures, arrays


def _names_markdown(rows: list | None, read_from: str = "") -> str:
    if rows is None:
        return ("The stored splits hold no story text: prepare with `--keep-text` to list the train split's names "
                "here, or call `tinystories_hf.tokenize.backdoor.name_table(texts)` on the source's texts.")
    return f"{names_markdown(rows)}\n{NAMES_NOTE} {read_from}".rstrip()


def markdown_table(header: list, rows: list) -> str:
    """A GitHub markdown table; numbers right-aligned."""
    align = ["---"] + ["---:"] * (len(header) - 1)
    return "\n".join("| " + " | ".join(map(str, r)) + " |" for r in [header, align] + rows)


def split_table(figures: dict, info: dict) -> str:
    """Per-split stats: what prepare read and kept, then the measured lengths and UNK tokens."""
    header = ["split", "stories read", "kept", "skipped", "truncated", "tokens", "mean len", "median", "p90", "p99",
              "max", "UNK %", "stories with UNK", "bytes/token"]
    rows = []
    for split, s in figures["splits"].items():
        c = info["splits"][split]
        per_token = f"{s['bytes_per_token']:.3f}" if "bytes_per_token" in s else "n/a"
        rows.append([split, f"{c['stories']:,}", f"{s['stories']:,}", f"{c['skipped_short'] + c['skipped_empty']:,}",
                     f"{c['truncated']:,}", f"{s['tokens']:,}", f"{s['mean_length']:.1f}",
                     f"{s['median_length']:.0f}", f"{s['p90_length']:.0f}", f"{s['p99_length']:.0f}",
                     f"{s['max_length']:,}", f"{100 * s['unk_share']:.3f}", f"{s['stories_with_unk']:,}", per_token])
    return markdown_table(header, rows)


def coverage_table(figures: dict) -> str:
    first = next(iter(figures["coverage"].values()))
    sizes, shares = list(first["coverage_at"]), list(first["size_for_share"])
    header = ["tokens of"] + [f"covered at {k:,}" for k in sizes] + [f"size for {100 * s:g}%" for s in shares]
    rows = [[name] + [f"{100 * c['coverage_at'][k]:.2f}%" for k in sizes]
            + [f"{c['size_for_share'][s]:,}" if c["size_for_share"][s] else "not reached" for s in shares]
            for name, c in figures["coverage"].items()]
    return markdown_table(header, rows)


def _vocabulary(info: dict) -> str:
    specials = specials_text(info, upper=True)
    kind = "the tokenizer's own ids" if info.get("vocabulary") == "full" else "reduced"
    return f"vocabulary of {info['vocab_size']:,} ids, {kind} ({specials or 'no specials'})"


def _lengths(config: dict) -> str:
    longest = "stories kept whole" if config["max_length"] is None else \
        f"stories truncated to {config['max_length']} tokens"
    return f"{longest}, stories under {max(config['min_length'], 1)} tokens skipped"


def _unk_text(figures: dict, info: dict) -> str:
    if info.get("unk_id") is None:
        return (f"{NO_UNK[0].upper() + NO_UNK[1:]}: its tokenizer encodes every text without one, so no token was "
                "lost and the plot says so instead of drawing an empty histogram.")
    if not any(s["stories_with_unk"] for s in figures["splits"].values()):
        return f"{NO_STORY_WITH_UNK[0].upper() + NO_STORY_WITH_UNK[1:]} (UNK is id {info['unk_id']}): the plot says so."
    return "Share of stories (log scale) by the number of UNK tokens they hold."


def markdown(figures: dict, info: dict, path: Path) -> str:
    """report.md: the numbers, the plots, and how to read them."""
    config, sample = info["config"], info["vocab_sample"]
    return f"""# Dataset report: `{path.name}`

Source `{info['source']['source']}` ({info['source']['kind']}), {_vocabulary(info)}, {_lengths(config)}. Stored
`input_ids` hold the story tokens only (no EOS). Bytes per token: UTF-8 bytes of the stories read over their
tokens before truncation.

{split_table(figures, info)}

*kept*, *tokens* and the lengths are measured on the stored data; *stories read*, *skipped* and
*truncated* come from `prepare_info.json` (the stored data cannot tell a truncated story from one of
exactly `max_length` tokens).

## Story length

![story length per split]({PLOT_FILES['lengths']})

Share of each split's stories by stored length. Stories longer than `max_length` were cut to it, so
they pile up at the red line; nothing lies left of `min_length`.

## Vocabulary coverage

![vocabulary coverage]({PLOT_FILES['coverage']})

{coverage_table(figures)}

Reduced ids are ranked by frequency in the vocabulary sample ({sample['stories']:,} train stories,
{sample['tokens']:,} tokens, seed {sample['seed']}, counted before truncation). A smaller `--vocab-size`
k keeps exactly ids 0..k-1, so each curve at k is the share of that data's tokens a vocabulary of size k
would have covered, with the ranking of the sample, never re-sorted per split (held-out coverage is not
flattered). The *vocabulary sample* curve is the sample itself; the split curves are the stored tokens
(after truncation). The curves stop at the cut: beyond it the sample's dropped tokens are known only as a
total, the UNK share (100% minus the value at the cut).

## UNK tokens per story

![UNK tokens per story]({PLOT_FILES['unk']})

{_unk_text(figures, info)}

## Names (choosing a backdoor trigger)

{_names_markdown(figures.get("names"), figures.get("names_read_from", ""))}
"""


def _summary(figures: dict) -> dict:
    """report.json: every figure except the per-id coverage curves (kept short; the PNG shows them)."""
    coverage = {name: {k: v for k, v in c.items() if k != "cumulative"} for name, c in figures["coverage"].items()}
    listed = figures.get("names")
    listed = None if listed is None else [
        {"name": row.name, "stories": row.stories, "share": row.share, "survives": row.survives,
         "forms": {form: value["ids"] for form, value in row.forms.items()}} for row in listed]
    return {"splits": figures["splits"], "coverage": coverage, "plots": dict(PLOT_FILES), "names": listed}


@api_errors
def write_report(path, *, output=None) -> dict:
    """Measure a prepared folder and write its report folder (default `DIR/report`).

    Returns the figures of report.json plus `table` (the printed per-split table) and `output` (the folder).

    Example:
        >>> report = write_report("demo_prepared")  # doctest: +SKIP
        >>> report["splits"]["train"]["mean_length"], report["coverage"]["validation"]["coverage"]  # doctest: +SKIP
    """
    check_prepared_path(path)  # the input first: a file given as DIR is named as such, not its DIR/report
    path = Path(path).expanduser()
    target = resolve(output) if output else resolve(path) / REPORT_DIR
    if not output and target.is_symlink():  # a prepared folder made elsewhere is untrusted: never write through it
        raise TinyStoriesError(f"{target} is a symlink (to {os.readlink(target)}), not the report folder of "
                               f"{path}; remove the link, or write the report elsewhere with {flag('output')}")
    check_output(target, overwrite=True, marker="report.json", what=f"a report folder (pass another {flag('output')})")
    # A report inside a prepared folder is part of it: its writer holds that folder's lock, as prepare does, from
    # before it reads the folder, so no other run replaces the data the report describes in the meantime.
    inside = target.parent if (target.parent / PREPARE_INFO).is_file() else None
    if inside is not None:
        hold_writer_lock(inside, replaces=False)
    run = current_run()
    if run is not None and run.target is None:  # (prepare --report names its own output)
        run.target = target  # named by "interrupted; DIR unchanged" from here on, not only while writing
    dataset, tokenizer, info = read_prepared(path)
    figures, arrays = measure(dataset, tokenizer, info)
    candidates = trigger_candidates(dataset, tokenizer, info)  # from the source's text, kept or not
    figures["names"], figures["names_read_from"] = candidates["rows"], read_from_text(candidates)
    with atomic_folder(target, overwrite=True, lock=inside) as partial:
        partial.mkdir()
        with _progress(len(PLOT_FILES), "report: plots", " plots") as bar:
            plot(arrays, figures, info, partial, done=bar.update)
        summary = _summary(figures)
        (partial / "report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        (partial / "report.md").write_text(markdown(figures, info, path.resolve()), encoding="utf-8")
    summary["table"] = split_table(figures, info)
    summary["trigger_candidates"] = band_line(candidates)
    summary["output"] = str(target)
    return summary


def report_summary(report: dict, folder) -> str:
    """What `tinystories-report` prints, and `tinystories-prepare --report` after its own table: the per-split
    table, the coverage at the cut and the report's path (`folder`: the report folder as the user named it).

    Example:
        >>> print(report_summary(write_report("demo_prepared"), "demo_prepared/report"))  # doctest: +SKIP
    """
    coverage = ", ".join(f"{name} {100 * c['coverage']:.2f}%" for name, c in report["coverage"].items())
    return "\n".join([report["table"], f"vocabulary coverage at the cut: {coverage}"]
                     + ([report["trigger_candidates"]] if "trigger_candidates" in report else [])
                     + [f"report: {Path(folder) / 'report.md'}"])


@cli_errors
def main(argv=None) -> int:
    parser = CommandParser(prog="tinystories-report", description=__doc__.splitlines()[0].replace("`", ""))
    parser.add_argument("path", metavar="DIR", help="prepared folder to report on")
    add_config_arguments(parser, ReportConfig, skip=("path",))
    config = config_from_args(parser.parse_args(argv), ReportConfig)
    report = write_report(config.path, output=config.output)
    print(report_summary(report, config.output or Path(config.path) / REPORT_DIR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
