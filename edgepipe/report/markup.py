"""HTML built safely: markup is only what `tag`/`void` make (`Html`); every other value is escaped.

Report strings (board names, reasons, model paths, a remote host's error text) can hold anything,
including `<script>`; they reach the page only through `h()`. Also here: tolerant readers for values
of a report that may be missing or of the wrong type, and the number formats of every table.
"""

from __future__ import annotations

import html
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence


class Html(str):
    """Markup built by this package; any other value is escaped when it goes into the page."""


def h(value: Any) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def void(element: str, /, **attrs: Any) -> Html:
    """<name attrs>; attribute names: trailing '_' dropped, '_' → '-' (class_, http_equiv)."""
    rendered = "".join(' %s="%s"' % (k.rstrip("_").replace("_", "-"), h(v)) for k, v in attrs.items() if v is not None)
    return Html("<%s%s>" % (element, rendered))


def tag(element: str, /, *content: Any, **attrs: Any) -> Html:
    """<name attrs>content</name>, the content escaped unless it is `Html`."""
    return Html("%s%s</%s>" % (void(element, **attrs), join(content), element))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    return Html(h(sep).join(h(p) for p in parts))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], class_: str = "grid") -> Html:
    head = tag("tr", *(tag("th", c) for c in headers))
    body = [tag("tr", *(tag("td", c) for c in row)) for row in rows]
    return tag("table", tag("thead", head), tag("tbody", *body), class_=class_)


def lines(items: Iterable[Any], class_: Optional[str] = None) -> Html:
    """One <div> per item: a cell listing one value per model, or one reason per line."""
    return join([tag("div", item, class_=class_) for item in items])


def kv(rows: Iterable[Sequence[Any]]) -> Html:
    """A two-column table of (label, value); rows without a value are left out."""
    kept = [(k, v) for k, v in rows if v is not None and str(v) != ""]
    return tag("table", *(tag("tr", tag("th", k), tag("td", v)) for k, v in kept), class_="kv")


def figure(uri: str, alt: str) -> Html:
    return tag("figure", void("img", src=uri, alt=alt))


def badge(verdict: str) -> Html:
    return tag("span", verdict, class_="badge v-%s" % verdict)


def path(value: Any) -> Html:
    return tag("span", value, class_="path")


# --- values from a report that may hold anything ------------------------------------------------


def num(value: Any) -> Optional[float]:
    """A finite number, else None (missing, text, bool, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def dict_(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def list_(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def ms(value: Any) -> str:
    value = num(value)
    return "—" if value is None else "%.3f" % value


def pct(fraction: Any) -> str:
    value = num(fraction)
    return "—" if value is None else "%.2f %%" % (100 * value)


def pp(value: float) -> str:
    """Signed percentage points; never "-0.0"."""
    return "%+.1f pp" % (round(value, 1) + 0.0)


def size(n: Any) -> str:
    value = num(n)
    if value is None:
        return "—"
    if value < 1024:
        return "%d bytes" % value
    return "%.1f KiB" % (value / 1024) if value < 1024 * 1024 else "%.1f MiB" % (value / 1024 / 1024)


__all__ = [
    "Html",
    "badge",
    "dict_",
    "figure",
    "h",
    "join",
    "kv",
    "lines",
    "list_",
    "ms",
    "num",
    "path",
    "pct",
    "pp",
    "size",
    "table",
    "tag",
    "void",
]
