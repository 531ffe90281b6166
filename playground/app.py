"""The Microservice Patterns Lab playground: ``uv run streamlit run playground/app.py``
(or ``labkit play``). Each page turns controls into parameters, calls ``labkit.run`` and
shows the result; all behaviour lives in ``labkit``.

A new pattern plugs in with one line in ``PAGES`` (in ``course.py``): its section, its page
file in ``app_pages/`` (named after the pattern's slug), a title and an icon.
"""

from typing import Any

import streamlit as st

from course import PAGES


def navigation() -> Any:
    sections: dict[str, list[st.Page]] = {}
    for i, (section, path, title, icon) in enumerate(PAGES):
        sections.setdefault(section, []).append(
            st.Page(path, title=title, icon=icon, default=i == 0)
        )
    return st.navigation(sections)


st.set_page_config(
    page_title="Microservice Patterns Lab",
    page_icon=":material/lan:",
    layout="wide",
    menu_items={"About": "Microservice Patterns Lab: run, break and understand how services talk."},
)
navigation().run()
