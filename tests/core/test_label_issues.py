"""Label issues: confident learning on out-of-fold probabilities, and the shop's flags."""

from __future__ import annotations

import csv
import functools
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import col, select

from core.access import Role
from core.errors import InvalidInput, PermissionDenied
from core.label_issues import (
    AUDIT_ACTION,
    _confident_errors,
    count_issues,
    detect,
    find_label_issues,
    judge_labels,
    list_issues,
)
from core.text import content_hash, text_hash
from db.engine import session_scope
from db.models import AuditEvent, Example, ExampleSource, ExampleStatus, utcnow
from tests.factories import Shop, make_shop

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "banking77"


@functools.cache
def _by_intent() -> dict[str, tuple[str, ...]]:
    texts: defaultdict[str, list[str]] = defaultdict(list)
    with (BANKING77 / "train.csv").open(encoding="utf-8") as src:
        for row in csv.DictReader(src):
            texts[row["intent"]].append(row["text"])
    return {intent: tuple(group) for intent, group in texts.items()}


def _sample(intents: int, per_intent: int) -> tuple[list[str], list[str]]:
    """The first `per_intent` texts of the first `intents` BANKING77 intents (sorted)."""
    texts, labels = [], []
    for intent in sorted(_by_intent())[:intents]:
        for text in _by_intent()[intent][:per_intent]:
            texts.append(text)
            labels.append(intent)
    return texts, labels


def _flip(labels: list[str], share: float, seed: int) -> tuple[list[str], set[int]]:
    """The labels with `share` of them moved to another intent of the sample, at random."""
    rng = random.Random(seed)
    intents = sorted(set(labels))
    flipped = set(rng.sample(range(len(labels)), round(share * len(labels))))
    noisy = [
        rng.choice([i for i in intents if i != label]) if n in flipped else label
        for n, label in enumerate(labels)
    ]
    return noisy, flipped


# --- the method ---------------------------------------------------------------------------


def test_planted_flips_are_found_far_above_chance():
    texts, truth = _sample(20, 30)
    noisy, flipped = _flip(truth, 0.05, seed=5)
    flags = find_label_issues(texts, noisy)
    top = flags[: len(flipped)]
    # Chance is 5 % for both; measured 0.80-0.90 over eight seeds.
    assert sum(f.index in flipped for f in top) / len(flipped) >= 0.5
    assert sum(f.index in flipped for f in flags) / len(flipped) >= 0.5
    found = [f for f in flags if f.index in flipped]
    assert sum(f.suggested == truth[f.index] for f in found) >= 0.8 * len(found)
    assert all(f.given == noisy[f.index] != f.suggested for f in flags)


def test_flags_come_likeliest_first_with_scores_between_0_and_1():
    texts, truth = _sample(10, 25)
    noisy, _ = _flip(truth, 0.08, seed=1)
    flags = find_label_issues(texts, noisy)
    assert flags
    scores = [f.score for f in flags]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)


def test_the_same_data_gives_the_same_flags():
    texts, truth = _sample(12, 20)
    noisy, _ = _flip(truth, 0.05, seed=2)
    first = find_label_issues(texts, noisy)
    assert first and first == find_label_issues(texts, noisy)


def test_the_confident_joint_decides_how_many_and_self_confidence_which():
    proba = np.array(
        [
            [0.95, 0.05],  # a
            [0.90, 0.10],  # a
            [0.85, 0.15],  # a
            [0.10, 0.90],  # a: confidently b (b's threshold is 0.8125)
            [0.40, 0.60],  # a: b likelier, but not confidently
            [0.05, 0.95],  # b
            [0.10, 0.90],  # b
            [0.15, 0.85],  # b
            [0.45, 0.55],  # b
        ]
    )
    given = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    rows = np.arange(len(given)) + 100  # positions in the caller's list
    flags = _confident_errors(proba, given, rows, np.array(["a", "b"]))
    # a's row of the joint: 3 confidently a, 1 confidently b, 1 uncounted -> 1/4 of a's five
    # examples are wrong: one, the least confident; b's row has no errors.
    assert [(f.index, f.given, f.suggested) for f in flags] == [(103, "a", "b")]
    assert flags[0].score == pytest.approx(0.9)


def test_one_intent_gives_no_flags():
    texts, _ = _sample(1, 30)
    findings = judge_labels(texts, ["card_arrival"] * len(texts))
    assert findings.flags == [] and findings.reason is not None
    assert find_label_issues([], []) == []


def test_two_intents_are_judged():
    texts, truth = _sample(2, 30)
    noisy, flipped = _flip(truth, 0.1, seed=3)
    flags = find_label_issues(texts, noisy)
    assert {f.index for f in flags[: len(flipped)]} & flipped


def test_tiny_intents_neither_crash_nor_get_judged_alone():
    texts, labels = _sample(6, 20)
    texts += ["I want to close my account", "what is the fee for atm use", "atm fees please"]
    labels += ["close_account", "atm_fee", "atm_fee"]
    findings = judge_labels(texts, labels, folds=5)
    lonely = len(texts) - 3  # the only example of close_account: nothing to hold it against
    assert all(f.index != lonely for f in findings.flags)
    assert findings.judged == len(texts) - 1


def test_fewer_than_two_judgeable_intents_give_no_flags():
    findings = judge_labels(["hello", "hi there", "where is my order"], ["a", "a", "b"])
    assert findings.flags == [] and findings.reason is not None


def test_copies_of_a_mislabelled_text_are_held_out_together():
    texts, labels = _sample(10, 20)
    # Three copies of an activate_my_card text, all labelled age_limit: were copies split over
    # the folds, each would vouch for the others (measured: none flagged then).
    copy = _by_intent()["activate_my_card"][25]
    texts += [copy, copy.upper(), f"  {copy}"]
    labels += ["age_limit"] * 3
    flags = {f.index: f.suggested for f in find_label_issues(texts, labels)}
    copies = range(len(texts) - 3, len(texts))
    assert [flags.get(i) for i in copies] == ["activate_my_card"] * 3


def test_a_text_without_words_is_not_a_crash():
    texts, labels = _sample(3, 10)
    assert isinstance(find_label_issues([*texts, "?!"], [*labels, labels[0]]), list)
    assert find_label_issues(["?", "!", "?!", "..."], ["a", "a", "b", "b"]) == []


def test_every_example_needs_a_label():
    with pytest.raises(InvalidInput):
        find_label_issues(["one", "two"], ["a"])


# --- the shop's flags ---------------------------------------------------------------------


def _add(engine, shop: Shop, rows: list[tuple[str, str]], **fields) -> list[int]:
    """Imported, approved examples (text, intent) unless `fields` say otherwise; their ids."""
    with session_scope(shop.admin, engine=engine) as session:
        examples = [
            Example(
                **{
                    "tenant_id": shop.tenant_id,
                    "text": text,
                    "text_hash": text_hash(text),
                    "content_hash": content_hash(text, intent),
                    "correct_intent": intent,
                    "status": ExampleStatus.APPROVED.value,
                    "source": ExampleSource.IMPORTED.value,
                    **fields,
                }
            )
            for text, intent in rows
        ]
        session.add_all(examples)
        session.flush()
        return [e.id for e in examples if e.id is not None]


def _noisy_shop(engine, name: str = "Bloom & Co.") -> tuple[Shop, list[int], set[int], list[str]]:
    """A shop with 8 intents x 25 BANKING77 examples, 10 of them mislabelled."""
    shop = make_shop(engine, name)
    texts, truth = _sample(8, 25)
    noisy, flipped = _flip(truth, 0.05, seed=7)
    ids = _add(engine, shop, list(zip(texts, noisy, strict=True)))
    return shop, ids, {ids[i] for i in flipped}, truth


def _flags(engine, shop: Shop) -> dict[int, tuple[float | None, str | None]]:
    with session_scope(shop.admin, engine=engine) as session:
        rows = session.exec(
            select(Example.id, Example.issue_score, Example.issue_suggestion).where(
                Example.tenant_id == shop.tenant_id, col(Example.issue_score).is_not(None)
            )
        ).all()
    return {i: (score, suggestion) for i, score, suggestion in rows}


def test_detect_flags_mislabelled_examples_and_lists_them_likeliest_first(engine):
    shop, ids, flipped, truth = _noisy_shop(engine)
    with session_scope(shop.admin, engine=engine) as session:
        summary = detect(session=session, actor=shop.admin)
    assert summary.examined == summary.judged == len(ids) and summary.intents == 8
    assert summary.reason is None and summary.flagged > 0
    with session_scope(shop.admin, engine=engine) as session:
        issues = list_issues(session=session, actor=shop.admin, limit=1_000)
        assert count_issues(session=session, actor=shop.admin) == summary.flagged
        page = list_issues(session=session, actor=shop.admin, limit=3, offset=2)
    assert len(issues) == summary.flagged
    assert [i.example_id for i in page] == [i.example_id for i in issues[2:5]]
    scores = [i.score for i in issues]
    assert scores == sorted(scores, reverse=True)
    top = issues[: len(flipped)]
    assert sum(i.example_id in flipped for i in top) >= len(flipped) / 2  # chance: 5 %
    for issue in issues:
        if issue.example_id in flipped:
            assert issue.given_intent != truth[ids.index(issue.example_id)]
        assert issue.suggested_intent != issue.given_intent and issue.found_at is not None


def test_detect_replaces_the_previous_flags(engine):
    shop, _, _, _ = _noisy_shop(engine)
    # A flag on an example detection no longer looks at (rejected): it must go.
    [stale] = _add(
        engine,
        shop,
        [("please cancel the flowers", "cancel_order")],
        status=ExampleStatus.REJECTED.value,
        issue_score=0.99,
        issue_suggestion="card_arrival",
        issue_found_at=utcnow(),
    )
    with session_scope(shop.admin, engine=engine) as session:
        first = detect(session=session, actor=shop.admin)
    assert stale not in _flags(engine, shop)
    assert first.cleared == 1 and len(_flags(engine, shop)) == first.flagged
    with session_scope(shop.admin, engine=engine) as session:
        again = detect(session=session, actor=shop.admin)
    assert again.cleared == first.flagged and len(_flags(engine, shop)) == again.flagged


def test_detect_does_not_change_versions(engine):
    shop, _, _, _ = _noisy_shop(engine)

    def versions() -> dict[int, tuple[int, object]]:
        with session_scope(shop.admin, engine=engine) as session:
            rows = session.exec(select(Example.id, Example.version, Example.updated_at)).all()
        return {i: (v, at) for i, v, at in rows}

    before = versions()
    with session_scope(shop.admin, engine=engine) as session:
        assert detect(session=session, actor=shop.admin).flagged > 0
    assert versions() == before


def test_human_corrections_and_confident_predictions_are_judged_too(engine):
    shop = make_shop(engine)
    texts, truth = _sample(6, 20)
    _add(engine, shop, list(zip(texts[1:], truth[1:], strict=True)))
    wrong = next(i for i in sorted(set(truth)) if i != truth[0])
    # A person corrected the first text to a wrong intent.
    [corrected] = _add(
        engine,
        shop,
        [(texts[0], wrong)],
        status=ExampleStatus.REVIEWED.value,
        reviewed=True,
        detected_intent=truth[0],
    )
    # The model predicted a wrong intent for a copy, confidently (trained on) and not (ignored).
    pending = {
        "status": ExampleStatus.PENDING.value,
        "correct_intent": None,
        "source": ExampleSource.LIVE.value,
        "content_hash": None,
    }
    [confident] = _add(
        engine, shop, [(texts[41] + "!", wrong)], detected_intent=wrong, confidence=0.97, **pending
    )
    [unsure] = _add(
        engine, shop, [(texts[42] + "?", wrong)], detected_intent=wrong, confidence=0.4, **pending
    )
    with session_scope(shop.admin, engine=engine) as session:
        summary = detect(session=session, actor=shop.admin)
    assert summary.examined == len(texts) + 1  # the unsure prediction is not training data
    flags = _flags(engine, shop)
    assert flags[corrected][1] == truth[0]
    assert flags[confident][1] == truth[41] != wrong
    assert unsure not in flags


@pytest.mark.parametrize("role", [Role.FLORIST, Role.MANAGER])
def test_label_issues_are_for_admins_only(engine, role):
    shop = make_shop(engine)
    with session_scope(shop.admin, engine=engine) as session:
        for call in (detect, list_issues, count_issues):
            with pytest.raises(PermissionDenied):
                call(session=session, actor=shop.actor(role))


def test_detect_is_audited(engine):
    shop, ids, _, _ = _noisy_shop(engine)
    with session_scope(shop.admin, engine=engine) as session:
        summary = detect(session=session, actor=shop.admin)
    with session_scope(shop.admin, engine=engine) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == AUDIT_ACTION)).all()
    assert event.actor_user_id == shop.admin.user_id
    assert event.after is not None
    assert event.after["examined"] == len(ids) and event.after["flagged"] == summary.flagged


def test_too_little_data_clears_flags_and_says_why(engine):
    shop = make_shop(engine)
    _add(
        engine,
        shop,
        [("where is my card", "card_arrival")],
        issue_score=0.5,
        issue_suggestion="card_linking",
        issue_found_at=utcnow(),
    )
    _add(engine, shop, [("my card has not arrived", "card_arrival")])
    with session_scope(shop.admin, engine=engine) as session:
        summary = detect(session=session, actor=shop.admin)
    assert summary.flagged == 0 and summary.cleared == 1 and summary.reason
    assert _flags(engine, shop) == {}
    with session_scope(shop.admin, engine=engine) as session:
        assert list_issues(session=session, actor=shop.admin) == []
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == AUDIT_ACTION)).all()
    assert event.reason == summary.reason


def test_detect_never_touches_another_shop(engine):
    mine, _, _, _ = _noisy_shop(engine, "Mine")
    other, other_ids, _, _ = _noisy_shop(engine, "Other")
    with session_scope(other.admin, engine=engine) as session:
        detect(session=session, actor=other.admin)
    theirs = _flags(engine, other)
    assert theirs

    def snapshot(shop: Shop) -> list[tuple[object, ...]]:
        with session_scope(shop.admin, engine=engine) as session:
            return [
                tuple(row)
                for row in session.exec(
                    select(
                        Example.id,
                        Example.version,
                        Example.issue_score,
                        Example.issue_suggestion,
                        Example.issue_found_at,
                    ).order_by(Example.id)
                ).all()
            ]

    before = snapshot(other)
    with session_scope(mine.admin, engine=engine) as session:
        summary = detect(session=session, actor=mine.admin)
    assert summary.examined == 200 and summary.cleared == 0
    assert snapshot(other) == before
    with session_scope(mine.admin, engine=engine) as session:
        listed = {i.example_id for i in list_issues(session=session, actor=mine.admin, limit=999)}
    assert listed and not listed & set(other_ids)
