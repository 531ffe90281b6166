"""The labkit command: JSON that repeats, one-line errors with exit status 2, no tracebacks."""

import json
import subprocess
import sys

import pytest

from labkit.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_prints_one_document_with_the_agreed_keys(capsys):
    code, out, _ = run_cli(capsys, "run", "gateway", "--param", "mode=sequential", "--json")
    doc = json.loads(out)
    assert code == 0
    assert {"pattern", "params", "seed", "summary", "timeline"} <= set(doc)
    assert doc["pattern"] == "gateway" and doc["params"]["mode"] == "sequential"
    assert doc["summary"]["latency_ms"]["min"] >= 250


def test_acceptance_sequential_vs_concurrent_from_the_cli(capsys):
    _, seq, _ = run_cli(capsys, "run", "gateway", "--param", "mode=sequential", "--json")
    _, conc, _ = run_cli(capsys, "run", "gateway", "--param", "mode=concurrent", "--json")
    assert json.loads(seq)["summary"]["latency_ms"]["min"] >= 5 * 50
    assert json.loads(conc)["summary"]["latency_ms"]["max"] < 2 * 50


def test_same_seed_same_json(capsys):
    args = (
        "run",
        "gateway",
        "-p",
        "product_jitter_ms=20",
        "-p",
        "product_error_rate=0.3",
        "--seed",
        "5",
        "--json",
    )
    assert run_cli(capsys, *args)[1] == run_cli(capsys, *args)[1]


def test_human_summary_is_short(capsys):
    code, out, _ = run_cli(capsys, "run", "request_response")
    assert code == 0
    assert out.splitlines()[0] == "request_response on inprocess (seed 0)"
    assert "succeeded: 20" in out and len(out.splitlines()) < 15


def test_presets_and_params_combine(capsys):
    _, out, _ = run_cli(
        capsys, "run", "gateway", "--preset", "degrade", "-p", "requests=2", "--json"
    )
    doc = json.loads(out)
    assert doc["params"]["partial"] == "degrade" and doc["params"]["requests"] == 2
    assert doc["summary"]["degraded"] == 2


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "nope"], "'nope'"),
        (["run", "gateway", "--param", "colour=red"], "'colour'"),
        (["run", "gateway", "--param", "product_latency_ms=-5"], "product_latency_ms='-5'"),
        (["run", "gateway", "--param", "product_error_rate=1.5"], "product_error_rate='1.5'"),
        (["run", "gateway", "--param", "oops"], "'oops'"),
        (["run", "gateway", "--backend", "kafka"], "'kafka'"),
        (["run", "gateway", "--preset", "nope"], "'nope'"),
        (["run", "gateway", "--seed", "x"], "'x'"),
        (["frobnicate"], "'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_naming_the_value_with_status_2(capsys, argv, named):
    with pytest.raises(SystemExit) if argv[0] == "frobnicate" or "--seed" in argv else _no_raise():
        code = main(argv)
        assert code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0]
    assert "Traceback" not in err and out == ""


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_real_process_exits_2_without_a_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "run", "gateway", "--param", "product_error_rate=2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "labkit: product_error_rate='2': must lie between 0 and 1 (it is a probability)"
    )


def test_doctor_reports_versions_brokers_and_paths(capsys):
    code, out, _ = run_cli(capsys, "doctor", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["packages"]["httpx"].startswith("0.28")
    assert set(report["brokers"]) == {"NATS", "RabbitMQ"}
    assert report["paths"]["data"].endswith("data")


def test_list_shows_every_pattern_with_its_parameters(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "gateway:" in out and "request_response:" in out
    assert "product_latency_ms=50.0" in out
