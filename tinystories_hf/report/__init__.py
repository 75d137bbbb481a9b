"""A look at a prepared folder before training on it. Takes a prepared folder; gives per-split tables,
plots and `report.md`/`report.json` in `DIR/report/` (`write.py`), measured by the package's own `evaluate`
measurements (`measurements/`).
"""
from .._moved import forward
from .write import ReportConfig, write_report

__all__ = ["ReportConfig", "write_report"]
__getattr__ = forward(__name__)  # the names of the 0.1 module tinystories_hf.report
