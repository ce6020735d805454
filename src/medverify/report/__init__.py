"""The offline HTML report of an evaluation run (``report.html`` in the run directory).

Written by ``medverify healthbench`` and the consultation benchmark; see
:mod:`medverify.report.html` for what the page shows and :mod:`medverify.report.charts` for the
inline SVG charts.
"""

from medverify.report.charts import bar_chart
from medverify.report.html import render_report, write_report

__all__ = ["bar_chart", "render_report", "write_report"]
