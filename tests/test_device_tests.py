"""The hardware-in-the-loop suite (device_tests/) on this machine, which has no Edge TPU: run in a
subprocess as a CI job runs it. The CPU lane passes, the TPU lane skips with what was looked for,
JUnit carries each figure as a property, a summary JSON carries the environment fingerprint;
--require-device turns the skips red; a threshold 10 % tighter than a measured figure fails by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

import pytest
from conftest import need_module

REPO = Path(__file__).resolve().parents[1]
DEVICE_TESTS = REPO / "device_tests"
sys.path.insert(0, str(DEVICE_TESTS))

import hil  # noqa: E402

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

MODELS = ["mnist", "resnet8", "mobilenet"]
TWIN = "mobilenet_v1_0.25_128_quant.tflite"


def run_suite(tmp_path: Path, mnist: Path, *args: str) -> subprocess.CompletedProcess:
    # No libedgetpu, whatever this machine has: the TPU lane must skip (or fail with --require-device).
    env = dict(os.environ, EDGEPIPE_LIBEDGETPU=str(tmp_path / "no-libedgetpu.so.1"))
    env.pop("PYTEST_ADDOPTS", None)
    argv = [sys.executable, "-m", "pytest", "device_tests", "-ra", "-p", "no:cacheprovider",
            "--mnist-model", str(mnist), "--summary", str(tmp_path / "summary.json"), *args]  # fmt: skip
    return subprocess.run(argv, cwd=str(REPO), capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, mnist_int8: Path, coral_data: Path) -> Dict[str, object]:
    """One run of the whole suite (all lanes; remote has no target here), with JUnit and a proposal."""
    tmp = tmp_path_factory.mktemp("hil")
    before = hashlib.sha256(hil.THRESHOLDS.read_bytes()).hexdigest()
    proc = run_suite(tmp, mnist_int8, "--junitxml", str(tmp / "junit.xml"),
                     "--update-thresholds", str(tmp / "proposed.toml"))  # fmt: skip
    return {"proc": proc, "tmp": tmp, "thresholds_unchanged": before == hashlib.sha256(
        hil.THRESHOLDS.read_bytes()).hexdigest()}  # fmt: skip


def test_main_run_does_not_collect_device_tests() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert config["testpaths"] == ["tests"]
    assert not (REPO / "tests" / "device_tests").exists()


def test_cpu_lane_passes_and_the_tpu_lane_skips_saying_what_was_looked_for(full_run: Dict[str, object]) -> None:
    proc = full_run["proc"]
    assert isinstance(proc, subprocess.CompletedProcess)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "15 passed" in text and "30 skipped" in text and "failed" not in text, text[-2000:]
    assert "no Edge TPU found" in text
    assert "no-libedgetpu.so.1, which does not exist" in text  # what was looked for, and why it failed
    assert "1a6e:089a or 18d1:9302" in text and "/dev/apex_*" in text
    assert "remote lane: no target" in text


def test_junit_has_every_measured_figure_as_a_property(full_run: Dict[str, object]) -> None:
    root = ET.parse(str(Path(str(full_run["tmp"])) / "junit.xml")).getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert len(cases) == 45  # 5 checks x 3 models x 3 lanes
    figures = {"test_top1": ["top1", "min_top1"], "test_agreement_with_cpu_twin": ["agreement", "min_agreement"],
               "test_latency": ["p50_ms", "max_p50_ms", "p99_ms", "max_p99_ms"],
               "test_first_inference": ["first_ms", "max_first_ms"],
               "test_no_cpu_ops": ["cpu_ops", "max_cpu_ops"]}  # fmt: skip
    for check, names in figures.items():
        for model in MODELS:
            case = cases["%s[cpu-%s]" % (check, model)]
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            for name in names:
                assert props.get(name) not in (None, "None"), (check, model, name, props)
                float(props[name])  # a number
            assert props["backend"] == "cpu"
            assert case.find("skipped") is None and case.find("failure") is None
            assert cases["%s[edgetpu-%s]" % (check, model)].find("skipped") is not None


def test_summary_json_has_the_figures_and_the_environment_fingerprint(full_run: Dict[str, object]) -> None:
    summary = json.loads((Path(str(full_run["tmp"])) / "summary.json").read_text())
    env = summary["environment"]
    assert env["edgepipe"] and env["host"] and env["python"]
    assert env["libedgetpu"]["path"] is None and "no-libedgetpu.so.1" in env["libedgetpu"]["problem"]
    assert env["edgetpu_devices"] == []
    by_model = {m["model"]: m for m in summary["measurements"]}
    assert sorted(by_model) == sorted(MODELS)
    for m in by_model.values():
        assert m["lane"] == "cpu" and m["kind"] == "cpu" and m["retries"] == []
        assert m["environment"]["runtime"]["name"] in ("ai_edge_litert", "tflite_runtime", "tensorflow")
        assert m["environment"]["device"]["type"] == "cpu"
        assert set(m["figures"]) == set(hil.FIGURES)
        assert m["figures"]["agreement"] == 1.0  # the twin on the CPU, batched vs one image at a time
        assert m["figures"]["cpu_ops"] == 0
    # the published figure for these 250 ImageNet samples is 45.2 % (their MANIFEST); ResNet-8 ~75 %
    assert 0.40 <= by_model["mobilenet"]["figures"]["top1"] <= 0.55
    assert 0.70 <= by_model["resnet8"]["figures"]["top1"] <= 0.80
    # the CPU lane ran the compiled MobileNet with --backend cpu: the runner picked its twin, and said so
    details = by_model["mobilenet"]["details"]
    assert details["model"].endswith("_edgetpu.tflite") and details["ran"].endswith("/" + TWIN)
    assert TWIN in details["backend_reason"]


def test_update_thresholds_writes_a_proposal_and_never_the_thresholds_file(full_run: Dict[str, object]) -> None:
    assert full_run["thresholds_unchanged"]
    proposal = (Path(str(full_run["tmp"])) / "proposed.toml").read_text()
    assert proposal.startswith("# PROPOSED thresholds")
    data = tomllib.loads(proposal)  # valid TOML, read back by the real parser
    current = hil.load_thresholds(hil.THRESHOLDS)
    assert data["version"] == current["version"] and data["models"] == current["models"]
    summary = json.loads((Path(str(full_run["tmp"])) / "summary.json").read_text())
    for m in summary["measurements"]:
        section = data["thresholds"]["cpu"][m["model"]]
        assert section["min_top1"] <= m["figures"]["top1"] and section["max_p50_ms"] >= m["figures"]["p50_ms"]
        assert section["max_cpu_ops"] == 0
    assert data["thresholds"]["usb"] == current["thresholds"]["usb"]  # not measured: kept as it was


def test_require_device_turns_the_no_tpu_skips_into_failures(tmp_path: Path, mnist_int8: Path) -> None:
    proc = run_suite(tmp_path, mnist_int8, "-m", "edgetpu", "--require-device")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-2000:]
    # reported as errors in the fixture that measures (JUnit <error>): red either way
    assert "15 errors" in text and "--require-device: no Edge TPU found" in text


def test_a_threshold_10_percent_tighter_than_measured_fails_and_names_the_figure(
    tmp_path: Path, mnist_int8: Path, full_run: Dict[str, object]
) -> None:
    summary = json.loads((Path(str(full_run["tmp"])) / "summary.json").read_text())
    measured = {m["model"]: m["figures"] for m in summary["measurements"]}["mobilenet"]["top1"]
    data = hil.load_thresholds(hil.THRESHOLDS)
    data["thresholds"]["cpu"]["mobilenet"]["min_top1"] = round(measured * 1.1, 4)
    tight = tmp_path / "tight.toml"
    tight.write_text(hil.dump_toml(data))
    proc = run_suite(tmp_path, mnist_int8, "-m", "cpu", "-k", "mobilenet", "--thresholds", str(tight))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-2000:]
    assert "1 failed, 4 passed" in text, text[-2000:]
    assert "FAILED device_tests/test_lanes.py::test_top1[cpu-mobilenet]" in text
    expected = "cpu/mobilenet top1 = %s, below the minimum %s allowed ([thresholds.cpu.mobilenet] min_top1 in %s)" % (
        hil._fmt(measured), hil._fmt(round(measured * 1.1, 4)), tight)  # fmt: skip
    assert expected in text, text[-2000:]


def test_a_bad_thresholds_file_is_a_usage_error_naming_it(tmp_path: Path, mnist_int8: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("version = 99\n[suite]\n[models]\n")
    proc = run_suite(tmp_path, mnist_int8, "--thresholds", str(bad))
    assert proc.returncode == 4, proc.stdout[-1000:] + proc.stderr[-1000:]  # pytest's usage-error code
    assert "has version 99; this suite reads version 1" in proc.stderr and str(bad) in proc.stderr


# --- the flaky-USB retry, and the example files ---------------------------------------------------


def _measurement() -> hil.Measurement:
    return hil.Measurement(lane="edgetpu", device="usb:0", kind="usb", model="m", figures={"top1": 1.0})


def test_a_flaky_usb_device_gets_one_reenumeration_and_retry_recorded() -> None:
    calls: List[str] = []

    def flaky() -> hil.Measurement:
        calls.append("run")
        if len(calls) == 1:
            raise hil.RunnerError("`edgepipe.runtime bench` on local:/x failed (exit 23): USB transfer error", 23)
        return _measurement()

    def reenumerate() -> str:
        calls.append("reenumerate")
        return "devices: usb:0"

    result = hil.with_one_retry(flaky, reenumerate, (hil.RunnerError,))
    assert calls == ["run", "reenumerate", "run"]
    assert result.retries == [{"error": "`edgepipe.runtime bench` on local:/x failed (exit 23): USB transfer error",
                               "reenumerated": "devices: usb:0"}]  # fmt: skip


def test_a_second_usb_failure_stands() -> None:
    def broken() -> hil.Measurement:
        raise hil.RunnerError("failed (exit 23): device gone", 23)

    with pytest.raises(hil.SuiteError) as caught:
        hil.with_one_retry(broken, lambda: "devices: none", (hil.RunnerError,))
    assert "device gone (again after one re-enumeration, which found devices: none; first attempt:" in str(caught.value)


def test_standin_usb_device_gets_its_own_lane_and_one_reenumeration(tmp_path: Path, mnist_int8: Path) -> None:
    """libedgetpu stand-in (tests/fakes) listing one USB device: the edgetpu lane is parametrised as usb:0;
    the stand-in cannot run a model, so each measurement fails, is retried once after a fresh probe, and
    the failure says so. (A real Edge TPU run is device_tests' job on a runner with one.)"""
    from _edgetpu_fakes import build_fake_libedgetpu

    library = build_fake_libedgetpu(tmp_path, "one_usb")
    env = dict(os.environ, EDGEPIPE_LIBEDGETPU=str(library))
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "device_tests", "-ra", "-p", "no:cacheprovider", "-m", "edgetpu",
         "-k", "top1 and mobilenet", "--mnist-model", str(mnist_int8), "--summary", str(tmp_path / "s.json")],
        cwd=str(REPO), capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-2000:]
    assert "test_top1[usb:0-mobilenet]" in text and "1 error" in text, text[-2000:]
    assert "During handling" not in text
    assert "again after one re-enumeration, which found devices: usb:0; first attempt:" in text
    failures = json.loads((tmp_path / "s.json").read_text())["failures"]
    assert "re-enumeration" in failures["usb:0/mobilenet"]


def _need(module: str) -> object:
    """Import `module` (PyYAML, labgrid: the labgrid extra, which .ci/run installs); a skip here, a failure in CI."""
    return need_module(module, "pip install 'edgepipe[labgrid]'")


def _yaml() -> object:
    return _need("yaml")


def _steps_text(steps: List[Dict[str, object]]) -> List[str]:
    return [str(step.get("run", "")) for step in steps]


def test_example_github_actions_workflow_is_valid_and_runs_doctor_first() -> None:
    yaml = _yaml()
    workflow = yaml.safe_load((DEVICE_TESTS / "ci" / "github-actions.yml").read_text())  # type: ignore
    jobs = workflow["jobs"]
    assert True in workflow or "on" in workflow  # PyYAML reads the bare key `on` as True
    hil_job = jobs["edge-tpu"]
    assert hil_job["runs-on"][0] == "self-hosted" and "coral-usb" in hil_job["runs-on"]
    runs = _steps_text(hil_job["steps"])
    doctor = next(i for i, r in enumerate(runs) if "edgepipe doctor" in r)
    suite = next(i for i, r in enumerate(runs) if "pytest device_tests" in r)
    assert doctor < suite and "--require-device" in runs[suite] and "--junitxml" in runs[suite]
    assert any("upload-artifact" in str(step.get("uses", "")) for step in hil_job["steps"])
    cpu_runs = _steps_text(jobs["cpu-lane"]["steps"])
    assert jobs["cpu-lane"]["runs-on"] == "ubuntu-latest" and any("-m cpu" in r for r in cpu_runs)


def test_example_gitlab_ci_is_valid_and_runs_doctor_first() -> None:
    yaml = _yaml()
    config = yaml.safe_load((DEVICE_TESTS / "ci" / "gitlab-ci.yml").read_text())  # type: ignore
    job = config["edge-tpu"]
    assert "coral-usb" in job["tags"]
    script = [str(line) for line in job["script"]]
    assert "edgepipe doctor" in script[0]
    assert any("pytest device_tests" in s and "--require-device" in s for s in script)
    assert job["artifacts"]["reports"]["junit"] and job["artifacts"]["when"] == "always"


def test_labgrid_examples_are_valid_labgrid_configuration(tmp_path: Path) -> None:
    yaml = _yaml()
    folder = DEVICE_TESTS / "labgrid"
    for name in ("exporter-devboard.yaml", "exporter-usb-host.yaml"):
        groups = yaml.safe_load((folder / name).read_text())  # type: ignore
        assert any("NetworkService" in group for group in groups.values()), name
    _need("labgrid")
    from labgrid import Environment

    for name in ("env-devboard.yaml", "env-usb-host.yaml"):
        env = Environment(config_file=str(folder / name))  # labgrid's own parser and checks
        targets = env.config.get_targets()
        assert "RemotePlace" in str(targets["main"]), name
