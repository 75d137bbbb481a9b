"""The report's three plots, drawn with matplotlib's `Figure` (Agg renderer: no display, no pyplot state):
`lengths.png` (story length per split), `coverage.png` (share of tokens covered by vocabulary size) and
`unk.png` (UNK tokens per story, or why there are none)."""
from pathlib import Path

import numpy as np

PLOT_FILES = {"lengths": "lengths.png", "coverage": "coverage.png", "unk": "unk.png"}


def _figure():
    from matplotlib.figure import Figure  # no pyplot: no global backend switch, nothing left open

    fig = Figure(figsize=(8, 4.5))
    return fig, fig.subplots()


def _save(fig, ax, path: Path, **legend) -> None:
    ax.legend(**legend)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _percent_of_stories(values: np.ndarray) -> np.ndarray:
    """Histogram weights that make each split's bars sum to 100, whatever its size."""
    return np.full(len(values), 100.0 / max(1, len(values)))


def _plot_lengths(arrays: dict, *, min_length: int, max_length: int | None, path: Path) -> None:
    fig, ax = _figure()
    top = max_length if max_length is not None else max([int(a["lengths"].max()) for a in arrays.values()
                                                          if len(a["lengths"])] + [1])
    bins = np.linspace(0, top + 1, min(80, top + 1) + 1)
    for split, a in arrays.items():
        ax.hist(a["lengths"], bins=bins, weights=_percent_of_stories(a["lengths"]), histtype="step", linewidth=1.5,
                label=f"{split} ({len(a['lengths']):,} stories)")
    if max_length is not None:
        ax.axvline(max_length, color="red", linestyle="--", label=f"truncation (max_length {max_length})")
    ax.axvline(min_length, color="gray", linestyle=":", label=f"min_length {min_length}")
    ax.set(xlabel="story length (tokens, after truncation)", ylabel="% of the split's stories",
           title="Story length per split")
    _save(fig, ax, path)


def _plot_coverage(coverage: dict, *, vocab_size: int, path: Path) -> None:
    fig, ax = _figure()
    sizes = np.arange(1, vocab_size + 1)
    for name, c in coverage.items():
        sample = name == "vocabulary sample"  # drawn dashed on top: the splits' curves often lie right under it
        ax.plot(sizes[2:], 100.0 * np.asarray(c["cumulative"][2:]), linewidth=1.5, zorder=3 if sample else 2,
                linestyle="--" if sample else "-", color="black" if sample else None,
                label=f"{name}: {100 * c['coverage']:.2f}% at the cut")
    ax.axvline(vocab_size, color="red", linestyle="--", label=f"cut: vocab_size {vocab_size}")
    ax.set_xscale("log")
    ax.set(xlabel="vocabulary size (ids, EOS and UNK included; ranked by the vocabulary sample)",
           ylabel="% of tokens covered (not UNK)", title="Vocabulary coverage by size")
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, ax, path, loc="lower right")


NO_UNK = "no UNK in this vocabulary"
NO_STORY_WITH_UNK = "no story holds an UNK token"


def unk_absent(arrays: dict, *, unk_id: int | None) -> str | None:
    """Why there is no UNK histogram to draw (NO_UNK: the vocabulary has no UNK id, as GPT-2's own ids and a
    trained byte-level BPE; NO_STORY_WITH_UNK: it has one that no stored story uses), or None."""
    if unk_id is None:
        return NO_UNK
    if not any(a["unk_tokens"].any() for a in arrays.values()):
        return NO_STORY_WITH_UNK
    return None


def unk_figure(arrays: dict, *, unk_id: int | None):
    """The UNK plot as a matplotlib `Figure`: the share of each split's stories (log scale) by their number of UNK
    tokens. Without a UNK to count (`unk_absent`), a histogram would be one bar at 100% under a lone `10²` tick:
    the figure then holds only its title and the reason, centred, and no axes.

    Example:
        >>> fig = unk_figure({"train": {"unk_tokens": np.zeros(3, np.int32)}}, unk_id=None)
        >>> [t.get_text() for t in fig.axes[0].texts]
        ['no UNK in this vocabulary']
    """
    fig, ax = _figure()
    ax.set_title("UNK tokens per story")
    absent = unk_absent(arrays, unk_id=unk_id)
    if absent is not None:
        stories = sum(len(a["unk_tokens"]) for a in arrays.values())
        ax.text(0.5, 0.5, absent, ha="center", va="center", fontsize=16, transform=ax.transAxes)
        detail = ("the tokenizer encodes every text without one" if absent == NO_UNK
                  else f"0 of {stories:,} stories; the UNK share is 0")
        ax.text(0.5, 0.38, detail, ha="center", va="center", fontsize=11, color="gray", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    top = max([int(a["unk_tokens"].max()) for a in arrays.values() if len(a["unk_tokens"])] + [1])
    bins = np.arange(0, top + 2) - 0.5
    for split, a in arrays.items():
        ax.hist(a["unk_tokens"], bins=bins, weights=_percent_of_stories(a["unk_tokens"]), histtype="step",
                linewidth=1.5, label=split)
    ax.set_yscale("log")
    ax.set(xlabel="UNK tokens in the story", ylabel="% of the split's stories (log)")
    ax.legend()
    return fig


def _plot_unk(arrays: dict, *, unk_id: int | None, path: Path) -> None:
    fig = unk_figure(arrays, unk_id=unk_id)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot(arrays: dict, figures: dict, info: dict, folder: Path, *, done=lambda n: None) -> None:
    """Write the three PNGs into `folder` (matplotlib's Agg renderer: no display needed); `done(1)` after each."""
    config = info["config"]
    _plot_lengths(arrays, min_length=config["min_length"], max_length=config["max_length"],
                  path=folder / PLOT_FILES["lengths"])
    done(1)
    _plot_coverage(figures["coverage"], vocab_size=info["vocab_size"], path=folder / PLOT_FILES["coverage"])
    done(1)
    _plot_unk(arrays, unk_id=info.get("unk_id"), path=folder / PLOT_FILES["unk"])
    done(1)
