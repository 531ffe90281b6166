"""Reading a page the way a learner does, for AppTest tests: metrics, charts, buttons, code.

AppTest has no plotly accessor: a chart is read as its figure JSON.
"""

from __future__ import annotations

import json
from typing import Any

from streamlit.testing.v1 import AppTest


def metrics(at: AppTest) -> dict[str, str]:
    """Every st.metric on the page: label -> shown value."""
    return {m.label: m.value for m in at.metric}


def figures(at: AppTest) -> list[dict[str, Any]]:
    """Every plotly chart's figure JSON, in page order."""
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def title_of(figure: dict[str, Any]) -> str:
    return figure["layout"].get("title", {}).get("text", "")


def chart_titled(at: AppTest, start: str, index: int = 0) -> dict[str, Any]:
    """The ``index``-th chart whose title starts with ``start``."""
    found = [f for f in figures(at) if title_of(f).startswith(start)]
    assert found, f"no chart titled {start!r} in {[title_of(f) for f in figures(at)]}"
    return found[index]


def widget(elements: Any, label: str) -> Any:
    """The element labelled ``label`` among ``elements`` (e.g. ``at.slider``)."""
    found = [w for w in elements if w.label == label]
    assert found, f"no widget {label!r}"
    return found[0]


def button(at: AppTest, label: str) -> Any:
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}"
    return found[0]


def click(at: AppTest, label: str) -> AppTest:
    """Click the button labelled ``label`` and rerun; the page must not raise."""
    button(at, label).click().run()
    assert not at.exception, at.exception
    return at


def code_blocks(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def ms(text: str) -> float:
    """A metric shown as ``1,234 ms`` (or ``50.0 ms``) as a number."""
    return float(text.removesuffix(" ms").replace(",", ""))
