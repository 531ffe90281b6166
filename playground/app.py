"""The Microservice Patterns Lab playground: ``uv run streamlit run playground/app.py``
(or ``labkit play``). Each page turns controls into parameters, calls ``labkit.run`` and
shows the result; all behaviour lives in ``labkit``.

A new pattern plugs in with one line in ``PAGES``: its section, its page file in
``app_pages/`` (named after the pattern's slug), a title and an icon.
"""

from typing import Any

import streamlit as st

#: (section, page file, title, icon); the first page is the default.
PAGES = [
    ("Start", "app_pages/home.py", "Home", ":material/home:"),
    (
        "Synchronous",
        "app_pages/01_request_response.py",
        "Request-response",
        ":material/swap_horiz:",
    ),
    ("Synchronous", "app_pages/02_api_gateway.py", "API gateway / BFF", ":material/hub:"),
    ("Synchronous", "app_pages/03_service_mesh.py", "Service mesh", ":material/lan:"),
    ("Resilience", "app_pages/04_circuit_breaker.py", "Circuit breaker", ":material/bolt:"),
    (
        "Resilience",
        "app_pages/09_resilience.py",
        "Retries, deadlines, bulkheads",
        ":material/shield:",
    ),
    ("Asynchronous", "app_pages/05_message_queue.py", "Message queue", ":material/inbox:"),
    ("Asynchronous", "app_pages/06_pubsub.py", "Pub/sub and outbox", ":material/campaign:"),
    ("Event-driven data", "app_pages/07_event_sourcing.py", "Event sourcing", ":material/history:"),
    ("Event-driven data", "app_pages/08_cqrs.py", "CQRS", ":material/call_split:"),
    ("Practices", "app_pages/10_service_discovery.py", "Service discovery", ":material/dns:"),
    ("Practices", "app_pages/11_observability.py", "Tracing and metrics", ":material/timeline:"),
    (
        "Practices",
        "app_pages/12_versioning_and_security.py",
        "Versions and security",
        ":material/lock:",
    ),
    (
        "Interview prep",
        "app_pages/13_choosing_and_interview.py",
        "Choosing and interview",
        ":material/school:",
    ),
]


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
