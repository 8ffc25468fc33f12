"""`edgepipe report`: one result JSON → one self-contained HTML page (tables and charts).

Reads what edgepipe writes: a fleet report (`kind: "fleet"`), a suite's results.json, a
`bench --json` or `eval --json` result, and a deploy's results.json. The page needs no network: the
styles are inline, the charts are SVG `data:` images (charts.py), there is no script, and a
Content-Security-Policy tells the browser to load nothing else. Every string taken from the report is
escaped (markup.py).

Bad input is one typed error: a missing file (InputNotFoundError, exit 3), a file that is not an
edgepipe result (ReportFormatError, 2), an unwritable output (OutputWriteError, 5), matplotlib
missing (PlottingMissingError, 30 like the other missing extras). The page is written atomically:
never half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

from .. import __version__
from ..errors import EdgepipeError, InputNotFoundError
from ..runtime.report import RESULT_SCHEMA_VERSION, make_dirs, write_bytes_atomic
from . import charts
from .markup import Html, dict_, tag, void
from .sections import SECTIONS, title_of

KINDS = tuple(SECTIONS)
_INPUT_HINT = "Pass a fleet_report.json, a suite's results.json, or what bench/eval --json or deploy wrote"
# What each kind must have for a page to mean anything; every other field is read tolerantly.
_REQUIRED: Dict[str, Dict[str, Any]] = {
    "fleet": {"boards": list},
    "suite": {"results": list},
    "bench": {"latency_ms": dict},
    "eval": {"top1": (int, float), "n": int},
    "deploy": {"results": list},
}
# No script, no fetch of anything: only the inline styles and the charts' data: images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class ReportFormatError(EdgepipeError, exit_code=2):
    """The input is not an edgepipe result this command can show (not JSON, unknown kind, broken)."""


@dataclass
class HtmlReport:
    source: str
    output: str
    kind: str
    bytes: int
    charts: int


def load_result(path: Union[str, Path]) -> Dict[str, Any]:
    """The parsed result, its kind checked (a suite's results.json without a kind gets "suite")."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError("report %s does not exist" % path, hint=_INPUT_HINT)
    if not path.is_file():
        raise InputNotFoundError("report %s is not a file" % path, hint=_INPUT_HINT)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputNotFoundError("cannot read report %s: %s" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError:
        raise ReportFormatError("report %s is not text (not UTF-8)" % path, hint=_INPUT_HINT) from None
    try:
        result = json.loads(text)
    except ValueError as exc:
        raise ReportFormatError("report %s is not JSON (%s)" % (path, exc), hint=_INPUT_HINT) from None
    if not isinstance(result, dict):
        what = type(result).__name__
        raise ReportFormatError("report %s holds a JSON %s, not an edgepipe result" % (path, what), hint=_INPUT_HINT)
    kind = result.get("kind")
    if kind is None and "suite" in result:
        kind = result["kind"] = "suite"
    if kind == "error":
        message = dict_(result.get("error")).get("message")
        raise ReportFormatError(
            "report %s records a failure, not a result: %s" % (path, message),
            hint="Fix that failure and run the command again",
        )
    if kind not in KINDS:
        raise ReportFormatError(
            "report %s has kind %r; edgepipe report shows %s" % (path, kind, ", ".join(KINDS)), hint=_INPUT_HINT
        )
    version = result.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ReportFormatError("report %s has no schema_version: not written by edgepipe" % path, hint=_INPUT_HINT)
    if version > RESULT_SCHEMA_VERSION:
        raise ReportFormatError(
            "report %s has schema version %d; this edgepipe (%s) reads up to %d"
            % (path, version, __version__, RESULT_SCHEMA_VERSION),
            hint="Upgrade edgepipe",
        )
    for key, wanted in _REQUIRED[kind].items():
        value = result.get(key)
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise ReportFormatError("report %s (kind %s) has no valid %r" % (path, kind, key), hint=_INPUT_HINT)
        if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
            raise ReportFormatError("report %s (kind %s): %r must be a list of objects" % (path, kind, key))
    return result


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;
 color:#212121;background:#fafafa;font-size:14px;line-height:1.4}
main{max-width:1280px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 2px;overflow-wrap:anywhere}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#616161;margin:0 0 8px;overflow-wrap:anywhere}
table{border-collapse:collapse;background:#fff;margin:4px 0}
th,td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#eeeeee;position:sticky;top:0}
table.grid td{white-space:nowrap}
table.kv th{background:#f5f5f5;font-weight:600;white-space:nowrap}table.kv td{overflow-wrap:anywhere}
.r,table.num td{text-align:right}
.reason{white-space:normal;min-width:220px;max-width:520px;overflow-wrap:anywhere}
.wrap{white-space:normal;overflow-wrap:anywhere}
table.boards td:first-child{min-width:11em}
.sub{display:block;color:#616161;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.v-pass{background:#2e7d32}.v-fail{background:#c62828}.v-unreachable{background:#6a1b9a}
.count{margin-right:14px}.note{color:#616161}
.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:normal;word-break:break-all}
table.grid .path{display:block;max-width:340px}
figure{margin:10px 0;background:#fff;border:1px solid #e0e0e0;padding:8px;display:inline-block;max-width:100%}
figure img{max-width:100%;height:auto;display:block}
.warning{color:#e65100;margin:6px 0;max-width:1100px}
"""


def render_html(result: Dict[str, Any], source: str = "") -> Html:
    """The whole page for a result loaded by `load_result`."""
    kind = result["kind"]
    try:
        sections = SECTIONS[kind](result)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # A field of the wrong type deep inside: one line naming it, not a traceback (--debug shows it).
        raise ReportFormatError(
            "report %s (kind %s) is malformed: %s: %s" % (source, kind, type(exc).__name__, exc), hint=_INPUT_HINT
        ) from exc
    title = title_of(result)
    meta = "%s · created %s · edgepipe %s · from %s" % (
        kind,
        result.get("created") or "?",
        result.get("edgepipe_version") or __version__,
        source or "?",
    )
    head = [
        void("meta", charset="utf-8"),
        void("meta", name="viewport", content="width=device-width, initial-scale=1"),
        void("meta", http_equiv="Content-Security-Policy", content=CSP),
        void("link", rel="icon", href="data:,"),  # or the browser asks for /favicon.ico
        tag("title", "edgepipe: %s" % title),
        tag("style", Html(_STYLE)),
    ]
    body = tag("main", tag("h1", title), tag("p", meta, class_="meta"), *sections)
    return Html('<!DOCTYPE html>\n<html lang="en"><head>%s</head><body>%s</body></html>\n' % ("".join(head), body))


def write_html_report(report: Union[str, Path], out: Optional[Union[str, Path]] = None) -> HtmlReport:
    """Read `report`, write its page to `out` (default: beside it, .html) atomically; say what was written."""
    charts.require_matplotlib()  # first: without it nothing else can be done
    result = load_result(report)
    out_path = Path(out) if out is not None else Path(report).with_suffix(".html")
    page = render_html(result, source=str(report))
    data = page.encode("utf-8")
    make_dirs(out_path.parent, hint="Pick a writable -o")
    write_bytes_atomic(os.fspath(out_path), data)
    return HtmlReport(
        source=str(report), output=str(out_path), kind=result["kind"], bytes=len(data), charts=page.count("<img ")
    )


def print_summary(written: HtmlReport, console: Any) -> None:
    """The CLI's line for a written page."""
    line = "%s report: %s (%d KiB, %d charts)" % (written.kind, written.output, written.bytes // 1024, written.charts)
    console.print(line, markup=False, highlight=False)


__all__ = [
    "CSP",
    "KINDS",
    "HtmlReport",
    "ReportFormatError",
    "load_result",
    "print_summary",
    "render_html",
    "write_html_report",
]
