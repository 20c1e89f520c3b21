"""Knowledge gaps: escalated and uncertain messages clustered by meaning, replaced on recompute
(closed gaps stay), resolved into an intent or dismissed, admin only, and scoped to the shop."""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from core import gaps, registry
from core.access import Role
from core.errors import DatabaseUnavailable, InvalidInput, NotFound, PermissionDenied
from core.model import IntentModel, fit
from core.shop_settings import set_review_thresholds
from core.text import text_hash
from db.engine import session_scope
from db.models import AuditEvent, Correction, Example, Intent, KnowledgeGap, utcnow
from tests.conftest import PgDatabase, truncate_all
from tests.factories import make_shop

# Three questions customers keep asking in their own words (greeting, place, month, typos),
# and messages about everything else, each asked once.
SAME_DAY = [
    "Can you do same day delivery to Riverside?",
    "hi, can you do same day delivery to Old Town",
    "Can you do same-day delivery to Northgate today?",
    "Hello! Can you do same day delivery to Hillcrest?",
    "can u do same day delivery to Maple Park",
    "Can you do same day delivery to Westfield please?",
    "is same day delivery to Brookside possible?",
    "can you do same day delivery to the harbour? thanks",
    "Hey, can you do same day delivery to St Anne's?",
    "Can you do a same day delivery to the university district?",
]
WEDDING = [
    "Do you do wedding flowers? We're getting married in June.",
    "do you do wedding flowers? we are getting married in May",
    "Hi! Do you do wedding flowers? Getting married in September.",
    "Do you do flowers for weddings? We're getting married in April",
    "hello, do you do wedding flowers? getting married next year",
    "Do you do wedding flowers? We're getting married in October. Thanks!",
    "do you do wedding flowers, we're getting married in august",
    "Hiya, do you do wedding flowers? We are getting married in July.",
    "Do you do wedding flowers and buttonholes? Getting married in March",
    "Good morning, do you do wedding flowers? We're getting married in December.",
]
PAUSE = [
    "How do I pause my flower subscription for a month?",
    "how can I pause my flower subscription for two weeks",
    "Hi, how do I pause my flower subscription while I'm away?",
    "How do I pause my subscription for a month please",
    "hello, how do i pause my flower subscription for the summer?",
    "How do I pause my weekly flower subscription?",
    "how do I pause the flower subscription for a few weeks",
    "Can I pause my flower subscription for a month?",
    "How do I pause my monthly flower subscription until May?",
    "Hey, how do I pause my flower subscription over Christmas?",
]
NOISE = [
    "My cat chewed a lily leaf, is that dangerous?",
    "What's your phone number?",
    "Do you sell chocolates with the bouquets?",
    "Is there parking near the shop?",
    "Can I pay with PayPal?",
    "Are you open on Easter Monday?",
    "Is the shop wheelchair accessible?",
    "Do you have a gift card balance checker?",
    "Are you hiring florists at the moment?",
    "Which flowers are safe for someone with hay fever?",
    "Can I collect my order instead of delivery?",
    "Do you recycle the plastic wrapping?",
    "Is the card message handwritten?",
    "Can I add a balloon to my order?",
    "What is your returns policy?",
]


def _add(engine, shop, texts, *, escalated=True, confidence=None, days_ago=0, **fields):
    """Examples of the shop's, as the assistant logged them; their ids in order."""
    with session_scope(shop.admin, engine=engine) as s:
        rows = [
            Example(
                tenant_id=shop.tenant_id,
                text=t,
                text_hash=text_hash(t),
                escalated=escalated,
                confidence=confidence,
                created_at=utcnow() - timedelta(days=days_ago),
                **fields,
            )
            for t in texts
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _planted(engine, shop):
    """The three topics and the noise, all escalated; the ids of each topic."""
    topics = {name: _add(engine, shop, texts) for name, texts in _TOPICS.items()}
    _add(engine, shop, NOISE)
    return topics


_TOPICS = {"same_day": SAME_DAY, "wedding": WEDDING, "pause": PAUSE}


def _find(engine, actor):
    with session_scope(actor, engine=engine) as s:
        return gaps.find_gaps(session=s, actor=actor)


def _gap_of(found, ids):
    """The gap holding the first of `ids`."""
    return next(g for g in found if ids[0] in g.example_ids)


# --- clustering -----------------------------------------------------------------------------


def test_each_planted_topic_becomes_one_gap_and_the_noise_none(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    found = _find(engine, shop.admin)
    assert sorted(sorted(g.example_ids) for g in found) == sorted(
        sorted(ids) for ids in topics.values()
    )
    same_day = _gap_of(found, topics["same_day"])
    assert "same day delivery" in same_day.label
    assert "pause" in _gap_of(found, topics["pause"]).label
    assert "married" in _gap_of(found, topics["wedding"]).label
    for gap, texts in ((_gap_of(found, topics[name]), _TOPICS[name]) for name in _TOPICS):
        assert gap.status == "open" and gap.size == 10
        assert 1 <= len(gap.representatives) <= gaps.REPRESENTATIVES
        assert set(gap.representatives) <= set(texts)


def test_gap_numbers_weigh_escalations_and_uncertainty(engine):
    shop = make_shop(engine)
    escalated = _add(engine, shop, SAME_DAY[:4], escalated=True, confidence=0.9)
    unsure = _add(engine, shop, SAME_DAY[4:], escalated=False, confidence=0.3)
    unknown = _add(engine, shop, PAUSE[:5], escalated=False, confidence=None)
    found = _find(engine, shop.admin)
    same_day, pause = _gap_of(found, escalated), _gap_of(found, unknown)
    assert set(same_day.example_ids) == set(escalated + unsure)
    assert same_day.escalation_rate == pytest.approx(0.4)
    assert same_day.avg_confidence == pytest.approx((4 * 0.9 + 6 * 0.3) / 10)
    # an escalation counts 1, an uncertain message 1 - confidence, no prediction 1
    assert same_day.severity == pytest.approx(4 + 6 * 0.7)
    assert pause.escalation_rate == 0 and pause.avg_confidence is None
    assert pause.severity == pytest.approx(5)
    assert [g.id for g in found] == [same_day.id, pause.id]  # most severe first


def test_only_waiting_escalated_or_unsure_messages_are_clustered(engine):
    shop = make_shop(engine)
    _add(engine, shop, SAME_DAY, escalated=False, confidence=0.95)  # sure, not escalated
    _add(engine, shop, WEDDING, reviewed=True, status="reviewed")  # a person saw them
    _add(engine, shop, PAUSE, escalated=False, confidence=0.5)  # below the default 0.6
    found = _find(engine, shop.admin)
    assert len(found) == 1 and found[0].representatives[0] in PAUSE
    with session_scope(shop.admin, engine=engine) as s:  # the shop now trusts 0.4 and above
        set_review_thresholds(
            session=s, actor=shop.admin, confidence=0.4, margin=0.1, expected_version=0
        )
    assert _find(engine, shop.admin) == []


def test_only_the_newest_messages_up_to_the_limit_are_clustered(engine, monkeypatch):
    shop = make_shop(engine)
    old = _add(engine, shop, SAME_DAY, days_ago=10)
    _add(engine, shop, WEDDING + PAUSE)
    monkeypatch.setattr(gaps, "MAX_MESSAGES", 20)
    found = _find(engine, shop.admin)
    assert len(found) == 2
    assert not set(old) & {i for g in found for i in g.example_ids}


def test_too_few_or_featureless_messages_make_no_gap(engine):
    shop = make_shop(engine)
    assert _find(engine, shop.admin) == []
    _add(engine, shop, ["?", "!!", "12345", "…"])
    assert _find(engine, shop.admin) == []
    assert gaps.cluster_texts([]) == [] and gaps.cluster_texts(["", "", "", ""]) == []


def test_recompute_replaces_open_gaps_and_keeps_closed_ones(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    first = _find(engine, shop.admin)
    dismissed = _gap_of(first, topics["same_day"])
    with session_scope(shop.admin, engine=engine) as s:
        gaps.dismiss_gap(session=s, actor=shop.admin, gap_id=dismissed.id, reason="seasonal")
    second = _find(engine, shop.admin)
    assert len(second) == 2 and not {g.id for g in first} & {g.id for g in second}
    with session_scope(shop.admin, engine=engine) as s:
        assert [g.id for g in gaps.list_gaps(session=s, actor=shop.admin)] == [g.id for g in second]
        assert [g.id for g in gaps.list_gaps(session=s, actor=shop.admin, status="dismissed")] == [
            dismissed.id
        ]
        for stale in (g for g in first if g.id != dismissed.id):
            with pytest.raises(NotFound):
                gaps.get_gap(session=s, actor=shop.admin, gap_id=stale.id)
        assert s.exec(select(KnowledgeGap)).all().__len__() == 3


def test_messages_of_a_dismissed_gap_are_not_clustered_again(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    wedding = _gap_of(_find(engine, shop.admin), topics["wedding"])
    with session_scope(shop.admin, engine=engine) as s:
        view = gaps.dismiss_gap(session=s, actor=shop.admin, gap_id=wedding.id)
    assert view.status == "dismissed" and view.resolution is None
    _add(engine, shop, WEDDING[:2])  # new messages on the topic: too few for a gap alone
    again = _find(engine, shop.admin)
    clustered = {i for g in again for i in g.example_ids}
    assert not clustered & set(topics["wedding"])
    assert len(again) == 2


def test_find_and_dismiss_are_audited(engine):
    shop = make_shop(engine)
    _planted(engine, shop)
    found = _find(engine, shop.admin)
    with session_scope(shop.admin, engine=engine) as s:
        gaps.dismiss_gap(session=s, actor=shop.admin, gap_id=found[0].id, reason="not ours")
        events = s.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
    assert [e.action for e in events] == ["gaps.find", "gap.dismiss"]
    assert events[0].after == {"gaps": 3, "messages": 45, "clustered": 30}
    assert events[1].entity_id == str(found[0].id) and events[1].reason == "not ours"


# --- nearest intents ------------------------------------------------------------------------

KNOWN = {
    "wedding_consultation": [
        "flowers for our wedding",
        "bridal bouquet for my wedding day",
        "wedding table flowers",
        "can we book a wedding consultation",
    ],
    "subscription": [
        "cancel my flower subscription",
        "change my weekly subscription",
        "how does the flower subscription work",
        "skip a subscription delivery",
    ],
    "order_status": [
        "where is my order",
        "has my order shipped",
        "track my order please",
        "my order has not arrived",
    ],
}


@functools.cache
def known_model() -> IntentModel:
    texts = [t for phrases in KNOWN.values() for t in phrases]
    labels = [intent for intent, phrases in KNOWN.items() for _ in phrases]
    return fit(texts=texts, labels=labels)


def test_nearest_intents_are_the_serving_models_mean_probabilities(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    with session_scope(shop.admin, engine=engine) as s:
        stored = registry.store_version(
            session=s, actor=shop.admin, model=known_model(), run_id=None, metrics={}
        )
        registry.activate(session=s, actor=shop.admin, version=stored.version)
    found = _find(engine, shop.admin)
    wedding = _gap_of(found, topics["wedding"])
    expected = known_model().probabilities(WEDDING).mean(axis=0)
    assert wedding.nearest_intents[0][0] == "wedding_consultation"
    by_name = dict(zip(known_model().intents, expected, strict=True))
    for name, score in wedding.nearest_intents:
        assert score == pytest.approx(by_name[name], abs=1e-3)
    assert _gap_of(found, topics["pause"]).nearest_intents[0][0] == "subscription"


def test_nearest_intents_without_a_model_come_from_labelled_examples(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    for intent, texts in KNOWN.items():
        _add(engine, shop, texts, escalated=False, correct_intent=intent, status="approved")
    found = _find(engine, shop.admin)
    wedding, pause = _gap_of(found, topics["wedding"]), _gap_of(found, topics["pause"])
    assert wedding.nearest_intents[0][0] == "wedding_consultation"
    assert pause.nearest_intents[0][0] == "subscription"
    assert all(0 < score <= 1 for _, score in wedding.nearest_intents)
    assert len(wedding.nearest_intents) <= gaps.NEAREST_INTENTS


def test_nearest_intents_are_empty_with_no_model_and_no_labels(engine):
    shop = make_shop(engine)
    _planted(engine, shop)
    assert all(g.nearest_intents == () for g in _find(engine, shop.admin))


# --- resolving ------------------------------------------------------------------------------


def test_resolving_with_a_new_intent_relabels_the_members_as_one_batch(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    gap = _gap_of(_find(engine, shop.admin), topics["same_day"])
    with session_scope(shop.admin, engine=engine) as s:
        view = gaps.resolve_gap(
            session=s,
            actor=shop.admin,
            gap_id=gap.id,
            intent="same_day_delivery",
            create_intent=True,
        )
    assert view.status == "resolved" and view.resolution == "same_day_delivery"
    with session_scope(shop.admin, engine=engine) as s:
        members = s.exec(select(Example).where(col(Example.id).in_(topics["same_day"]))).all()
        assert {m.correct_intent for m in members} == {"same_day_delivery"}
        assert all(m.reviewed for m in members)
        assert s.exec(select(Intent).where(Intent.name == "same_day_delivery")).one()
        notes = s.exec(select(Correction.note, Correction.batch_id)).all()
        assert len(notes) == 10 and {n for n, _ in notes} == {f"knowledge gap {gap.id}"}
        assert len({b for _, b in notes}) == 1
        row = s.exec(select(KnowledgeGap).where(KnowledgeGap.id == gap.id)).one()
        assert row.resolved_by == shop.admin.user_id and row.resolved_at is not None
        resolved = s.exec(select(AuditEvent).where(AuditEvent.action == "gap.resolve")).one()
        assert resolved.after["relabelled"] == 10 and resolved.after["created_intent"] is True
    remaining = _find(engine, shop.admin)
    assert len(remaining) == 2
    assert not {i for g in remaining for i in g.example_ids} & set(topics["same_day"])


def test_resolving_maps_onto_an_existing_intent_and_skips_deleted_messages(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    gap = _gap_of(_find(engine, shop.admin), topics["pause"])
    with session_scope(shop.admin, engine=engine) as s:
        s.add(Intent(tenant_id=shop.tenant_id, name="subscription"))
        s.delete(s.get(Example, topics["pause"][0]))
    with session_scope(shop.admin, engine=engine) as s:
        gaps.resolve_gap(session=s, actor=shop.admin, gap_id=gap.id, intent="subscription")
        labels = s.exec(
            select(Example.correct_intent).where(col(Example.id).in_(topics["pause"]))
        ).all()
    assert labels == ["subscription"] * 9


def test_resolving_to_an_unknown_intent_without_creating_it_changes_nothing(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    gap = _gap_of(_find(engine, shop.admin), topics["wedding"])
    with pytest.raises(InvalidInput), session_scope(shop.admin, engine=engine) as s:
        gaps.resolve_gap(session=s, actor=shop.admin, gap_id=gap.id, intent="weddings")
    with session_scope(shop.admin, engine=engine) as s:
        assert gaps.get_gap(session=s, actor=shop.admin, gap_id=gap.id).status == "open"
        assert s.exec(select(Example).where(col(Example.correct_intent).is_not(None))).all() == []


def test_a_closed_gap_is_neither_resolved_nor_dismissed_again(engine):
    shop = make_shop(engine)
    topics = _planted(engine, shop)
    gap = _gap_of(_find(engine, shop.admin), topics["wedding"])
    with session_scope(shop.admin, engine=engine) as s:
        gaps.dismiss_gap(session=s, actor=shop.admin, gap_id=gap.id)
    with session_scope(shop.admin, engine=engine) as s:
        with pytest.raises(InvalidInput, match="already dismissed"):
            gaps.resolve_gap(
                session=s, actor=shop.admin, gap_id=gap.id, intent="x", create_intent=True
            )
        with pytest.raises(InvalidInput):
            gaps.dismiss_gap(session=s, actor=shop.admin, gap_id=gap.id)
        with pytest.raises(InvalidInput):
            gaps.list_gaps(session=s, actor=shop.admin, status="closed")


# --- who may, and which shop ----------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_only_admins_work_on_gaps(engine, role):
    shop = make_shop(engine)
    _planted(engine, shop)
    gap = _find(engine, shop.admin)[0]
    actor = shop.actor(role)
    with session_scope(actor, engine=engine) as s:
        for call in (
            lambda: gaps.find_gaps(session=s, actor=actor),
            lambda: gaps.list_gaps(session=s, actor=actor),
            lambda: gaps.get_gap(session=s, actor=actor, gap_id=gap.id),
            lambda: gaps.dismiss_gap(session=s, actor=actor, gap_id=gap.id),
            lambda: gaps.resolve_gap(
                session=s, actor=actor, gap_id=gap.id, intent="x", create_intent=True
            ),
        ):
            with pytest.raises(PermissionDenied):
                call()
    with session_scope(shop.admin, engine=engine) as s:
        assert gaps.get_gap(session=s, actor=shop.admin, gap_id=gap.id).status == "open"


def test_a_shop_never_sees_or_changes_another_shops_gaps(engine):
    a, b = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    topics = _planted(engine, a)
    a_gaps = _find(engine, a.admin)
    b_ids = _add(engine, b, PAUSE)
    b_gaps = _find(engine, b.admin)
    assert [sorted(g.example_ids) for g in b_gaps] == [sorted(b_ids)]
    assert not set(b_ids) & {i for ids in topics.values() for i in ids}
    with session_scope(b.admin, engine=engine) as s:
        assert [g.id for g in gaps.list_gaps(session=s, actor=b.admin)] == [b_gaps[0].id]
        for call in (
            lambda: gaps.get_gap(session=s, actor=b.admin, gap_id=a_gaps[0].id),
            lambda: gaps.dismiss_gap(session=s, actor=b.admin, gap_id=a_gaps[0].id),
            lambda: gaps.resolve_gap(
                session=s, actor=b.admin, gap_id=a_gaps[0].id, intent="x", create_intent=True
            ),
        ):
            with pytest.raises(NotFound):
                call()
    with session_scope(a.admin, engine=engine) as s:  # B's recompute left A's gaps alone
        assert {g.id for g in gaps.list_gaps(session=s, actor=a.admin)} == {g.id for g in a_gaps}


def test_gap_changes_of_one_shop_wait_for_each_other_on_postgres(pg: PgDatabase):
    """Two recomputes at once would each replace the open gaps and leave both sets."""
    truncate_all(pg.owner)
    shop, other = make_shop(pg.app, "Bloom"), make_shop(pg.app, "Fern")
    topics = _planted(pg.app, shop)
    _add(pg.app, other, PAUSE)
    with session_scope(shop.admin, engine=pg.app) as first:
        found = gaps.find_gaps(session=first, actor=shop.admin)  # holds the lock till commit
        with session_scope(other.admin, engine=pg.app) as s:  # another shop does not wait
            assert len(gaps.find_gaps(session=s, actor=other.admin)) == 1
        for act in (
            lambda s: gaps.find_gaps(session=s, actor=shop.admin),
            lambda s: gaps.dismiss_gap(session=s, actor=shop.admin, gap_id=found[0].id),
        ):
            with (
                pytest.raises(DatabaseUnavailable, match="lock timeout"),
                session_scope(shop.admin, engine=pg.app) as second,
            ):
                second.execute(text("SET LOCAL lock_timeout = '200ms'"))
                act(second)
    assert len(_find(pg.app, shop.admin)) == len(topics)
