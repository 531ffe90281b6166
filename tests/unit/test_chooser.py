"""The pattern advisor gives the syllabus' recommendation for each row of its table."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.core.errors import BadParameter, LabError, UnknownName
from labkit.patterns.chooser import load_table, rank
from labkit.patterns.course_links import unresolved

TABLE = load_table()
ROWS = {row.slug: row for row in TABLE.rows}


def test_the_table_has_the_syllabus_seven_rows():
    assert list(ROWS) == [
        "request_response",
        "gateway",
        "service_mesh",
        "message_queue",
        "pubsub",
        "event_sourcing",
        "cqrs",
    ]
    for row in TABLE.rows:
        assert len(row.use) >= 2 and len(row.avoid) >= 2 and row.links


@pytest.mark.parametrize("slug", list(ROWS))
def test_ticking_a_rows_when_to_use_recommends_that_row_first(slug):
    ranking = rank(ROWS[slug].use_requirements)
    top = ranking[0]
    assert top.slug == slug
    assert top.score > ranking[1].score
    assert set(top.reasons) == {r.text for r in ROWS[slug].use}
    assert top.warnings == ()


@pytest.mark.parametrize("slug", list(ROWS))
def test_ticking_a_rows_when_to_avoid_warns_and_sinks_it(slug):
    avoid = {r for reason in ROWS[slug].avoid for r in reason.when}
    ranking = rank(avoid)
    mine = next(r for r in ranking if r.slug == slug)
    assert set(mine.warnings) == {r.text for r in ROWS[slug].avoid}
    assert mine.score < 0 and not mine.recommended
    assert ranking.index(mine) >= len(ranking) // 2


def test_an_audit_trail_with_many_reacting_services_mixes_patterns():
    ranking = rank({"audit_trail", "many_react", "past_states"})
    assert [r.slug for r in ranking[:2]] == ["event_sourcing", "pubsub"]
    assert ranking[0].avoid_when  # every pattern shows when to avoid it


def test_needing_an_answer_now_sinks_the_queue_and_pubsub():
    ranking = rank({"immediate_answer"})
    assert ranking[0].slug == "request_response"
    assert {r.slug for r in ranking[-2:]} == {"message_queue", "pubsub"}


def test_bad_ticks_are_refused_with_a_clear_message():
    with pytest.raises(BadParameter, match="tick at least one"):
        rank([])
    with pytest.raises(UnknownName, match="unknown requirement: 'fast_please'"):
        rank(["fast_please"])


def test_a_table_naming_an_unknown_requirement_is_refused(tmp_path: Path):
    path = tmp_path / "chooser.yaml"
    path.write_text(
        "requirements: {a: A}\npatterns:\n  - slug: x\n    name: X\n"
        "    use: [{reason: r, when: [a]}]\n    avoid: [{reason: r, when: [b]}]\n"
    )
    with pytest.raises(LabError, match=r"patterns\[0\] \(x\).avoid names unknown requirement 'b'"):
        load_table(path)


def test_an_unquoted_reason_with_a_comma_is_caught(tmp_path: Path):
    path = tmp_path / "chooser.yaml"
    path.write_text(
        "requirements: {a: A}\npatterns:\n  - slug: x\n    name: X\n"
        "    use: [{reason: fast, cheap, when: [a]}]\n    avoid: [{reason: r, when: [a]}]\n"
    )
    with pytest.raises(LabError, match="unknown fields"):
        load_table(path)


def test_every_row_links_to_a_heading_that_exists():
    assert unresolved(link for row in TABLE.rows for link in row.links) == []
