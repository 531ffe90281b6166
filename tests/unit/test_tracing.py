"""Tracing and metrics: the span tree of one request, errors on the failing span, histogram
percentiles against exact ones, and /metrics read back with prometheus_client's parser."""

import random

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import labkit
from labkit.core.clock import LoopClock, ManualClock, run_on_fresh_loop
from labkit.core.faults import ErrorStatus, FaultPlan
from labkit.core.stats import percentile
from labkit.core.timeline import Timeline
from labkit.patterns.metrics import (
    BUCKETS,
    RequestMetrics,
    bucket_width_at,
    metrics_app,
    quantile_from_buckets,
)
from labkit.patterns.tracing import Tracing, span_tree
from labkit.shop.catalog import load_catalog
from labkit.shop.services import shop_apps
from labkit.transport.hosting import host, serve_on_loopback


def _by_name(rows):
    return {r["name"]: r for r in rows}


def _children(rows, parent):
    return sorted(r["name"] for r in rows if r["parent_id"] == parent["span_id"])


@pytest.mark.parametrize("backend", ["inprocess", pytest.param("live", marks=pytest.mark.live)])
def test_one_gateway_request_is_one_trace_whose_tree_matches_the_calls(backend):
    result = labkit.run("tracing", backend=backend, requests=1, items=2)
    rows = result.extras["spans"]
    assert result.summary["traces"] == 1 and len({r["trace_id"] for r in rows}) == 1
    root = [r for r in rows if r["parent_id"] is None]
    assert [r["name"] for r in root] == ["load order page"]
    assert _children(rows, root[0]) == ["GET gateway"]
    (gateway_server,) = [r for r in rows if r["service"] == "gateway" and r["kind"] == "SERVER"]
    assert gateway_server["parent_id"] == _by_name(rows)["GET gateway"]["span_id"]
    # the gateway's own calls: order, user and one per product, and the message it publishes
    calls = [r for r in rows if r["parent_id"] == gateway_server["span_id"]]
    assert sorted(r["name"] for r in calls) == [
        "GET order",
        "GET product",
        "GET product",
        "GET user",
        "orders.viewed publish",
    ]
    for call in calls:
        if call["kind"] == "CLIENT":  # each call's server span is its only child
            (server,) = [r for r in rows if r["parent_id"] == call["span_id"]]
            assert server["kind"] == "SERVER" and server["service"] == call["name"].split()[1]
    producer = _by_name(rows)["orders.viewed publish"]
    (consumer,) = [r for r in rows if r["parent_id"] == producer["span_id"]]
    assert consumer["kind"] == "CONSUMER" and consumer["service"] == "analytics"
    products = [r for r in rows if r["service"] == "product" and r["kind"] == "SERVER"]
    for server in products:
        assert _children(rows, server) == [
            "pricing-db: SELECT price",
            "pricing-db: wait for a connection",
        ]


def test_the_hidden_lock_shows_in_the_trace_and_the_pool_removes_it():
    bug = labkit.run("tracing", requests=3, items=4).summary
    fix = labkit.run("tracing", requests=3, items=4, pricing_connections=4).summary
    assert bug["where_the_time_goes"] == "pricing-db: wait for a connection"
    # one connection: the four lookups queue (0 + 40 + 80 + 120 ms of waiting per page)
    assert bug["waiting_for_pricing_ms"] == pytest.approx(3 * 240)
    assert bug["page_ms"]["p50"] == pytest.approx(5 + 5 + 4 * 40)
    assert fix["waiting_for_pricing_ms"] == 0
    assert fix["page_ms"]["p50"] == pytest.approx(5 + 5 + 40)
    assert fix["where_the_time_goes"] == "pricing-db: SELECT price"


def test_spans_are_records_on_the_timeline_and_runs_repeat():
    a = labkit.run("tracing", requests=2, seed=3)
    b = labkit.run("tracing", requests=2, seed=3)
    assert a.to_json() == b.to_json()
    ended = a.timeline.of_kind("span.ended")
    assert len(ended) == a.summary["spans"]


def test_an_error_is_recorded_on_the_span_that_failed():
    async def main():
        tl = Timeline(LoopClock())
        tracing = Tracing(tl.clock, tl)
        plan = FaultPlan(1)
        plan.add("product", ErrorStatus(503))
        async with host(
            shop_apps(load_catalog()), timeline=tl, faults=plan, tracing=tracing
        ) as shop:
            users = shop.client("user", source="gateway")
            products = shop.client("product", source="gateway")
            with tracing.span("gateway", "handle"):
                await users.get("/users/u-1")
                await products.get("/products/p-1")
        return span_tree(tracing.spans())

    rows = run_on_fresh_loop(main, virtual=True)
    status = {r["name"]: r["status"] for r in rows}
    assert status["GET product"] == "ERROR" and status["GET user"] == "UNSET"
    assert status["handle"] == "UNSET"  # the caller did not fail: only the call did
    assert _by_name(rows)["GET product"]["error"] == "HTTP 503"

    async def raising():
        tracing = Tracing(LoopClock())
        with pytest.raises(ZeroDivisionError), tracing.span("svc", "divide"):
            1 / 0  # noqa: B018
        return span_tree(tracing.spans())

    (row,) = run_on_fresh_loop(raising, virtual=True)
    assert row["status"] == "ERROR" and "ZeroDivisionError" in row["error"]


@pytest.mark.parametrize("seed", range(5))
def test_histogram_percentiles_are_within_one_bucket_of_the_exact_ones(seed):
    rng = random.Random(seed)
    durations = [rng.lognormvariate(-3.5, 0.8) for _ in range(2000)]  # ~30 ms, long tail
    metrics = RequestMetrics(ManualClock())
    for d in durations:
        metrics.histogram.labels("svc", "/x", "GET", "200").observe(d)
    buckets = metrics.buckets_of(service="svc")
    assert buckets[-1] == (float("inf"), 2000)
    for q in (50, 95, 99):
        exact = percentile(durations, q)
        estimate = quantile_from_buckets(q / 100, buckets)
        assert abs(estimate - exact) <= bucket_width_at(exact, BUCKETS)


def test_quantile_from_buckets_interpolates_like_prometheus():
    buckets = [(0.1, 10.0), (0.2, 30.0), (float("inf"), 40.0)]
    assert quantile_from_buckets(0.5, buckets) == pytest.approx(0.15)  # rank 20: mid bucket 2
    assert quantile_from_buckets(0.99, buckets) == 0.2  # past the last bound: that bound
    assert quantile_from_buckets(0.5, []) != quantile_from_buckets(0.5, [])  # NaN when empty


@pytest.mark.live
def test_metrics_endpoint_parses_with_prometheus_clients_own_parser():
    async def main():
        tl = Timeline(LoopClock())
        metrics = RequestMetrics(tl.clock)
        apps = {"user": metrics.middleware("user", shop_apps(load_catalog())["user"])}
        async with host(apps, backend="live", timeline=tl) as shop:
            users = shop.client("user", source="client")
            for uid in ("u-1", "u-2", "u-1", "nobody"):
                await users.get(f"/users/{uid}")
            server, task, port = await serve_on_loopback(metrics_app(metrics))
            try:
                async with httpx.AsyncClient() as client:
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            finally:
                server.should_exit = True
                await task
        return text

    text = run_on_fresh_loop(main, virtual=False)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    counts = {
        (s.labels["handler"], s.labels["status"]): s.value
        for s in families["http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    # one series per route template, not per user id; the bad id is its own status
    assert counts == {("/users/{id}", "200"): 3, ("/users/{id}", "400"): 1}


def test_bad_parameters_are_refused_by_name():
    with pytest.raises(labkit.BadParameter, match="pricing_connections"):
        labkit.run("tracing", pricing_connections=0)
    with pytest.raises(labkit.BadParameter, match="requests"):
        labkit.run("tracing", requests="many")
