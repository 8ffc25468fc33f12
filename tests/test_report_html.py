"""`edgepipe report`: result JSON → one self-contained HTML page, opened in a real headless Chromium.

The inputs are real results made here: a real `fleet validate` of local board folders (one passing,
one missing an expectation, one dead) run twice so the second run has a baseline, real `bench --json`
and `eval --json` of Coral's models, and a small real `suite mnist` run. Hostile strings (a `<script>`
board name) are put into a copy of the real fleet report, since the inventory rules refuse them.

The browser is Debian's `chromium`, driven over the DevTools protocol on a pipe (no port, no network):
the page loads, no console error, no exception, no request for anything but the page itself, every
chart image decodes, and the screenshot is not blank. The harness is checked against a page that does
make a console error and a request, so its "no errors" can fail.
"""

from __future__ import annotations

import base64
import copy
import fcntl
import html
import html.parser
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from conftest import missing

from edgepipe.report import ReportFormatError, load_result, render_html, write_html_report

REPO = Path(__file__).resolve().parents[1]
MOBILENET = "mobilenet_v1_0.25_128_quant.tflite"
COMPILED = "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
HOSTILE = '<script>alert("$board$")</script>'  # "$": matplotlib must not read it as mathtext


def edgepipe(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "edgepipe.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=str(REPO))  # fmt: skip


def real_json(*args: str) -> Dict[str, Any]:
    proc = edgepipe(*args, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


# --- real results ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results(coral_data: Path, datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """Every kind of result, made for real here, as files (what `edgepipe report` is given)."""
    root = tmp_path_factory.mktemp("results")
    files: Dict[str, Path] = {}

    def keep(name: str, value: Dict[str, Any]) -> None:
        files[name] = root / ("%s.json" % name)
        files[name].write_text(json.dumps(value, indent=2))

    keep("bench", real_json("bench", str(coral_data / MOBILENET), "--runs", "30"))
    keep("eval", real_json("eval", str(coral_data / MOBILENET), "--dataset",
                           "images:%s" % (datasets_dir / "imagenet-samples"), "--limit", "40"))  # fmt: skip
    # Ten classes: the page also draws the confusion matrix.
    keep("eval_mnist", real_json("eval", str(coral_data / "keras_lstm_mnist_ptq.tflite"), "--dataset", "mnist",
                                 "--data-dir", str(datasets_dir), "--limit", "200"))  # fmt: skip
    files["suite"] = _real_suite(root / "suite")
    files.update(_real_fleet(coral_data, datasets_dir, root / "fleet"))
    return files


def _real_suite(out_dir: Path) -> Path:
    """A real (small) `edgepipe suite mnist`: trains, converts, evaluates and benchmarks every variant."""
    proc = edgepipe("suite", "mnist", "--out", str(out_dir), "--epochs", "1", "--limit", "200", "--runs", "30",
                    timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out_dir / "results.json"


def _real_fleet(coral_data: Path, datasets_dir: Path, root: Path) -> Dict[str, Path]:
    """A real fleet validation run twice (the second against the first as its baseline): one board
    passes, one misses max_p50_ms, one is dead (no Python there)."""
    root.mkdir(parents=True)
    inventory = {
        "models": [str(coral_data / COMPILED)],
        "eval": {"spec": "images:%s" % (datasets_dir / "imagenet-samples"), "limit": 20},
        "runs": 5,
        "warmup": 1,
        "expect": {"backend": "cpu", "min_top1": 0.2},
        "boards": [
            {"name": "line1-cam1", "to": "local:boards/a"},
            {"name": "line1-cam2", "to": "local:boards/b", "expect": {"max_p50_ms": 0.001}},
            {"name": "line2-cam1", "to": "local:boards/c", "python": "/nonexistent/python3"},
        ],
    }
    path = root / "inventory.json"
    path.write_text(json.dumps(inventory))
    for run, baseline in (("run1", ()), ("run2", ("--baseline", str(root / "run1" / "fleet_report.json")))):
        proc = edgepipe("fleet", "validate", str(path), "--out", str(root / run), *baseline)
        report = root / run / "fleet_report.json"
        assert proc.returncode == 1 and report.is_file(), proc.stderr[-2000:]  # 1: not every board passed
    deploy = Path(json.loads(report.read_text())["boards"][0]["results_path"])
    return {"fleet": report, "deploy": deploy}


# --- reading the page back ------------------------------------------------------------------------


class PageText(html.parser.HTMLParser):
    """Text of every table cell (by row), the <img> sources, and every tag seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: List[List[str]] = []
        self.images: List[str] = []
        self.tags: List[str] = []
        self._cell: Optional[List[str]] = None

    def handle_starttag(self, tag: str, attrs: List[Any]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data + " ")


def parse(page: str) -> PageText:
    parser = PageText()
    parser.feed(page)
    return parser


def row_of(page: PageText, first: str) -> List[str]:
    return next(r for r in page.rows if r and r[0].startswith(first))


def chart_texts(src: str) -> List[str]:
    """The text a chart draws: matplotlib draws it as paths and writes each string in a comment beside them."""
    svg = base64.b64decode(src.split(",", 1)[1]).decode()
    assert svg.startswith("<?xml") and "<script" not in svg
    return [html.unescape(t) for t in re.findall(r"<!-- (.*?) -->", svg, flags=re.S)]


# --- the pages ------------------------------------------------------------------------------------


def test_fleet_page_has_every_board_its_verdict_reasons_baseline_and_two_charts(results: Dict[str, Path],
                                                                                 tmp_path: Path) -> None:  # fmt: skip
    proc = edgepipe("report", str(results["fleet"]), "-o", str(tmp_path / "fleet.html"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "fleet report: %s (%d KiB, 2 charts)" % (
        tmp_path / "fleet.html", (tmp_path / "fleet.html").stat().st_size // 1024)
    page = parse((tmp_path / "fleet.html").read_text())
    report = json.loads(results["fleet"].read_text())
    for board in report["boards"]:
        row = row_of(page, board["name"])
        assert row[1] == board["verdict"] and board["target"] in row[0]
        assert all(" ".join(reason.split()) in row[-1] for reason in board["reasons"])
    ok = row_of(page, "line1-cam1")
    model = report["boards"][0]["models"][0]
    summary, base = model["summary"], model["baseline"]
    assert ok[3] == "%.3f" % summary["p50_ms"] and ok[5] == "%.2f %%" % (100 * summary["top1"])
    assert ok[4] == "%.2f× (was %.3f)" % (base["p50_ratio"], base["p50_ms"])  # against the first run
    assert ok[6] == "+0.0 pp (was %.2f %%)" % (100 * base["top1"])  # same images, same model: same top-1
    assert "p50" in row_of(page, "line1-cam2")[-1] and "max 0.001 ms" in row_of(page, "line1-cam2")[-1]
    dead = row_of(page, "line2-cam1")
    assert dead[1] == "unreachable" and "/nonexistent/python3" in dead[-1] and dead[3] == ""
    assert ["verdicts", "pass 1 fail 1 unreachable 1"] in page.rows
    assert len(page.images) == 2 and all(src.startswith("data:image/svg+xml;base64,") for src in page.images)
    latency, top1 = (chart_texts(src) for src in page.images)
    for name in ("line1-cam1", "line1-cam2", "line2-cam1", "baseline", "max_p50_ms", "unreachable: nothing measured"):
        assert name in latency
    assert "%.3f ms  %.2f× baseline" % (summary["p50_ms"], base["p50_ratio"]) in latency
    assert "%.1f %%  +0.0 pp vs baseline" % (100 * summary["top1"]) in top1 and "min_top1" in top1


def test_suite_bench_eval_and_deploy_pages(results: Dict[str, Path], tmp_path: Path) -> None:
    pages = {}
    for kind in ("suite", "bench", "eval", "eval_mnist", "deploy"):
        written = write_html_report(results[kind], tmp_path / ("%s.html" % kind))
        assert written.kind == kind.split("_")[0] and Path(written.output).stat().st_size == written.bytes
        pages[kind] = parse(Path(written.output).read_text())
    suite = json.loads(results["suite"].read_text())
    for variant in suite["results"]:
        row = row_of(pages["suite"], variant["variant"])
        assert row[2] == "%.2f %%" % (100 * variant["top1"]) and row[5] == "%.3f" % variant["latency_ms"]["p50"]
        assert row[1].startswith(variant["backend"])
    assert len(pages["suite"].images) == 2  # latency per variant, accuracy per variant
    latency = chart_texts(pages["suite"].images[0])
    assert all(v["variant"] in latency for v in suite["results"]) and "latency per inference (ms)" in latency
    ticks = latency[: latency.index("latency per inference (ms)")]
    assert ticks and all(float(t) > 0 for t in ticks)  # plain numbers, also on a log axis (no mathtext)
    bench = json.loads(results["bench"].read_text())
    row = row_of(pages["bench"], "invoke only")
    assert row[1:9] == ["%.3f" % bench["latency_ms"][k] for k in ("first", "min", "mean", "std", "p50", "p90",
                                                                   "p99", "max")]  # fmt: skip
    evaluation = json.loads(results["eval"].read_text())
    assert row_of(pages["eval"], "top-1")[1] == "%.2f %% (%d of 40)" % (100 * evaluation["top1"],
                                                                        evaluation["correct_top1"])  # fmt: skip
    assert len(pages["eval"].images) == 1 and len(pages["eval_mnist"].images) == 2  # + the confusion matrix
    assert len(pages["deploy"].images) == 2  # the board's bench and eval


def test_report_strings_are_escaped_everywhere(results: Dict[str, Path], tmp_path: Path) -> None:
    report = json.loads(results["fleet"].read_text())
    hostile = copy.deepcopy(report)
    board = hostile["boards"][0]
    board["name"] = HOSTILE
    board["target"] = 'local:/x"><img src=x onerror=alert(1)>'
    board["reasons"] = ["<b>bold</b> & $\\frac{1}{0}$ [red]rich[/]"]  # HTML, mathtext and rich markup, as text
    board["models"][0]["model"] = "</td></tr></table><iframe src=//evil>"
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps(hostile))
    written = write_html_report(source, tmp_path / "hostile.html")
    raw = Path(written.output).read_text()
    lowered = raw.lower()
    assert "<script" not in lowered and "<iframe" not in lowered and "<img src=x" not in lowered
    assert "<b>bold" not in raw and "&lt;script&gt;alert(&quot;$board$&quot;)&lt;/script&gt;" in raw
    assert HOSTILE in chart_texts(parse(raw).images[0])  # drawn as written
    page = parse(raw)
    row = row_of(page, HOSTILE)  # the text survives, exactly
    assert 'local:/x"><img src=x onerror=alert(1)>' in row[0]
    assert row[-1] == "<b>bold</b> & $\\frac{1}{0}$ [red]rich[/]"
    assert set(page.tags) <= {"html", "head", "meta", "link", "title", "style", "body", "main", "h1", "h2", "p",
                              "section", "table", "thead", "tbody", "tr", "th", "td", "div", "span", "b", "figure",
                              "img", "details", "summary"}  # fmt: skip


def test_the_same_result_gives_the_same_page(results: Dict[str, Path]) -> None:
    result = load_result(results["fleet"])
    assert render_html(result, "x") == render_html(copy.deepcopy(result), "x")


# --- bad input: one line, the README's exit code, nothing written --------------------------------


def _bad_inputs(fleet: Dict[str, Any]) -> Dict[str, Any]:
    broken = copy.deepcopy(fleet)
    broken["boards"][0]["models"] = [{"summary": {"p50_ms": "fast"}, "baseline": [1]}]
    return {
        "missing": (None, 3, "does not exist"),
        "not-json": ("{\"kind\": \"fleet\",", 2, "is not JSON"),
        "a-list": ("[1, 2]", 2, "holds a JSON list"),
        "unknown-kind": (json.dumps({"schema_version": 1, "kind": "compile"}), 2, "has kind 'compile'"),
        "no-schema": (json.dumps({"kind": "fleet", "boards": []}), 2, "no schema_version"),
        "newer-schema": (json.dumps(dict(fleet, schema_version=99)), 2, "schema version 99"),
        "error-record": (json.dumps({"schema_version": 1, "kind": "error", "error": {"message": "no model"}}), 2,
                         "records a failure, not a result: no model"),
        "boards-not-objects": (json.dumps(dict(fleet, boards=[1])), 2, "'boards' must be a list of objects"),
        "wrong-types-inside": (json.dumps(broken), 0, ""),  # read tolerantly: shown as "—", no crash
        "not-utf8": (b"\xff\xfe{}", 2, "not UTF-8"),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["missing", "not-json", "a-list", "unknown-kind", "no-schema", "newer-schema",
                                  "error-record", "boards-not-objects", "wrong-types-inside", "not-utf8"])
def test_bad_report_one_line_and_exit_code(case: str, results: Dict[str, Path], tmp_path: Path) -> None:
    content, code, words = _bad_inputs(json.loads(results["fleet"].read_text()))[case]
    source = tmp_path / "in.json"
    if isinstance(content, bytes):
        source.write_bytes(content)
    elif content is not None:
        source.write_text(content)
    out = tmp_path / "out" / "page.html"
    proc = edgepipe("report", str(source), "-o", str(out))
    assert proc.returncode == code, proc.stderr
    if code == 0:
        assert "—" in out.read_text()
        return
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: report %s" % source) and words in line and "Traceback" not in proc.stderr
    assert not out.exists() and not out.parent.exists()


def test_unwritable_output_keeps_what_was_there(results: Dict[str, Path], tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    proc = edgepipe("report", str(results["bench"]), "-o", str(a_file / "page.html"))
    assert proc.returncode == 5 and proc.stderr.startswith("error: cannot create %s" % a_file), proc.stderr
    folder = tmp_path / "folder"
    folder.mkdir()
    proc = edgepipe("report", str(results["bench"]), "-o", str(folder))  # a folder where the file should go
    assert proc.returncode == 5 and "Is a directory" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert list(folder.iterdir()) == []  # no temporary file left behind
    old = tmp_path / "old.html"
    old.write_text("the previous page")
    proc = edgepipe("report", str(tmp_path / "gone.json"), "-o", str(old))
    assert proc.returncode == 3 and old.read_text() == "the previous page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "not-a-folder", "old.html"]


def test_without_matplotlib_one_line_with_the_install_command(results: Dict[str, Path], tmp_path: Path) -> None:
    code = ("import sys; sys.modules['matplotlib'] = None\n"  # what a machine without the extra sees
            "from edgepipe.cli import main; sys.argv = ['edgepipe', 'report', %r, '-o', %r]; main()"
            % (str(results["bench"]), str(tmp_path / "page.html")))  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert proc.returncode == 30, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "needs matplotlib" in line and "pip install 'edgepipe[report]'" in line
    assert not (tmp_path / "page.html").exists()


def test_format_error_is_a_typed_error() -> None:
    assert ReportFormatError("x").exit_code == 2


# --- in a real browser ----------------------------------------------------------------------------


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing("chromium not installed (Debian: apt-get install chromium; .ci/run installs it)")
    return found


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4, NUL-separated JSON)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Above 10 so that dup2 onto 3 and 4 in the child cannot overwrite one of them; pass_fds=(3, 4)
        # keeps those two open (the child closes other descriptors after preexec_fn has run).
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]
        for fd in (to_child_r, from_child_w):
            os.close(fd)

        def wire() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
                "--remote-debugging-pipe", "--user-data-dir=%s" % profile, "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=wire)  # fmt: skip
        for fd in high:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: List[Dict[str, Any]] = []

    def send(self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None,
             timeout: float = 60) -> Dict[str, Any]:  # fmt: skip
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self._next_id:
                    assert "error" not in reply, (method, reply["error"])
                    return reply["result"]
                self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events += self._read(deadline)

    def _read(self, deadline: float) -> List[Dict[str, Any]]:
        left = deadline - time.monotonic()
        assert left > 0, "chromium did not answer in time"
        ready, _, _ = select.select([self._from_child], [], [], left)
        if not ready:
            return []
        chunk = os.read(self._from_child, 1 << 20)
        assert chunk, "chromium closed the pipe (exit code %s)" % self.proc.poll()
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    found = Browser(chromium_binary(), tmp_path_factory.mktemp("chromium-profile"))
    yield found
    found.close()


def open_page(browser: Browser, page: Path, width: int = 1280) -> Dict[str, Any]:
    """Load `page` in a fresh tab; what the console, the network and the DOM say, and a full screenshot."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.events.clear()
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send("%s.enable" % domain, session=session)
    browser.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                        "mobile": False}, session=session)  # fmt: skip
    browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    browser.wait_for("Page.loadEventFired")
    facts = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": """({
        images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
        tables: document.querySelectorAll('table').length,
        scripts: document.scripts.length,
        title: document.title,
        overflowX: document.documentElement.scrollWidth - window.innerWidth,
        height: document.documentElement.scrollHeight,
    })"""}, session=session)["result"]["value"]  # fmt: skip
    time.sleep(0.3)  # anything logged late still arrives before the screenshot call returns
    clip = {"x": 0, "y": 0, "width": width, "height": min(facts["height"], 6000), "scale": 1}
    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip},
                        session=session)  # fmt: skip
    events = [e for e in browser.events if e.get("sessionId") == session]
    browser.send("Target.closeTarget", {"targetId": target})
    errors = [e["params"] for e in events if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]  # fmt: skip
    requests = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
                and not e["params"]["request"]["url"].startswith("data:")]  # the charts: inside the page
    return {"facts": facts, "errors": errors, "requests": requests, "png": base64.b64decode(shot["data"])}


def is_not_blank(png: bytes, path: Path) -> Dict[str, float]:
    """Share of pixels unlike the most common colour, and how many colours: a blank page has ~0 and 1."""
    from PIL import Image

    path.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    background = max(colours)[0] if colours else 0
    total = image.width * image.height
    return {"ink": 1 - background / total, "colours": len(colours)}


def has_colour(png: bytes, rgb: tuple, tolerance: int = 40, min_pixels: int = 200) -> bool:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    near = sum(count for count, c in image.getcolors(maxcolors=1 << 24)
               if all(abs(a - b) <= tolerance for a, b in zip(c, rgb)))  # fmt: skip
    return near >= min_pixels


def test_harness_sees_console_errors_and_requests(browser: Browser, tmp_path: Path) -> None:
    """The checks below can fail: a page that logs an error and asks for a file is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><img src="missing.png">'
                    '<script>console.error("deliberate"); undefinedFunction();</script></body></html>')  # fmt: skip
    seen = open_page(browser, page)
    assert any(e.get("args", [{}])[0].get("value") == "deliberate" for e in seen["errors"])
    assert any("undefinedFunction" in json.dumps(e) for e in seen["errors"])
    assert any(url.endswith("missing.png") for url in seen["requests"])


@pytest.mark.parametrize("kind", ["fleet", "suite", "bench", "eval_mnist", "deploy"])
def test_page_renders_in_headless_chromium(kind: str, results: Dict[str, Path], browser: Browser,
                                           tmp_path: Path) -> None:  # fmt: skip
    written = write_html_report(results[kind], tmp_path / ("%s.html" % kind))
    seen = open_page(browser, Path(written.output))
    assert seen["errors"] == []
    assert seen["requests"] == [Path(written.output).resolve().as_uri()]  # the page itself, nothing else
    facts = seen["facts"]
    assert facts["scripts"] == 0 and facts["tables"] >= 2 and facts["title"].startswith("edgepipe: ")
    assert len(facts["images"]) == written.charts >= 1
    assert all(complete and w > 300 and h > 100 for complete, w, h in facts["images"]), facts["images"]
    assert facts["overflowX"] <= 0  # readable at 1280 px: nothing sticks out to the right
    ink = is_not_blank(seen["png"], tmp_path / ("%s.png" % kind))
    assert ink["ink"] > 0.03 and ink["colours"] > 50, ink
    if kind == "fleet":  # the charts drew the verdict colours: pass green, fail red
        assert has_colour(seen["png"], (46, 125, 50)) and has_colour(seen["png"], (198, 40, 40))


def test_long_names_paths_and_reasons_fit_1280_px_in_chromium(results: Dict[str, Path], browser: Browser,
                                                               tmp_path: Path) -> None:  # fmt: skip
    """Deep board folders, long board and model names, an unbroken reason: cells wrap, the page fits.
    (A CI runner's temp paths alone once made the board table 11 px too wide.)"""
    report = json.loads(results["fleet"].read_text())
    deep = "/tmp/pytest-of-runner/pytest-0/popen-gw1/" + "a-deep-board-folder/" * 6
    for i, board in enumerate(report["boards"]):
        board["target"] = "local:%s%s" % (deep, "board-%02d-" % i * 8)
    report["inventory"] = deep + "inventory-" * 20 + ".json"
    report["boards"][0]["name"] = "plant-a.line-12.camera-station-07.north-wall." * 3 + "end"
    second = dict(report["boards"][0]["models"][0], model="a_long_model_file_name_" * 5 + ".tflite")
    report["boards"][0]["models"].append(second)  # two models: the page gets a Model column
    report["boards"][1]["reasons"] = ["x" * 400, "word " * 120]
    source = tmp_path / "long.json"
    source.write_text(json.dumps(report))
    written = write_html_report(source, tmp_path / "long.html")
    seen = open_page(browser, Path(written.output))
    assert seen["errors"] == [] and seen["facts"]["overflowX"] <= 0, seen["facts"]["overflowX"]
    page = parse(Path(written.output).read_text())
    assert report["boards"][0]["target"] in row_of(page, report["boards"][0]["name"])[0]  # whole in the table
    labels = chart_texts(page.images[0])
    cut = next(t for t in labels if t.startswith("plant-a.line-12.") and "…" in t)
    assert cut.endswith(".tflite") and len(cut) <= 48  # both ends kept on the chart


def test_hostile_page_runs_nothing_in_chromium(results: Dict[str, Path], browser: Browser, tmp_path: Path) -> None:
    hostile = json.loads(results["fleet"].read_text())
    hostile["boards"][0]["name"] = HOSTILE
    hostile["boards"][1]["reasons"] = ['<img src="http://127.0.0.1:9/x.png" onerror="console.error(1)">']
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps(hostile))
    written = write_html_report(source, tmp_path / "hostile.html")
    seen = open_page(browser, Path(written.output))
    assert seen["errors"] == [] and seen["requests"] == [Path(written.output).resolve().as_uri()]
    assert seen["facts"]["scripts"] == 0 and len(seen["facts"]["images"]) == 2  # only the two charts
