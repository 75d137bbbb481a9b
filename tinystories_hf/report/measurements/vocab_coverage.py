"""vocab_coverage: how much of a split's tokens a reduced vocabulary covers, by vocabulary size.

Load it offline from the package: `evaluate.load(tinystories_hf.report.measurements.measurement_path("vocab_coverage"))`.
"""
import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Token coverage of a ranked vocabulary. The input is one row per vocabulary id: how often
that id occurs. Ids 0..num_special-1 are specials (id unk_id counts every token outside the vocabulary);
the other ids are ranked, most frequent in the vocabulary sample first, as tinystories-hf numbers them.
Because a smaller vocabulary keeps exactly the first ids, the share covered by the first k ids is the
coverage that vocab_size=k would have had on the same tokens. The order is taken as given, never
re-sorted by this split's own counts (that would overstate coverage of held-out data)."""

_KWARGS_DESCRIPTION = """
Args:
    counts (`list` of `int`): occurrences of each id, indexed by id.
    unk_id (`int`, optional, default 1): the id that stands for every dropped token.
    num_special (`int`, optional, default 2): leading special ids (EOS and UNK) that are not ranked tokens.
    shares (`list` of `float`, optional): coverage targets to report the smallest vocabulary size for.
    sizes (`list` of `int`, optional): vocabulary sizes to report the coverage of.
Returns:
    tokens, unk_tokens, coverage (1 - UNK share), vocab_size, unused_ids (ranked ids never seen),
    size_for_share ({share: smallest vocabulary size, specials included, reaching it, or None}),
    coverage_at ({size: share covered}), cumulative (share covered by vocabulary sizes 1..vocab_size).
Examples:
    >>> coverage = evaluate.load("vocab_coverage.py")
    >>> coverage.compute(counts=[0, 10, 60, 30], sizes=[3])["coverage_at"]
    {3: 0.6}
"""


class VocabCoverage(evaluate.Measurement):
    """Coverage of a ranked vocabulary by size (see the module docstring for inputs and outputs)."""

    def _info(self):
        return evaluate.MeasurementInfo(
            module_type="measurement", description=_DESCRIPTION, citation="", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"counts": datasets.Value("int64")}), format="numpy")

    def _compute(self, counts, unk_id=1, num_special=2, shares=(0.9, 0.99, 0.999), sizes=()):
        counts = np.asarray(counts, dtype=np.int64)
        tokens = int(counts.sum())
        ranked = counts.copy()
        ranked[:num_special] = 0  # specials cover nothing: EOS never occurs inside a story, UNK is the miss
        # cumulative[k - 1]: share of all tokens covered by a vocabulary of the first k ids.
        cumulative = np.cumsum(ranked) / tokens if tokens else np.zeros(len(counts))
        size_for_share = {}
        for share in shares:
            reached = np.flatnonzero(cumulative >= share - 1e-12)
            size_for_share[float(share)] = int(reached[0]) + 1 if len(reached) else None
        return {
            "tokens": tokens,
            "unk_tokens": 0 if unk_id is None else int(counts[unk_id]),
            "coverage": float(cumulative[-1]) if len(counts) else 0.0,
            "vocab_size": len(counts),
            "unused_ids": int(np.count_nonzero(counts[num_special:] == 0)),
            "size_for_share": size_for_share,
            "coverage_at": {int(k): float(cumulative[min(k, len(counts)) - 1]) for k in sizes},
            "cumulative": cumulative.tolist(),
        }
