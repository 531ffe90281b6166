"""Where the lab's content lives: data, notebooks and the playground.

In a clone of the repository they sit beside the ``labkit`` package. ``LABKIT_HOME`` points
the lab at another copy (an instructor's edited question bank, say).
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The folder that holds ``data/``, ``notebooks/`` and ``playground/``."""
    env = os.environ.get("LABKIT_HOME")
    return Path(env) if env else Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    return project_root() / "data"


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def playground_dir() -> Path:
    return project_root() / "playground"
