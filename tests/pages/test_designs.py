"""Designs page through app.py: the gallery (images by address, filters, paging), ratings,
comments, decisions and favorites; usage and results; who may do what."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from core import designs
from core.access import Role
from db.engine import session_scope
from db.models import AuditEvent, Design


def _record(engine, shop, count, **fields):
    now = datetime.now(UTC)
    items = [
        designs.parse_design(
            {
                "design_id": f"gen-{n}",
                "prompt": f"A romantic bouquet number {n}",
                "image_url": f"https://img.example/{n}.png",
                "model_type": "dalle3" if n % 2 else "gpt4",
                "template": "Basic Bouquet",
                "style": "Romantic Classic",
                "occasion": "wedding",
                "tokens": 100,
                "cost": 0.04,
                "created_at": now - timedelta(minutes=n),
            }
            | fields
        )
        for n in range(1, count + 1)
    ]
    with session_scope(shop.admin, engine=engine) as s:
        designs.record_designs(session=s, actor=shop.admin, items=items)


def _stored(engine, shop):
    with session_scope(shop.admin, engine=engine) as s:
        return {d.design_id: d for d in s.exec(select(Design)).all()}


def _designs(app, actor):
    at = app(actor)
    at.switch_page("pages/designs.py")
    return at.run()


def _widget(elements, prefix):
    return next(w for w in elements if w.key and w.key.startswith(prefix))


def _images(at):
    return at.image


def test_rate_comment_and_approve_from_the_gallery(app, shops, app_db):
    bloom, fern = shops
    _record(app_db, bloom, 2)
    ids = {k: d.id for k, d in _stored(app_db, bloom).items()}
    at = _designs(app, bloom.florist)
    assert not at.exception
    assert len(_images(at)) == 2
    assert any("Image from img.example" in c.value.replace("\\", "") for c in at.caption)
    _widget(at.selectbox, f"rating_{ids['gen-1']}_").set_value(4)
    _widget(at.text_input, f"comment_{ids['gen-1']}_").input("Lovely, more greenery")
    _widget(at.button, f"save_{ids['gen-1']}_").click()
    at = at.run()
    assert not at.exception
    assert any("rated 4, comment saved" in s.value for s in at.success)
    _widget(at.button, f"approve_{ids['gen-2']}_").click()
    at = at.run()
    assert any("gen-2: approved" in s.value.replace("\\", "") for s in at.success)
    stored = _stored(app_db, bloom)
    assert (stored["gen-1"].rating, stored["gen-1"].comment) == (4, "Lovely, more greenery")
    assert stored["gen-1"].approved is None
    assert stored["gen-2"].approved is True
    with session_scope(bloom.admin, engine=app_db) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "design.decide")).one()
    assert _widget(at.button, f"approve_{ids['gen-2']}_").disabled  # approved already
    assert _designs(app, fern.florist).info  # the other shop sees none of it


def test_filters_and_pages_run_in_sql(app, shops, app_db):
    bloom, _ = shops
    _record(app_db, bloom, 14)
    with session_scope(bloom.admin, engine=app_db) as s:
        top = s.exec(select(Design).where(Design.design_id == "gen-3")).one()
        designs.rate_design(session=s, actor=bloom.florist, design_id=top.id, rating=5)
    at = _designs(app, bloom.florist)
    assert any("Page 1 of 2 · 14 designs" in c.value for c in at.caption)
    assert len(_images(at)) == 12
    next(b for b in at.button if b.label == "Next").click()
    at = at.run()
    assert any("Page 2 of 2" in c.value for c in at.caption)
    assert len(_images(at)) == 2
    at.selectbox(key="f_rating").set_value(4)
    at = at.run()
    assert any("Page 1 of 1 · 1 design" in c.value for c in at.caption)
    assert any(t.value == "A romantic bouquet number 3" for t in at.text)
    at.selectbox(key="f_rating").set_value("unrated")
    at.selectbox(key="f_decision").set_value("approved")
    at = at.run()
    assert any("No design matches these filters" in i.value for i in at.info)


def test_a_missing_image_address_shows_a_caption(app, shops, app_db):
    bloom, _ = shops
    _record(app_db, bloom, 1)
    with session_scope(bloom.admin, engine=app_db) as s:
        row = s.exec(select(Design)).one()
        row.image_url = "file:///etc/passwd"  # never written by core; a legacy or broken row
        s.add(row)
    at = _designs(app, bloom.florist)
    assert not at.exception
    assert not _images(at)
    assert any("not an http(s) address" in c.value for c in at.caption)


def test_usage_and_results_for_a_manager_who_cannot_review(app, shops, app_db):
    bloom, _ = shops
    _record(app_db, bloom, 3)
    with session_scope(bloom.admin, engine=app_db) as s:
        first = s.exec(select(Design).where(Design.design_id == "gen-1")).one()
        designs.rate_design(session=s, actor=bloom.florist, design_id=first.id, rating=4)
    at = _designs(app, bloom.actor(Role.MANAGER))
    assert not at.exception
    assert [t.label for t in at.tabs] == ["Gallery", "Usage"]
    assert len(_images(at)) == 3
    assert not [b for b in at.button if b.label in ("Approve", "Reject", "Save")]
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Designs"], metrics["Tokens"], metrics["Cost"]) == ("3", "300", "$0.12")
    titles = [json.loads(c.proto.spec).get("title") for c in at.get("vega_lite_chart")]
    assert {"Designs", "Tokens", "Cost ($)", "Average rating (0–5)"} <= set(titles)
    results = next(d.value for d in at.dataframe if "prompt template" in d.value.columns)
    assert list(results["prompt template"]) == ["Basic Bouquet"]
    assert list(results["designs"]) == [3]


def test_empty_states_say_what_to_do(app, shops):
    bloom, _ = shops
    at = _designs(app, bloom.florist)
    assert not at.exception
    assert any("No designs yet" in i.value for i in at.info)
    assert any("No designs were made in the last 30 days" in i.value for i in at.info)
