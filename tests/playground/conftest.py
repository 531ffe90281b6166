"""Fixtures for the playground: AppTest through the real ``app.py``, with clean caches."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

PLAYGROUND = Path(__file__).resolve().parents[2] / "playground"
APP = PLAYGROUND / "app.py"
TIMEOUT = 20  # cold imports (pandas, plotly) take seconds on a busy 2-core machine

# Pages import their helper as ``import controls``: streamlit run puts the app's folder on
# sys.path, AppTest does not.
if str(PLAYGROUND) not in sys.path:
    sys.path.insert(0, str(PLAYGROUND))


@pytest.fixture(autouse=True)
def _clean_caches() -> None:
    """cache_resource and cache_data are shared by every AppTest run in this process."""
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def open_page() -> Callable[[str], AppTest]:
    """Run ``app.py`` (navigation and page config included), then switch to a page file."""

    def _open(page: str = "app_pages/home.py") -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        assert not at.exception, at.exception
        if page != "app_pages/home.py":
            at.switch_page(page).run()
            assert not at.exception, at.exception
        return at

    return _open
