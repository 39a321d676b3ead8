"""`complete-bridge report`: the migration picture from the bridge's JSON log.

`build_report(lines)` aggregates (lines.py, tally.py, summary.py); `render_text`, `render_json` and
`render_html` show a `Report` on a terminal, as JSON and as one self-contained page.
"""

from proxy.report.html import render_html
from proxy.report.lines import build_report, parse_timestamp
from proxy.report.rows import Report
from proxy.report.summary import render_json
from proxy.report.text import render_text

__all__ = ["Report", "build_report", "parse_timestamp", "render_html", "render_json", "render_text"]
