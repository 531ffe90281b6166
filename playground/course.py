"""The playground's table of contents: every page, in course order, with what it shows.

``app.py`` builds the navigation from ``PAGES``; the home page lists ``PAGES`` with ``BLURBS``.
A new pattern plugs in with one line in ``PAGES`` and one in ``BLURBS``.
"""

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

#: page file -> one line on what the learner does there (shown on the home page)
BLURBS = {
    "app_pages/01_request_response.py": "a careful and a naive client against a failing service",
    "app_pages/02_api_gateway.py": "one page, many calls: sequential or concurrent",
    "app_pages/03_service_mesh.py": "Istio YAML: the unreachable route, canary, ejection",
    "app_pages/04_circuit_breaker.py": "take the service down and watch the breaker open and probe",
    "app_pages/09_resilience.py": "deadlines, retry storms and jitter, fallbacks, bulkheads",
    "app_pages/05_message_queue.py": "poison messages, crashed consumers, the DLQ and its replay",
    "app_pages/06_pubsub.py": "fan-out, an offline subscriber, the outbox, request-reply",
    "app_pages/07_event_sourcing.py": "commands, the event log, time travel, two writers",
    "app_pages/08_cqrs.py": "the read side beside the write side: lag, crash, rebuild",
    "app_pages/10_service_discovery.py": "a registry with health checks, services[0] and its fix",
    "app_pages/11_observability.py": "find the hidden slow dependency in a trace",
    "app_pages/12_versioning_and_security.py": "API versions, forged JWTs, mutual TLS handshakes",
    "app_pages/13_choosing_and_interview.py": "graded interview answers and the pattern chooser",
}
