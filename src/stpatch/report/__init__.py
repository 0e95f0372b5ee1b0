"""One self-contained HTML page per run (``stpatch report RUN``): :func:`write_report`, :func:`build_report`."""

from stpatch.report.html import build_report, write_report

__all__ = ["build_report", "write_report"]
