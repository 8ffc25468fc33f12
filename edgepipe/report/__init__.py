"""Results as a page people can look at: `edgepipe report RESULT.json -o report.html` (see html.py).

Not to be confused with `edgepipe.runtime.report`, which writes the result JSON this package reads.
"""

from .charts import PlottingMissingError
from .html import HtmlReport, ReportFormatError, load_result, print_summary, render_html, write_html_report

__all__ = [
    "HtmlReport",
    "PlottingMissingError",
    "ReportFormatError",
    "load_result",
    "print_summary",
    "render_html",
    "write_html_report",
]
