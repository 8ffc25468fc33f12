"""The report's charts: matplotlib figures rendered to SVG, returned as `data:` URIs for an <img>.

matplotlib is the `report` extra; `require_matplotlib` turns its absence into one line with the
install command. Figures are built with `matplotlib.figure.Figure` (no pyplot: no global state, no
GUI backend). Text is drawn as paths, so a chart looks the same on a machine without our fonts, and
the SVG is deterministic (fixed hash salt, no date) so the same report gives the same file.

Each chart goes into the page as an <img> of a `data:image/svg+xml` URI rather than an inline <svg>:
an image cannot run script or restyle the page, and the ids of two figures cannot collide.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ..errors import EdgepipeError

VERDICT_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "unreachable": "#6a1b9a"}
INVOKE_COLOUR = "#1f77b4"
END_TO_END_COLOUR = "#ff7f0e"
BASELINE_COLOUR = "#212121"
LIMIT_COLOUR = "#424242"
WIDTH_IN = 9.0
ROW_IN = 0.42  # height per chart row: a few boards or hundreds, labels never overlap
# rcParams for every chart. parse_math off: a board or model name with "$" must print as written.
_RC = {
    "svg.fonttype": "path",
    "svg.hashsalt": "edgepipe-report",
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


class PlottingMissingError(EdgepipeError, exit_code=30):
    """matplotlib (the `report` extra) is not installed: exit 30, as for the other missing extras (TensorFlow,
    onnx; README, "Exit codes")."""


def require_matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401  (its import is what fails on a broken install)
    except ImportError as exc:
        raise PlottingMissingError(
            "edgepipe report needs matplotlib, which is not installed (%s)" % exc,
            hint="Install it with: pip install 'edgepipe[report]'",
        ) from None
    return matplotlib


def _figure(rows: int, extra_in: float = 1.3) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(WIDTH_IN, max(1, rows) * ROW_IN + extra_in), layout="constrained")


def to_data_uri(fig: Any) -> str:
    matplotlib = require_matplotlib()
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


LABEL_CHARS = 48  # a longer board or model name is cut in its middle on a chart; the table has it whole


def short(label: str, limit: int = LABEL_CHARS) -> str:
    """`label`, or its start and end around "…" when longer than `limit` (both ends tell boards apart)."""
    if len(label) <= limit:
        return label
    head = (limit - 1) // 2
    return label[:head] + "…" + label[len(label) - (limit - 1 - head) :]


def _finite(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# --- a measured value per board (fleet) ------------------------------------------------------------


@dataclass
class BarRow:
    label: str
    value: Optional[float]  # None: nothing measured (unreachable, or no eval)
    verdict: str
    baseline: Optional[float] = None
    limit: Optional[float] = None
    note: str = ""  # printed after the value, e.g. "0.90× baseline"
    missing: str = "not measured"  # printed instead of a bar when value is None


def bars_against_baseline(
    rows: Sequence[BarRow], xlabel: str, fmt: str, xmax: Optional[float] = None, limit_label: str = "limit"
) -> str:
    """Horizontal bars coloured by verdict, the baseline as a black tick and the limit as a grey one."""
    matplotlib = require_matplotlib()
    with matplotlib.rc_context(_RC):
        fig = _figure(len(rows))
        ax = fig.add_subplot()
        ys = list(range(len(rows)))
        seen = [v for r in rows for v in (r.value, r.baseline) if v is not None]
        top = xmax if xmax is not None else (max(seen) if seen else 1.0) * 1.45 or 1.0
        for y, row in zip(ys, rows):
            colour = VERDICT_COLOURS.get(row.verdict, "#9e9e9e")
            if row.value is None:
                ax.text(top * 0.01, y, row.missing, va="center", color=colour, style="italic")
                continue
            ax.barh(y, row.value, height=0.6, color=colour, alpha=0.85)
            ends = [row.value] + ([row.baseline] if row.baseline is not None else [])
            text = fmt % row.value + ("  " + row.note if row.note else "")
            ax.text(min(max(ends), top) + top * 0.015, y, text, va="center", fontsize=8)
            if row.baseline is not None:
                ax.plot([row.baseline] * 2, [y - 0.38, y + 0.38], color=BASELINE_COLOUR, lw=2.5)
            if row.limit is not None and row.limit <= top:
                ax.plot([row.limit] * 2, [y - 0.45, y + 0.45], color=LIMIT_COLOUR, lw=1.5, ls=(0, (2, 1.5)), zorder=3)
        ax.set_yticks(ys, [short(r.label) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)  # first board on top, as in the table
        ax.set_xlim(0, top)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        handles = [matplotlib.patches.Patch(color=c, label=v) for v, c in VERDICT_COLOURS.items()]
        Line2D = matplotlib.lines.Line2D
        handles.append(Line2D([], [], color=BASELINE_COLOUR, lw=2.5, label="baseline"))
        handles.append(Line2D([], [], color=LIMIT_COLOUR, lw=1.5, ls=(0, (2, 1.5)), label=limit_label))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
        return to_data_uri(fig)


# --- latency distributions (suites, bench) ---------------------------------------------------------

# The results keep a summary of the timed runs, not every sample: the chart shows that summary as it
# is (min to max, with the percentiles marked), never a distribution guessed from it.
_MARKS = (("p50", "o", "p50"), ("p90", "^", "p90"), ("p99", "D", "p99"), ("mean", "P", "mean"))


@dataclass
class LatencyRow:
    label: str
    invoke: Optional[Dict[str, Any]]  # LatencyStats as JSON: first, min, mean, std, p50, p90, p99, max, n
    end_to_end: Optional[Dict[str, Any]] = None


def latency_spread(rows: Sequence[LatencyRow]) -> str:
    """Per row: a line from min to max with p50/p90/p99/mean marked, invoke-only and end to end, and
    the first inference (timed on its own) as a cross. Log scale when the values span over 20x."""
    matplotlib = require_matplotlib()
    with matplotlib.rc_context(_RC):
        fig = _figure(len(rows), extra_in=1.5)
        ax = fig.add_subplot()
        values: List[float] = []
        series = (
            ("invoke", INVOKE_COLOUR, -0.15, "invoke only"),
            ("end_to_end", END_TO_END_COLOUR, 0.15, "end to end"),
        )
        for y, row in enumerate(rows):
            for attr, colour, dy, _ in series:
                stats = getattr(row, attr) or {}
                low, high = _finite(stats.get("min")), _finite(stats.get("max"))
                if low is None or high is None:
                    continue
                values += [low, high]
                ax.plot([low, high], [y + dy, y + dy], color=colour, lw=2, solid_capstyle="butt")
                for key, marker, _ in _MARKS:
                    value = _finite(stats.get(key))
                    if value is not None:
                        ax.plot([value], [y + dy], marker=marker, color=colour, markersize=6, mec="white", mew=0.6)
                first = _finite(stats.get("first"))
                if first is not None:
                    values.append(first)
                    ax.plot([first], [y + dy], marker="x", color=colour, markersize=7, mew=1.8)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_xscale("log")
            # Plain numbers: the default log labels are mathtext, which parse_math=False would print raw.
            ticker = matplotlib.ticker
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: "%g" % value))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_yticks(list(range(len(rows))), [short(r.label) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("latency per inference (ms)")
        ax.grid(axis="x", alpha=0.3, which="both")
        Line2D = matplotlib.lines.Line2D
        handles = [Line2D([], [], color=colour, lw=2, label=label) for _, colour, _, label in series]
        handles += [Line2D([], [], color="#616161", lw=0, marker=m, label=name) for _, m, name in _MARKS]
        handles.append(Line2D([], [], color="#616161", lw=0, marker="x", mew=1.8, label="first inference"))
        handles.append(Line2D([], [], color="#616161", lw=1, label="min – max"))
        fig.legend(handles=handles, loc="outside lower center", ncols=5, frameon=False)
        return to_data_uri(fig)


# --- accuracy --------------------------------------------------------------------------------------


@dataclass
class AccuracyRow:
    label: str
    top1: Optional[float]  # fractions
    topk: Optional[float] = None
    n: Optional[int] = None


def accuracy_bars(rows: Sequence[AccuracyRow], k: int = 5) -> str:
    """Top-1 (and top-k) in percent per row, the value written at the end of each bar."""
    matplotlib = require_matplotlib()
    with matplotlib.rc_context(_RC):
        fig = _figure(len(rows))
        ax = fig.add_subplot()
        for y, row in enumerate(rows):
            if row.top1 is None:
                ax.text(1, y, "not measured", va="center", color="#757575", style="italic")
                continue
            ax.barh(y - 0.17, 100 * row.top1, height=0.32, color=INVOKE_COLOUR)
            ax.text(100 * row.top1 + 1, y - 0.17, "%.2f %%" % (100 * row.top1), va="center", fontsize=8)
            if row.topk is not None:
                ax.barh(y + 0.17, 100 * row.topk, height=0.32, color="#90caf9")
                ax.text(100 * row.topk + 1, y + 0.17, "%.2f %%" % (100 * row.topk), va="center", fontsize=8)
        labels = [short(r.label) + ("\n(n = %d)" % r.n if r.n else "") for r in rows]
        ax.set_yticks(list(range(len(rows))), labels)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlim(0, 112)
        ax.set_xlabel("accuracy (%)")
        ax.grid(axis="x", alpha=0.3)
        Patch = matplotlib.patches.Patch
        fig.legend(
            handles=[Patch(color=INVOKE_COLOUR, label="top-1"), Patch(color="#90caf9", label="top-%d" % k)],
            loc="outside lower center",
            ncols=2,
            frameon=False,
        )
        return to_data_uri(fig)


def confusion_heatmap(matrix: List[List[int]], names: Optional[List[str]] = None) -> str:
    """Rows: true class, columns: predicted; counts written in the cells (small matrices only)."""
    matplotlib = require_matplotlib()
    import numpy as np

    data = np.asarray(matrix, dtype=np.float64)
    with matplotlib.rc_context(_RC):
        side = min(WIDTH_IN, 1.5 + 0.32 * len(data))
        fig = matplotlib.figure.Figure(figsize=(side + 1.2, side), layout="constrained")
        ax = fig.add_subplot()
        image = ax.imshow(data, cmap="Blues")
        ticks = list(range(len(data)))
        labels = [short(n, 24) for n in names] if names and len(names) == len(data) else [str(t) for t in ticks]
        ax.set_xticks(ticks, labels, rotation=90)
        ax.set_yticks(ticks, labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        peak = data.max() if data.size else 0
        for (i, j), count in np.ndenumerate(data):
            if count:
                ax.text(
                    j,
                    i,
                    "%d" % count,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if count > peak / 2 else "#212121",
                )
        fig.colorbar(image, ax=ax, shrink=0.8)
        return to_data_uri(fig)


__all__ = [
    "AccuracyRow",
    "BarRow",
    "LatencyRow",
    "PlottingMissingError",
    "accuracy_bars",
    "bars_against_baseline",
    "confusion_heatmap",
    "latency_spread",
    "require_matplotlib",
    "short",
    "to_data_uri",
]
