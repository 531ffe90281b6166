"""mTLS over real TLS on loopback: who gets in, who is refused, and what the server sees."""

import asyncio

import pytest

from labkit.core.errors import UnknownName
from labkit.core.timeline import Timeline
from labkit.patterns.mtls import CASES, client_context, make_pki, run_handshakes

pytestmark = pytest.mark.live


def _run(**kw):
    async def go():
        from labkit.core.clock import LoopClock

        tl = Timeline(LoopClock())
        results, seen = await run_handshakes(timeline=tl, **kw)
        return {r.case: r for r in results}, seen, tl

    return asyncio.run(go())


def test_only_a_certificate_from_the_service_ca_gets_in():
    results, seen, tl = _run()
    assert set(results) == set(CASES)
    good = results["good"]
    assert good.accepted and good.status == 200
    assert "CN=gateway" in good.client_seen_by_server  # the app knows who called
    for case in ("no_cert", "wrong_ca"):
        assert not results[case].accepted, case
        assert results[case].refused_by == "server"
        assert results[case].status is None  # no HTTP response at all: the TLS layer said no
    # the client only saw the door close; the server knows why
    assert results["no_cert"].server_reason == "peer did not return a certificate"
    assert results["wrong_ca"].server_reason.startswith("certificate verify failed")
    assert results["untrusted_server"].refused_by == "client"
    assert "certificate" in results["untrusted_server"].error
    assert seen == 1  # refused handshakes never reached the app
    assert len(tl.of_kind("tls.refused")) == 3 and len(tl.of_kind("tls.accepted")) == 1


def test_with_tls_1_2_the_refusal_comes_during_the_handshake():
    results, seen, _ = _run(cases=["no_cert", "wrong_ca", "good"], tls="1.2")
    assert results["no_cert"].stage == results["wrong_ca"].stage == "handshake"
    assert results["good"].accepted and seen == 1


def test_bad_choices_are_named():
    pki = make_pki()
    with pytest.raises(UnknownName, match="'stolen'"):
        client_context(pki, "stolen", "service_ca")
    with pytest.raises(UnknownName, match="TLS version"):
        client_context(pki, "good", "service_ca", tls="1.0")
    with pytest.raises(UnknownName, match="mTLS case"):
        asyncio.run(run_handshakes(["nope"]))


def test_scenario_and_cli_report_the_handshakes(capsys):
    import json

    from labkit.cli import main

    assert main(["run", "mtls", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    assert (s["accepted"], s["refused"], s["requests_reaching_the_app"]) == (1, 3, 1)
    assert s["refused_by"] == {
        "good": ["nobody"],
        "no_cert": ["server"],
        "wrong_ca": ["server"],
        "untrusted_server": ["client"],
    }
    assert "CN=gateway" in s["client_seen_by_server"]


def test_scenario_repeats_a_refusal_without_any_request_reaching_the_app():
    import labkit

    s = labkit.run("mtls", case="no_cert", rounds=5).summary
    assert s["attempts"] == s["refused"] == 5 and s["requests_reaching_the_app"] == 0


def test_handshake_chart_labels_who_refused():
    import labkit
    from labkit import viz

    fig = viz.handshakes(labkit.run("mtls", tls="1.2"))
    labels = dict(zip(fig.data[0].y, fig.data[0].text, strict=True))
    assert labels["good"] == "200 OK; server saw gateway"
    assert labels["no_cert"] == (
        "refused by the server (handshake): peer did not return a certificate"
    )
    assert labels["untrusted_server"].startswith("refused by the client")
