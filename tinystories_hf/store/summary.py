"""What `tinystories-prepare` prints about a prepared folder: its per-split counters as a table and what was
read, from `prepare_info.json`'s `splits` and `source`. Imports no datasets: the up-to-date check
(`uptodate.py`) prints the same lines for a folder it leaves as it is.
"""
from ..utils.json_files import non_negative

COUNTS = {name: non_negative() for name in ("stories", "kept", "skipped_short", "skipped_empty", "truncated",
                                            "tokens", "unk_tokens")}


def summary_table(splits: dict) -> str:
    """The per-split counters as a fixed-width table."""
    columns = [("split", None), ("stories", "stories"), ("kept", "kept"), ("short", "skipped_short"),
               ("empty", "skipped_empty"), ("truncated", "truncated"), ("tokens", "tokens"),
               ("unk", "unk_tokens")]
    literal = all("literal_eot" in c for c in splits.values())  # stories holding a literal <|endoftext|>
    rows = [[name for name, _ in columns] + ["unk %"] + (["eot in text"] if literal else [])]
    for split, c in splits.items():
        share = 100.0 * c["unk_tokens"] / c["tokens"] if c["tokens"] else 0.0
        rows.append([split] + [f"{c[key]:,}" for _, key in columns[1:]] + [f"{share:.3f}"]
                    + ([f"{c['literal_eot']:,}"] if literal else []))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))) for row in rows)


def source_line(source: dict, splits: list) -> str:
    """What was read: the layout, the format, the splits, where validation came from, the files left out."""
    kind, ignored = source["kind"], source["ignored"]
    what = {"file": f"one {kind} file", "folder": f"a folder of {kind} files", "hub": f"a Hub dataset of {kind} "
            "files"}.get(source["layout"], "the demo corpus")
    validation = "the source's" if source["validation"] == "source" else source["validation"]
    line = f"source: {what}; splits {', '.join(splits)}; validation: {validation}"
    if ignored:
        line += f"; not read (in no split): {', '.join(ignored[:5])}{', ...' if len(ignored) > 5 else ''}"
    return line
