"""Hardware-in-the-loop tests (see README.md here): three lanes, one set of checks, thresholds in TOML.

    .venv/bin/python -m pytest device_tests [--require-device] [--target SPEC | --lg-env ENV.yaml]
                                            [--junitxml FILE] [--summary FILE] [--update-thresholds [FILE]]

Lanes are markers: `cpu` (always runs, on the CPU twins), `edgetpu` (one parameter per discovered device:
usb:0, pci:0, ...), `remote` (a board reached through a deploy target or a labgrid place). Discovery uses
edgepipe's own code (`edgepipe.runtime.edgetpu`); with no Edge TPU the edgetpu lane is skipped with what
was looked for and found, or fails with --require-device. The main test run (`python -m pytest`,
testpaths = tests) never collects this folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # hil.py, also when run from another folder

import hil  # noqa: E402

from edgepipe.runtime import edgetpu, os_devices  # noqa: E402

LANE_MARKS = {"cpu": pytest.mark.cpu, "edgetpu": pytest.mark.edgetpu, "remote": pytest.mark.remote}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgepipe device tests")
    group.addoption("--require-device", action="store_true",
                    help="fail instead of skip when no Edge TPU is found (a HIL runner that lost its accelerator)")
    group.addoption("--thresholds", default=str(hil.THRESHOLDS), help="thresholds TOML (default: %(default)s)")
    group.addoption("--update-thresholds", nargs="?", const=str(hil.HERE / "thresholds.proposed.toml"),
                    default=None, metavar="FILE",
                    help="write thresholds proposed from this run to FILE (default thresholds.proposed.toml "
                         "here); the thresholds file itself is never changed")
    group.addoption("--summary", default="runs/device_tests/summary.json",
                    help="JSON summary with figures and environment fingerprint (default: %(default)s)")
    group.addoption("--target", default=None,
                    help="remote lane: ssh://user@host[:port], local:DIR or labgrid://PLACE")
    group.addoption("--target-python", default=None, help="remote lane: Python on the target (default python3)")
    group.addoption("--identity", default=None, help="remote lane: SSH private key")
    group.addoption("--known-hosts", default=None, help="remote lane: SSH known_hosts file")
    group.addoption("--remote-kind", default=None,
                    help="remote lane: thresholds section to use (default: where it ran: cpu, usb or pci)")
    group.addoption("--mnist-model", default=os.environ.get("EDGEPIPE_MNIST_MODEL"),
                    help="the MNIST suite's int8 .tflite (default: built once with `edgepipe suite mnist`)")
    group.addoption("--compiled-dir", action="append", default=[],
                    help="folder with *_edgetpu.tflite for models that have none beside them (repeatable)")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    for lane, text in (("cpu", "the CPU lane: CPU twins, CPU thresholds; always runs"),
                       ("edgetpu", "the Edge TPU lane: every discovered device"),
                       ("remote", "the remote lane: a board reached through --target or a labgrid place")):
        config.addinivalue_line("markers", "%s: %s" % (lane, text))  # fmt: skip
    try:
        config.stash[_STATE] = State(config)
    except hil.SuiteError as exc:
        raise pytest.UsageError(str(exc)) from None


# --- discovery (what edgepipe sees) ---------------------------------------------------------------


def discover() -> Dict[str, Any]:
    """The library, its runtime version and devices, and the OS's view."""
    location = edgetpu.locate_library()
    found: Dict[str, Any] = {"library": location.path, "problem": location.problem, "devices": [], "probe": None}
    if location.path is not None:
        probe = edgetpu.probe_library(location.path, fresh=True)
        found["probe"] = probe
        if probe.ok:
            found["devices"] = probe.devices
        else:
            found["problem"] = probe.error
    found["usb"] = os_devices.usb_devices()
    found["pci"] = os_devices.pci_devices()
    return found


def describe(found: Dict[str, Any]) -> str:
    names = " / ".join(edgetpu.library_names())
    if found["library"] is None:
        if os.environ.get(edgetpu.LIBEDGETPU_ENV):
            looked = "$%s" % edgetpu.LIBEDGETPU_ENV
        else:
            looked = "%s on the library path ($%s unset)" % (names, edgetpu.LIBEDGETPU_ENV)
        library = "libedgetpu: not found (looked for %s: %s)" % (looked, found["problem"])
    elif found["probe"] is not None and not found["probe"].ok:
        library = "libedgetpu at %s does not work: %s" % (found["library"], found["problem"])
    else:
        probe = found["probe"]
        library = "libedgetpu at %s (runtime %s) lists %d device(s)%s" % (
            found["library"],
            probe.runtime_version,
            len(found["devices"]),
            ": " + ", ".join("%s %s" % (d.spec, d.path) for d in found["devices"]) if found["devices"] else "",
        )
    usb = ", ".join("%s:%s at %s" % (u.vendor_id, u.product_id, u.sysfs_path) for u in found["usb"]) or "none"
    pci = ", ".join(p.path for p in found["pci"]) or "none"
    return "%s; USB Accelerators (1a6e:089a or 18d1:9302 in /sys/bus/usb/devices): %s; PCIe (/dev/apex_*): %s" % (
        library,
        usb,
        pci,
    )


# --- session state --------------------------------------------------------------------------------


class State:
    """Everything measured in this session, the skip reasons, and the remote target (opened once)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._found: Optional[Dict[str, Any]] = None
        self.thresholds_path = Path(config.getoption("thresholds"))
        self.thresholds = hil.load_thresholds(self.thresholds_path)
        self.measurements: Dict[Tuple[str, str], hil.Measurement] = {}
        self.errors: Dict[Tuple[str, str], str] = {}
        self.skips: Dict[str, str] = {}
        self.specs: Dict[str, hil.ModelSpec] = {}
        self.remote: Optional[Any] = None
        self.remote_error: Optional[str] = None

    @property
    def found(self) -> Dict[str, Any]:
        if self._found is None:
            self._found = discover()
        return self._found

    def lanes(self) -> List[Tuple[hil.Lane, str]]:
        lanes = [(hil.Lane("cpu", "cpu", None), "cpu")]
        devices = self.found["devices"]
        for d in devices:
            lanes.append((hil.Lane("edgetpu", d.type, d.spec), d.spec))
        if not devices:
            lanes.append((hil.Lane("edgetpu", None, None), "edgetpu"))
        lanes.append((hil.Lane("remote", self.config.getoption("remote_kind"), self.remote_spec()), "remote"))
        return lanes

    def remote_spec(self) -> Optional[str]:
        if self.config.getoption("target"):
            return str(self.config.getoption("target"))
        env = _labgrid_env(self.config)
        if env is not None:
            places = _labgrid_places(env)
            coordinator = env.config.get_option("coordinator_address", os.environ.get("LG_COORDINATOR", ""))
            if places:
                return "labgrid://%s%s" % ("%s/" % coordinator if coordinator else "", places[0])
        return None


_STATE = pytest.StashKey[State]()


def _labgrid_env(config: pytest.Config) -> Optional[Any]:
    """labgrid's Environment when its pytest plugin is active and --lg-env (or $LG_ENV) was given."""
    try:
        from labgrid.pytestplugin.hooks import LABGRID_ENV_KEY
    except ImportError:
        return None
    return config.stash.get(LABGRID_ENV_KEY, None)


def _labgrid_places(env: Any) -> List[str]:
    """The RemotePlace names of the environment's targets (`main` first)."""
    names: List[str] = []
    targets = env.config.get_targets()
    for role in sorted(targets, key=lambda r: r != "main"):
        resources = targets[role].get("resources") or []
        items = resources.items() if isinstance(resources, dict) else [kv for r in resources for kv in r.items()]
        for cls, args in items:
            if cls == "RemotePlace" and isinstance(args, dict) and args.get("name"):
                names.append(str(args["name"]))
    return names


def state(config: pytest.Config) -> State:
    return config.stash[_STATE]


def pytest_report_header(config: pytest.Config) -> List[str]:
    s = state(config)
    return ["edge tpu: " + describe(s.found), "thresholds: %s" % s.thresholds_path,
            "remote lane: %s" % (s.remote_spec() or "none (give --target SPEC or --lg-env ENV.yaml)")]  # fmt: skip


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    s = state(metafunc.config)
    if "lane" in metafunc.fixturenames:
        params = [pytest.param(lane, id=ident, marks=LANE_MARKS[lane.name]) for lane, ident in s.lanes()]
        metafunc.parametrize("lane", params, scope="session")
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", list(s.thresholds["models"]), scope="session")


# --- fixtures -------------------------------------------------------------------------------------


def _missing(message: str) -> None:
    """Missing shared data or tools: a skip locally, an error in CI (where CI provides them)."""
    if hil.IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def model_spec(config: pytest.Config, name: str) -> hil.ModelSpec:
    s = state(config)
    if name in s.specs:
        return s.specs[name]
    entry = s.thresholds["models"][name]
    shared = hil.SHARED
    extra = [Path(p) for p in config.getoption("compiled_dir")]
    if name == "mnist":
        given = config.getoption("mnist_model")
        try:
            twin = Path(given) if given else hil.build_mnist_model()
        except hil.SuiteError as exc:
            _missing(str(exc))
    else:
        twin = shared / str(entry["model"])
    if not twin.is_file():
        _missing("model missing: %s (expected ../shared beside the repository)" % twin)
    dataset = str(entry["dataset"])
    if dataset.startswith("images:"):
        dataset = "images:%s" % (shared / dataset[len("images:"):])
    compiled = Path(shared / entry["compiled"]) if entry.get("compiled") else hil.compiled_beside(twin, extra)
    spec = hil.ModelSpec(name=name, twin=twin, compiled=compiled, dataset=dataset, data_dir=shared / "datasets",
                         images=int(entry["images"]))  # fmt: skip
    if not (shared / "datasets").is_dir():
        _missing("datasets missing: %s" % (shared / "datasets"))
    s.specs[name] = spec
    return spec


def _no_device(config: pytest.Config, message: str) -> None:
    if config.getoption("require_device"):
        pytest.fail("--require-device: " + message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def remote_target(request: pytest.FixtureRequest) -> Any:
    """The remote lane's target, opened (a labgrid place acquired) for the session and closed after."""
    s = state(request.config)
    spec = s.remote_spec()
    if spec is None:
        pytest.skip("remote lane: no target (give --target ssh://user@host[:port] | local:DIR | labgrid://PLACE, "
                    "or --lg-env ENV.yaml)")  # fmt: skip
    from edgepipe.deploy import parse_target
    from edgepipe.errors import EdgepipeError

    opt = request.config.getoption
    problem = None
    try:
        target = parse_target(spec, python=opt("target_python"),
                              identity=Path(opt("identity")) if opt("identity") else None,
                              known_hosts=Path(opt("known_hosts")) if opt("known_hosts") else None)  # fmt: skip
        target.__enter__()  # a labgrid place: acquired here (a place held by someone else fails at once)
    except EdgepipeError as exc:
        problem = "remote lane: %s" % exc.one_line()
    if problem:
        pytest.fail(problem, pytrace=False)
    try:
        yield target
    finally:
        target.__exit__(None, None, None)  # released, whatever the tests did


@pytest.fixture(scope="session")
def measured_remote(request: pytest.FixtureRequest, remote_target: Any) -> Dict[str, hil.Measurement]:
    from edgepipe.errors import EdgepipeError

    s = state(request.config)
    specs = [model_spec(request.config, name) for name in s.thresholds["models"]]
    suite = s.thresholds["suite"]
    problem = None
    try:
        results = hil.measure_remote(specs, remote_target, int(suite["runs"]), int(suite["warmup"]),
                                     kind=request.config.getoption("remote_kind"))  # fmt: skip
    except EdgepipeError as exc:
        problem = "remote lane on %s: %s" % (remote_target.describe(), exc.one_line())
    except hil.SuiteError as exc:
        problem = "remote lane: %s" % " ".join(str(exc).split())
    if problem:
        s.errors[("remote", "*")] = problem
        pytest.fail(problem, pytrace=False)
    for m in results:
        s.measurements[("remote", m.model)] = m
    return {m.model: m for m in results}


@pytest.fixture
def measurement(request: pytest.FixtureRequest, lane: hil.Lane, model_name: str) -> hil.Measurement:
    """The figures of one model on one lane, measured once per session and shared by the checks."""
    config = request.config
    s = state(config)
    if lane.name == "edgetpu" and lane.device is None:
        _no_device(config, "no Edge TPU found: " + describe(s.found))
    key = (lane.device or lane.name, model_name)
    if key in s.errors:
        pytest.fail(s.errors[key], pytrace=False)
    if key in s.measurements:
        return s.measurements[key]
    if lane.name == "remote":
        return request.getfixturevalue("measured_remote")[model_name]
    spec = model_spec(config, model_name)
    if lane.name == "edgetpu" and spec.compiled is None:
        _no_device(config, "%s has no compiled model (%s_edgetpu.tflite): compile it with `edgepipe compile %s -o DIR` "
                   "and pass --compiled-dir DIR" % (model_name, spec.twin.stem, spec.twin))  # fmt: skip
    suite = s.thresholds["suite"]
    workdir = request.getfixturevalue("workdir")

    def run() -> hil.Measurement:
        return hil.measure_local(spec, lane, int(suite["runs"]), int(suite["warmup"]), workdir)

    try:
        # Only a USB Accelerator re-enumerates (and is known to drop off a hub now and then).
        m = hil.with_one_retry(run, hil.reenumerate_usb, (hil.RunnerError,)) if lane.kind == "usb" else run()
    except hil.SuiteError as exc:
        s.errors[key] = "%s/%s: %s" % (key[0], model_name, " ".join(str(exc).split()))
    if key in s.errors:  # failed outside the except block: the report shows the one line, no chained traceback
        pytest.fail(s.errors[key], pytrace=False)
    s.measurements[key] = m
    return m


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data shards for the local lanes (written once per model)."""
    return tmp_path_factory.mktemp("hil")


@pytest.fixture
def thresholds(request: pytest.FixtureRequest) -> Dict[str, Any]:
    return state(request.config).thresholds


@pytest.fixture
def check(request: pytest.FixtureRequest, record_property: Any) -> Any:
    """check(measurement, *figures): record each figure (and its threshold) as a JUnit property, then assert."""
    s = state(request.config)

    def run(m: hil.Measurement, *figures: str) -> None:
        problems = []
        for figure in figures:
            record_property(figure, m.figures.get(figure))
            limit = hil.threshold_for(s.thresholds, m.kind, m.model, figure)
            record_property(hil.FIGURES[figure][0], limit)
            problem = hil.check_figure(s.thresholds, m, figure, str(s.thresholds_path))
            if problem:
                problems.append(problem)
        record_property("backend", m.details.get("backend"))
        record_property("device", m.details.get("device") or m.device)
        for retry in m.retries:
            record_property("usb_retry", "%s; re-enumerated: %s" % (retry["error"], retry["reenumerated"]))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)

    return run


# --- the session's end: summary JSON and the threshold proposal ------------------------------------


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _STATE not in config.stash or getattr(config.option, "collectonly", False):
        return
    s = state(config)
    measurements = list(s.measurements.values())
    found = s.found
    probe = found.get("probe")
    payload = {
        "kind": "device_tests",
        "exit_status": int(exitstatus),
        "thresholds": str(s.thresholds_path),
        "environment": {
            **hil.host_fingerprint(),
            "libedgetpu": {"path": found["library"], "runtime_version": getattr(probe, "runtime_version", None),
                           "problem": found["problem"]},
            "edgetpu_devices": [d.spec for d in found["devices"]],
            "discovery": describe(found),
        },  # fmt: skip
        "measurements": [m.to_json() for m in measurements],
        "failures": dict(("%s/%s" % k, v) for k, v in s.errors.items()),
        "retries": [{"device": m.device, "model": m.model, **r} for m in measurements for r in m.retries],
    }
    hil.write_summary(Path(config.getoption("summary")), payload)
    proposal = config.getoption("update_thresholds")
    if proposal and measurements:
        data = hil.propose_thresholds(s.thresholds, measurements)
        header = ("# PROPOSED thresholds from the run of %s on %s (edgepipe %s).\n"
                  "# Review, then replace %s with this file to adopt them; nothing was changed.\n"
                  % (hil.host_fingerprint()["host"], ", ".join(sorted({m.device for m in measurements})),
                     hil.host_fingerprint()["edgepipe"], s.thresholds_path.name))  # fmt: skip
        Path(proposal).write_text(hil.dump_toml(data, header), encoding="utf-8")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _STATE not in config.stash:
        return
    s = state(config)
    terminalreporter.write_line("device_tests summary: %s" % config.getoption("summary"))
    if config.getoption("update_thresholds"):
        if s.measurements:
            terminalreporter.write_line("proposed thresholds (review before adopting): %s"
                                        % config.getoption("update_thresholds"))  # fmt: skip
        else:
            terminalreporter.write_line("no thresholds proposed: nothing was measured")
