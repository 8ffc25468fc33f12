"""The page's sections for each kind of result: tables of what was measured, and its charts.

Each function takes a result as `html.load_result` returns it (kind checked, the required fields
present) and reads every other field tolerantly: an older or partial result shows "—", not a crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import charts
from .markup import Html, badge, dict_, figure, kv, lines, list_, ms, num, path, pct, pp, size, table, tag

VERDICTS = ("pass", "fail", "unreachable")


def section(title: str, *content: Any) -> Html:
    return tag("section", tag("h2", title), *content)


# --- fleet ----------------------------------------------------------------------------------------


def _vs_baseline_ms(base: Dict[str, Any]) -> str:
    ratio = num(base.get("p50_ratio"))
    if num(base.get("p50_ms")) is None:
        return "—"
    return "%.2f× (was %s)" % (ratio, ms(base["p50_ms"])) if ratio is not None else "was %s" % ms(base["p50_ms"])


def _vs_baseline_top1(base: Dict[str, Any]) -> str:
    drop = num(base.get("top1_drop_pp"))
    if num(base.get("top1")) is None:
        return "—"
    return "%s (was %s)" % (pp(-drop), pct(base["top1"])) if drop is not None else "was %s" % pct(base["top1"])


def _board_software(remote: Dict[str, Any]) -> str:
    parts = [remote.get("python") and "Python %s" % remote["python"], remote.get("runtime")]
    return ", ".join(str(p) for p in parts if p)


def _fleet_chart_rows(
    name: str, verdict: str, expect: Dict[str, Any], models: List[Tuple[str, Dict, Dict]], several: bool
) -> Tuple[List[charts.BarRow], List[charts.BarRow]]:
    if not models:
        missing = "unreachable: nothing measured" if verdict == "unreachable" else "no model result"
        return [charts.BarRow(name, None, verdict, missing=missing)], [
            charts.BarRow(name, None, verdict, missing=missing)
        ]
    latency, accuracy = [], []
    for model, summary, base in models:
        label = "%s · %s" % (name, model) if several else name
        ratio, drop = num(base.get("p50_ratio")), num(base.get("top1_drop_pp"))
        latency.append(
            charts.BarRow(
                label,
                num(summary.get("p50_ms")),
                verdict,
                baseline=num(base.get("p50_ms")),
                limit=num(expect.get("max_p50_ms")),
                note="%.2f× baseline" % ratio if ratio is not None else "",
            )
        )
        top1, base1, min1 = num(summary.get("top1")), num(base.get("top1")), num(expect.get("min_top1"))
        accuracy.append(
            charts.BarRow(
                label,
                None if top1 is None else 100 * top1,
                verdict,
                baseline=None if base1 is None else 100 * base1,
                limit=None if min1 is None else 100 * min1,
                note="%s vs baseline" % pp(-drop) if drop is not None else "",
                missing="no top-1 (no eval)",
            )
        )
    return latency, accuracy


def fleet_sections(report: Dict[str, Any]) -> List[Html]:
    boards = report["boards"]
    counts = dict_(report.get("counts"))
    several = any(len(list_(b.get("models"))) > 1 for b in boards)
    rows, latency, accuracy = [], [], []
    for board in boards:
        name, verdict = str(board.get("name")), str(board.get("verdict"))
        models = [
            (str(m.get("model")), dict_(m.get("summary")), dict_(m.get("baseline")))
            for m in map(dict_, list_(board.get("models")))
        ]
        notes = [tag("span", n, class_="note") for n in list_(board.get("notes"))]
        row = [
            lines(
                [
                    tag("b", name),
                    tag("span", board.get("target"), class_="sub"),
                    tag("span", _board_software(dict_(board.get("remote"))), class_="sub"),
                ],
                "wrap",  # targets are absolute paths or long host names: they wrap, the table fits
            ),
            badge(verdict),
            lines((m for m, _, _ in models), "wrap"),
            lines(s.get("backend") for _, s, _ in models),
            lines((ms(s.get("p50_ms")) for _, s, _ in models), "r"),
            lines((_vs_baseline_ms(b) for _, _, b in models), "r"),
            lines((pct(s.get("top1")) for _, s, _ in models), "r"),
            lines((_vs_baseline_top1(b) for _, _, b in models), "r"),
            lines(list_(board.get("reasons")) + notes, "reason"),
        ]
        rows.append(row if several else row[:2] + row[3:])
        lat, acc = _fleet_chart_rows(name, verdict, dict_(board.get("expect")), models, several)
        latency += lat
        accuracy += acc
    headers = ["Board", "Verdict", "Model", "Backend", "p50 ms", "vs baseline", "Top-1", "vs baseline", "Reasons"]
    if not several:  # one model for every board: its name is in the reasons, not a column
        headers.pop(2)
    badges = [tag("span", badge(v), " %d" % int(num(counts.get(v)) or 0), class_="count") for v in VERDICTS]
    sections = [
        section(
            "Summary",
            kv(
                [
                    ("verdicts", Html("".join(badges))),
                    ("boards", len(boards)),
                    ("inventory", report.get("inventory")),
                    ("baseline", report.get("baseline") or "none (nothing to compare with)"),
                ]
            ),
        ),
        section("Boards", table(headers, rows, class_="grid boards")),
    ]
    if boards:
        uri = charts.bars_against_baseline(
            latency, "p50 latency per inference (ms)", "%.3f ms", limit_label="max_p50_ms"
        )
        sections.append(section("Latency per board (p50, invoke only)", figure(uri, "p50 latency per board")))
        uri = charts.bars_against_baseline(accuracy, "top-1 (%)", "%.1f %%", xmax=118.0, limit_label="min_top1")
        sections.append(section("Top-1 per board", figure(uri, "top-1 per board")))
    return sections


# --- suites ---------------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join("%s: %s" % (k, _compact(v)) for k, v in value.items() if not isinstance(v, (dict, list)))
    return "" if value is None else str(value)


def _warnings(report: Dict[str, Any]) -> List[Html]:
    return [tag("p", "warning: ", w, class_="warning") for w in list_(report.get("warnings")) if w]


def suite_sections(report: Dict[str, Any]) -> List[Html]:
    results = report["results"]
    rows, latency, accuracy = [], [], []
    for r in results:
        variant, lat = str(r.get("variant")), dict_(r.get("latency_ms"))
        backend = str(r.get("backend"))
        if r.get("requested_backend") and r.get("requested_backend") != r.get("backend"):
            backend += " (asked %s)" % r["requested_backend"]
        why = [r.get("fallback_reason") or r.get("backend_reason"), *list_(r.get("notes"))]
        rows.append(
            [
                tag("b", variant),
                backend,
                pct(r.get("top1")),
                pct(r.get("top5")),
                r.get("n"),
                ms(lat.get("p50")),
                ms(lat.get("p99")),
                ms(lat.get("first")),
                size(r.get("size_bytes")),
                path(r.get("model")),
                lines((w for w in why if w), "reason"),
            ]
        )
        latency.append(charts.LatencyRow(variant, lat, dict_(r.get("end_to_end_ms"))))
        accuracy.append(charts.AccuracyRow(variant, num(r.get("top1")), num(r.get("top5")), int(num(r.get("n")) or 0)))
    duration = num(report.get("duration_s"))
    facts = [
        ("suite", report.get("suite")),
        ("output folder", report.get("out_dir")),
        ("duration", None if duration is None else "%.1f s" % duration),
        ("data", _compact(report.get("data"))),
    ]
    facts += [(k, _compact(v)) for k, v in dict_(report.get("comparisons")).items()]
    headers = [
        "Variant",
        "Backend",
        "Top-1",
        "Top-5",
        "n",
        "p50 ms",
        "p99 ms",
        "first ms",
        "Size",
        "Model",
        "Why there",
    ]
    sections = [section("Summary", kv(facts), *_warnings(report)), section("Variants", table(headers, rows))]
    if results:
        sections.append(section("Latency per variant", figure(charts.latency_spread(latency), "latency per variant")))
        if any(a.top1 is not None for a in accuracy):
            sections.append(section("Accuracy per variant", figure(charts.accuracy_bars(accuracy), "accuracy")))
    return sections


# --- bench, eval, deploy --------------------------------------------------------------------------


def _session_facts(report: Dict[str, Any]) -> List[Tuple[str, Any]]:
    model, ran = dict_(report.get("model")), dict_(report.get("run_model"))
    env = dict_(report.get("environment"))
    where = [
        env.get("hostname"),
        env.get("machine"),
        env.get("python") and "Python %s" % env["python"],
        dict_(env.get("runtime")).get("name"),
    ]
    fallback = report.get("fallback_reason")
    facts = [
        ("model", path(model.get("path"))),
        ("ran", path(ran.get("path")) if ran.get("path") != model.get("path") else None),
        ("backend", "%s (asked %s)" % (report.get("backend"), report.get("requested_backend"))),
        ("why there", report.get("backend_reason")),
        ("fallback", fallback if fallback != report.get("backend_reason") else None),
        ("fix", report.get("fallback_fix")),
        ("device", report.get("device")),
        ("measured on", ", ".join(str(w) for w in where if w)),
    ]
    return facts + [("note", n) for n in list_(report.get("notes"))]


def _model_name(report: Dict[str, Any]) -> str:
    return Path(str(dict_(report.get("model")).get("path") or "model")).name


def bench_sections(report: Dict[str, Any], title: str = "Benchmark") -> List[Html]:
    invoke, e2e = dict_(report.get("latency_ms")), dict_(report.get("end_to_end_ms"))
    columns = ("first", "min", "mean", "std", "p50", "p90", "p99", "max")
    rows = [
        [label, *(ms(s.get(c)) for c in columns), s.get("n")]
        for label, s in (("invoke only", invoke), ("end to end", e2e))
        if s
    ]
    top5 = ", ".join(
        "%s (%.3f)" % (p.get("index"), num(p.get("score")) or 0.0) for p in map(dict_, list_(report.get("prediction")))
    )
    facts = _session_facts(report) + [
        ("runs", "%s timed, %s warm-up" % (report.get("runs"), report.get("warmup"))),
        ("first output, top 5", top5),
    ]
    uri = charts.latency_spread([charts.LatencyRow(_model_name(report), invoke, e2e)])
    return [
        section(title, kv(facts)),
        section("Latency (ms)", table(["", *columns, "n"], rows, class_="grid num"), figure(uri, "latency")),
    ]


def eval_sections(report: Dict[str, Any], title: str = "Evaluation") -> List[Html]:
    data = dict_(report.get("dataset"))
    k = int(num(report.get("top_k")) or 5)
    per_class = [dict_(c) for c in list_(report.get("per_class"))]
    dataset = data.get("spec") or data.get("name")
    facts = _session_facts(report) + [
        ("dataset", "%s (%s)" % (dataset, data["source"]) if data.get("source") else dataset),
        ("top-1", "%s (%s of %s)" % (pct(report.get("top1")), report.get("correct_top1"), report.get("n"))),
        ("top-%d" % k, pct(report.get("top5"))),
        ("classes", "%s in the model, %d in the data" % (report.get("num_classes"), len(per_class))),
        ("batching", report.get("batch_note")),
        ("speed", "%s images/s" % report["images_per_s"] if num(report.get("images_per_s")) else None),
    ]
    row = charts.AccuracyRow(
        _model_name(report), num(report.get("top1")), num(report.get("top5")), int(num(report.get("n")) or 0)
    )
    sections = [section(title, kv(facts), figure(charts.accuracy_bars([row], k=k), "accuracy"))]
    matrix = report.get("confusion_matrix")
    if isinstance(matrix, list) and 0 < len(matrix) <= 20 and all(isinstance(r, list) for r in matrix):
        names = [str(c.get("name") or c.get("class")) for c in per_class] if len(per_class) == len(matrix) else None
        sections.append(section("Confusion matrix", figure(charts.confusion_heatmap(matrix, names), "confusion")))
    if per_class:
        worst = sorted(per_class, key=lambda c: (num(c.get("top1")) or 0.0, -(num(c.get("n")) or 0)))
        body = table(
            ["class", "name", "n", "correct", "top-1"],
            [[c.get("class"), c.get("name"), c.get("n"), c.get("correct"), pct(c.get("top1"))] for c in worst],
        )
        sections.append(
            tag("section", tag("details", tag("summary", "Per class (%d, worst first)" % len(per_class)), body))
        )
    return sections


def deploy_sections(report: Dict[str, Any]) -> List[Html]:
    remote = dict_(report.get("remote"))
    runtime = dict_(remote.get("runtime"))
    facts = [
        ("target", report.get("target")),
        ("folder there", report.get("remote_dir")),
        ("Python", remote.get("python")),
        ("runtime", " ".join(str(runtime.get(k) or "") for k in ("name", "version")).strip()),
        ("Edge TPU ready", remote.get("edgetpu_ready")),
    ]
    sections = [section("Target", kv(facts))]
    for result in report["results"]:
        model = str(result.get("model"))
        if isinstance(result.get("bench"), dict):
            sections += bench_sections(result["bench"], title="Benchmark of %s" % model)
        if isinstance(result.get("eval"), dict):
            sections += eval_sections(result["eval"], title="Evaluation of %s" % model)
    return sections


SECTIONS: Dict[str, Callable[[Dict[str, Any]], List[Html]]] = {
    "fleet": fleet_sections,
    "suite": suite_sections,
    "bench": bench_sections,
    "eval": eval_sections,
    "deploy": deploy_sections,
}


def title_of(result: Dict[str, Any]) -> str:
    kind = result["kind"]
    if kind == "suite":
        return "Suite %s" % result.get("suite")
    named: Optional[str] = None if kind in ("fleet", "deploy") else _model_name(result)
    base = {"fleet": "Fleet validation", "bench": "Benchmark", "eval": "Evaluation", "deploy": "Deploy"}[kind]
    if kind == "deploy":
        named = str(result.get("target"))
    return "%s: %s" % (base, named) if named else base


__all__ = ["SECTIONS", "VERDICTS", "title_of"]
