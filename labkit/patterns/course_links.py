"""Links into the course: ``notebooks/NN_x.ipynb#heading`` and ``playground/app_pages/NN_x.py``.

Questions, the chooser table and the notebooks point at the sections that show an idea
running. :func:`unresolved` checks such links against the real files: the notebook must exist
and have a markdown heading with that anchor; a page must be a file in ``app_pages``.

Anchors are compared loosely (:func:`anchor`): case and punctuation do not matter, so
JupyterLab's own form (``#The-quiz``, which scrolls in the lab) and a lower-case slug
(``#the-quiz``) both resolve to the heading "The quiz".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from labkit.core.paths import project_root


def anchor(heading: str) -> str:
    """A heading's link anchor, case and punctuation ignored: ``The pattern`` -> ``the-pattern``."""
    return "-".join(re.findall(r"[a-z0-9]+", heading.casefold()))


def notebook_headings(path: Path) -> set[str]:
    """The anchors of every markdown heading in a notebook."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = set()
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    out.add(anchor(line.lstrip("#")))
    return out


def unresolved(links: Iterable[str], root: Path | None = None) -> list[str]:
    """Which of ``links`` (``notebooks/x.ipynb#heading`` or a page file) do not resolve."""
    root = root or project_root()
    broken = []
    for link in links:
        file, _, heading = link.partition("#")
        path = root / file
        if not path.is_file() or not file.startswith(("notebooks/", "playground/app_pages/")):
            broken.append(f"{link} (no such notebook or page)")
        elif file.endswith(".ipynb"):
            if not heading:
                broken.append(f"{link} (say which heading: notebook#heading)")
            elif anchor(heading) not in notebook_headings(path):
                broken.append(f"{link} (no such heading in {path.name})")
    return broken
