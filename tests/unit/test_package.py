"""The package's public face: a light import, a pinned __all__, layers that point down."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import labkit

ROOT = Path(labkit.__file__).parent
HEAVY = ("plotly", "pandas", "streamlit", "grpc", "nats", "aio_pika", "uvicorn", "IPython")


def test_import_labkit_loads_no_heavy_library_and_connects_nowhere():
    code = (
        "import sys, json, socket\n"
        "opened = []\n"
        "real = socket.socket.connect\n"
        "socket.socket.connect = lambda self, *a: opened.append(a) or real(self, *a)\n"
        "import labkit\n"
        f"print(json.dumps([[m for m in {HEAVY!r} if m in sys.modules], opened]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [[], []]


def test_all_is_sorted_and_pinned():
    assert labkit.__all__ == sorted(labkit.__all__)
    assert labkit.__all__ == [
        "BadParameter",
        "BadPayload",
        "Clock",
        "ErrorStatus",
        "FailFirst",
        "FaultPlan",
        "Hang",
        "LabError",
        "Latency",
        "LoopClock",
        "ManualClock",
        "Outage",
        "Param",
        "Record",
        "Reset",
        "Result",
        "Timeline",
        "UnknownName",
        "VirtualTimeLoop",
        "__version__",
        "params_of",
        "patterns",
        "run",
        "run_on_fresh_loop",
    ]
    for name in labkit.__all__:
        assert hasattr(labkit, name)


def _labkit_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


LAYERS = ["core", "viz", "transport", "shop", "patterns", "scenarios", "exercises"]
# what each layer may import from labkit (besides itself)
ALLOWED = {
    "core": set(),
    "viz": {"core"},
    "transport": {"core"},
    "shop": {"core"},
    "patterns": {"core", "transport"},
    "scenarios": {"core", "transport", "shop", "patterns"},
    "exercises": {"core", "transport", "shop", "patterns", "scenarios"},
}


def test_layers_import_downwards_only():
    problems = []
    for layer in LAYERS:
        for path in (ROOT / layer).glob("*.py"):
            for name in _labkit_imports(path):
                if not name.startswith("labkit."):
                    continue
                used = name.split(".")[1]
                if used != layer and used not in ALLOWED[layer]:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []


def test_nothing_in_labkit_imports_streamlit_and_only_faces_import_ipython():
    problems = []
    for path in ROOT.rglob("*.py"):
        for name in _labkit_imports(path):
            top = name.split(".")[0]
            if top == "streamlit" or (
                top in ("ipywidgets", "IPython") and "faces" not in path.parts
            ):
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert problems == []
