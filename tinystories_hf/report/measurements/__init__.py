"""`evaluate` measurements shipped with the package, loaded from their file path (offline):

    >>> import evaluate
    >>> from tinystories_hf.report.measurements import measurement_path
    >>> token_stats = evaluate.load(measurement_path("token_stats"))  # doctest: +SKIP

evaluate copies each file into its modules cache and imports it alone, so these files import only
libraries (one `import` per line, as evaluate's loader requires), never other modules of this package.
"""
from pathlib import Path

MEASUREMENTS = ("token_stats", "vocab_coverage")


def measurement_path(name: str) -> str:
    """Path of a measurement file to pass to `evaluate.load`, e.g. `measurement_path("vocab_coverage")`."""
    if name not in MEASUREMENTS:
        raise ValueError(f"unknown measurement {name!r}; use one of {', '.join(MEASUREMENTS)}")
    return str(Path(__file__).with_name(f"{name}.py"))
