"""The tracing and metrics page: the waterfall, the hidden lock and its fix, the histogram."""

from __future__ import annotations

from page_reading import figures, metrics, ms

PAGE = "app_pages/11_observability.py"


def test_the_trace_shows_the_lock_and_more_connections_remove_it(open_page) -> None:
    at = open_page(PAGE)
    m = metrics(at)
    assert ms(m["Page load"]) == 170  # 5 + 5 + 4 lookups of 40 ms in a row
    assert any("`pricing-db: wait for a connection`" in t.value for t in at.markdown)
    waterfall, histogram = figures(at)
    labels = waterfall["layout"]["yaxis"]["ticktext"]
    assert len(waterfall["data"][0]["y"]) == len(labels)  # one row per span
    assert labels[0] == "client: load order page"
    assert sum("GET product" in label for label in labels) == 4
    assert any("orders.viewed process" in label for label in labels)  # the message hop
    assert [bar["name"] for bar in histogram["data"]] == [
        "exact (every duration)",
        "from histogram buckets",
    ]
    assert any("only connection" in i.value for i in at.info)

    pool = [w for w in (*at.slider, *at.number_input) if w.label == "Connections in the pool"]
    pool[0].set_value(4).run()
    assert not at.exception
    m = metrics(at)
    assert ms(m["Page load"]) == 50 and ms(m["Waiting for a connection"]) == 0
    assert any("`pricing-db: SELECT price`" in t.value for t in at.markdown)
    assert any("pricing_connections=4" in c.value for c in at.code)


def test_the_trace_slider_picks_another_page_load(open_page) -> None:
    at = open_page(PAGE)
    first = figures(at)[0]["layout"]["title"]["text"]
    at.slider(key="tracing.trace").set_value(3).run()
    assert not at.exception
    assert figures(at)[0]["layout"]["title"]["text"].startswith("Trace 3 of 5")
    assert first.startswith("Trace 1 of 5")
