"""token_stats: story lengths and UNK tokens of a tokenized split, one row per story.

Load it offline from the package: `evaluate.load(tinystories_hf.report.measurements.measurement_path("token_stats"))`.
"""
import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Per-split statistics of a tokenized story dataset: how many stories and tokens, the
distribution of story lengths (in tokens, after truncation), how many stories sit exactly at the
truncation length, and how many UNK tokens the stories hold."""

_KWARGS_DESCRIPTION = """
Args:
    lengths (`list` of `int`): tokens in each story (the prepared `length` column).
    unk_tokens (`list` of `int`): UNK tokens in each story.
    max_length (`int`, optional): the truncation length; stories of exactly this length are counted.
Returns:
    stories, tokens, mean_length, min_length, p10_length, median_length, p90_length, p99_length,
    max_length, at_max_length, unk_tokens, unk_share (UNK / tokens), stories_with_unk, max_unk_per_story.
Examples:
    >>> token_stats = evaluate.load("token_stats.py")
    >>> token_stats.compute(lengths=[10, 20, 30], unk_tokens=[0, 1, 2], max_length=30)["unk_share"]
    0.05
"""


class TokenStats(evaluate.Measurement):
    """Story-length and UNK statistics of one split (see the module docstring for inputs and outputs)."""

    def _info(self):
        return evaluate.MeasurementInfo(
            module_type="measurement", description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"lengths": datasets.Value("int32"), "unk_tokens": datasets.Value("int32")}),
            format="numpy")

    def _compute(self, lengths, unk_tokens, max_length=None):
        lengths = np.asarray(lengths, dtype=np.int64)
        unk = np.asarray(unk_tokens, dtype=np.int64)
        tokens = int(lengths.sum())
        p10, median, p90, p99 = (float(v) for v in np.percentile(lengths, [10, 50, 90, 99])) if len(lengths) \
            else (0.0, 0.0, 0.0, 0.0)
        return {
            "stories": len(lengths),
            "tokens": tokens,
            "mean_length": float(lengths.mean()) if len(lengths) else 0.0,
            "min_length": int(lengths.min()) if len(lengths) else 0,
            "p10_length": p10,
            "median_length": median,
            "p90_length": p90,
            "p99_length": p99,
            "max_length": int(lengths.max()) if len(lengths) else 0,
            "at_max_length": None if max_length is None else int(np.count_nonzero(lengths == max_length)),
            "unk_tokens": int(unk.sum()),
            "unk_share": float(unk.sum() / tokens) if tokens else 0.0,
            "stories_with_unk": int(np.count_nonzero(unk)),
            "max_unk_per_story": int(unk.max()) if len(unk) else 0,
        }
