"""Versions and security: the versioned product API, the compatibility checker, the JWT
attack gallery (pick a token, see why it fails) and mTLS handshakes on loopback."""

import json

import pandas as pd
import streamlit as st

from labkit import LabError, viz
from labkit.patterns.compatibility import DIRECTIONS, compare, report, schema_of
from labkit.patterns.jwt_attacks import peek
from labkit.patterns.versioning import V3_DRAFT_EXAMPLE, represent

import controls

MTLS_RUN_KEY = "mtls.run_id"
SAMPLE = {"id": "p-1", "name": "Laptop", "price": 999.99, "stock": 3}

st.title("Versions and security")
st.markdown(
    "Two versions of one product API side by side, a checker for which changes break old "
    "clients, a gallery of forged and misdirected JWTs thrown at three verifiers, and mutual "
    "TLS with real certificates on loopback."
)
versions_tab, compat_tab, jwt_tab, mtls_tab = st.tabs(
    ["Versions", "Compatibility checker", "JWT attack gallery", "mTLS handshakes"]
)

# --- versions ---------------------------------------------------------------------------------

with versions_tab:
    controls.init_state("versioning")
    st.caption(
        "Clients ask by path (`/api/v2/...`) or by `Accept: application/vnd.labkit.v2+json`; "
        "no version asked means v1. Add a request of your own below."
    )
    left, right = st.columns(2)
    with left:
        controls.widget("versioning", "accept")
    with right:
        controls.widget("versioning", "path_version")
    result = controls.run("versioning", controls.values("versioning"))
    if result is not None:
        s = result.summary
        a, b, c = st.columns(3)
        a.metric("Served", f"{s['served']} of {s['requests']}")
        b.metric("Refused with a 4xx", sum(400 <= r["status"] < 500 for r in s["results"]))
        c.metric("Server errors (5xx)", s["server_errors"])
        st.dataframe(
            pd.DataFrame(s["results"])[
                ["client", "path", "accept", "status", "version", "reason", "detail"]
            ],
            hide_index=True,
        )
        st.code(controls.cli_command("versioning", result.params), language="bash")

# --- compatibility ----------------------------------------------------------------------------

with compat_tab:
    st.caption(
        "Paste two example payloads (old, then new). The checker infers a schema from each and "
        "says which changes break old clients: for a response, what they read; for a request, "
        "what they send."
    )
    direction = st.radio("Direction", DIRECTIONS, horizontal=True, key="compat.direction")
    old_col, new_col = st.columns(2)
    old_text = old_col.text_area(
        "Old (v2)", json.dumps(represent(SAMPLE, "v2"), indent=2), height=220, key="compat.old"
    )
    new_text = new_col.text_area(
        "New (a v3 draft)", json.dumps(V3_DRAFT_EXAMPLE, indent=2), height=220, key="compat.new"
    )
    try:
        old, new = json.loads(old_text), json.loads(new_text)
    except json.JSONDecodeError as exc:
        st.error(f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    else:
        try:
            changes = report(compare(schema_of(old), schema_of(new), direction=direction))
        except LabError as exc:
            controls.show_error(exc)
        else:
            breaking = sum(c["breaking"] for c in changes)
            verdict = "compatible" if not breaking else f"{breaking} breaking change(s)"
            st.metric("Verdict", verdict)
            st.plotly_chart(viz.compatibility(changes), width="stretch")

# --- JWT gallery ------------------------------------------------------------------------------

with jwt_tab:
    controls.init_state("jwt")
    controls.preset_picker("jwt", "Choose a preset, or set the verifier yourself")
    cols = st.columns(5)
    for col, name in zip(
        cols, ["verifier", "allowlist", "require_exp", "require_aud", "leeway_s"], strict=True
    ):
        with col:
            controls.widget("jwt", name)
    params = {**controls.values("jwt"), "compare": True}
    result = controls.run("jwt", params)
    if result is not None:
        s = result.summary
        a, b, c = st.columns(3)
        a.metric("Attacks refused for the stated reason", f"{s['refused_as_expected']}")
        b.metric("Attacks let in", len(s["let_in"]))
        c.metric("Good token", "passed" if s["good_token_passed"] else "refused")
        st.plotly_chart(viz.gallery_matrix(result), width="stretch")
        by_name = {r["attack"]: r for r in s["results"]}
        picked = st.selectbox(
            "Pick a token",
            list(by_name),
            format_func=lambda n: by_name[n]["title"],
            key="jwt.pick",
        )
        row = by_name[picked]
        if row["got"] == "accepted":
            st.success(f"{s['verifier']} verifier: **accepted** (HTTP {row['status']})")
        else:
            st.error(
                f"{s['verifier']} verifier: refused with HTTP {row['status']}, reason "
                f"**{row['got']}**: {row['detail']}"
            )
        st.markdown(f"**The attack.** {row['how']}  \n**What stops it.** {row['defence']}")
        seen = peek(row["token"])
        head, body = st.columns(2)
        head.caption("Header, as the token claims (unverified)")
        head.json(seen.get("header", {}))
        body.caption("Payload, as the token claims (unverified)")
        body.json(seen.get("payload", {}))
        st.code(row["token"], language="text", wrap_lines=True)
        st.code(controls.cli_command("jwt", result.params), language="bash")

# --- mTLS -------------------------------------------------------------------------------------

with mtls_tab:
    controls.init_state("mtls")
    st.caption(
        "A real uvicorn on 127.0.0.1 requires a client certificate from the service CA "
        "(made with trustme); four httpx clients knock."
    )
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    with left:
        controls.widget("mtls", "tls")
    if right.button("Run again", icon=":material/refresh:", key="mtls.again"):
        st.session_state[MTLS_RUN_KEY] = st.session_state.get(MTLS_RUN_KEY, 0) + 1
    result = controls.run(
        "mtls", controls.values("mtls"), run_id=st.session_state.get(MTLS_RUN_KEY, 0)
    )
    if result is not None:
        s = result.summary
        a, b, c = st.columns(3)
        a.metric("Accepted", f"{s['accepted']} of {s['attempts']}")
        b.metric("Requests that reached the app", s["requests_reaching_the_app"])
        c.metric("Caller the server saw", (s["client_seen_by_server"] or "").split("CN=")[-1])
        st.plotly_chart(viz.handshakes(result), width="stretch")
        st.dataframe(
            pd.DataFrame(s["results"])[
                ["case", "client", "accepted", "refused_by", "stage", "server_reason"]
            ],
            hide_index=True,
        )
