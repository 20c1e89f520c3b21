"""Learning insights: short, specific recommendations computed from the shop's data.

Three kinds, every count an SQL aggregate (GROUP BY) over the shop's rows:
- an intent with too few examples or many errors ("add examples");
- two intents the model confuses with each other, both directions together ("merge or clarify");
- an open knowledge gap, from core.gaps ("create an intent or map it").

Severity is one scale for all three, the number of customer messages at stake, so they sort
together: an intent's misses (reviewed messages of it the model got wrong) plus the examples it
lacks below MIN_EXAMPLES_PER_INTENT; a pair's confusions; a gap's severity (the expected number
of messages the assistant failed in it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import and_, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core.access import Actor, Role, require_role
from core.dataset import MIN_EXAMPLES_PER_INTENT
from core.training import TRAINABLE
from db.models import Example, GapStatus, Intent, KnowledgeGap

ERROR_SHARE = 0.2  # an intent the model misses this often (of its reviewed messages) is flagged
MIN_ERRORS = 2  # ... once it missed at least this many (one miss in two is no pattern)
MIN_CONFUSIONS = 3  # a pair of intents confused fewer times is not worth a recommendation
HIGH, MEDIUM = 20.0, 5.0  # severity levels: messages at stake


class InsightKind(StrEnum):
    WEAK_INTENT = "weak_intent"
    CONFUSED_INTENTS = "confused_intents"
    KNOWLEDGE_GAP = "knowledge_gap"


class InsightAction(StrEnum):
    ADD_EXAMPLES = "add_examples"
    REVIEW_EXAMPLES = "review_examples"
    MERGE_OR_CLARIFY = "merge_or_clarify"
    CREATE_OR_MAP_INTENT = "create_or_map_intent"


@dataclass(frozen=True)
class Insight:
    """One recommendation: what is wrong (with its numbers), about which intents, what to do."""

    kind: InsightKind
    severity: float  # customer messages at stake (see the module docstring)
    message: str
    intents: tuple[str, ...]
    action: InsightAction
    gap_id: int | None = None

    @property
    def level(self) -> str:
        """'high', 'medium' or 'low', for a badge."""
        if self.severity >= HIGH:
            return "high"
        return "medium" if self.severity >= MEDIUM else "low"


def learning_insights(*, session: Session, actor: Actor, limit: int = 10) -> list[Insight]:
    """The shop's `limit` most severe recommendations (admin, manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    found = [
        *_weak_intents(session, actor),
        *_confused_pairs(session, actor),
        *_open_gaps(session, actor, limit),
    ]
    found.sort(key=lambda i: (-i.severity, list(InsightKind).index(i.kind), i.message))
    return found[: max(limit, 0)]


# --- intents with few examples or many errors ---------------------------------------------


def _weak_intents(session: Session, actor: Actor) -> list[Insight]:
    """Per label (the corrected intent, else the predicted one) of the shop's training examples:
    how many, and of its reviewed messages how many the model predicted and how many wrongly."""
    label = func.coalesce(col(Example.correct_intent), col(Example.detected_intent))
    judged = and_(col(Example.reviewed), col(Example.intent_correct).is_not(None))
    missed = and_(col(Example.reviewed), col(Example.intent_correct).is_(False))
    rows = session.execute(
        sa_select(
            label,
            func.count(),
            func.sum(case((judged, 1), else_=0)),
            func.sum(case((missed, 1), else_=0)),
        )
        .where(
            col(Example.tenant_id) == actor.tenant_id,
            col(Example.status).in_(TRAINABLE),
            label.is_not(None),
        )
        .group_by(label)
    ).all()
    counts = {str(name): (int(n), int(j or 0), int(e or 0)) for name, n, j, e in rows}
    for name in _active_intents(session, actor):
        counts.setdefault(name, (0, 0, 0))
    found = (_weak_intent(name, *numbers) for name, numbers in counts.items())
    return [insight for insight in found if insight is not None]


def _active_intents(session: Session, actor: Actor) -> list[str]:
    return [
        str(name)
        for name in session.exec(
            select(Intent.name).where(
                col(Intent.tenant_id) == actor.tenant_id, col(Intent.is_active)
            )
        ).all()
    ]


def _weak_intent(name: str, examples: int, judged: int, errors: int) -> Insight | None:
    share = errors / judged if judged else 0.0
    thin = examples < MIN_EXAMPLES_PER_INTENT
    error_prone = errors >= MIN_ERRORS and share >= ERROR_SHARE
    if not (thin or error_prone):
        return None
    if examples == 0:
        what = f"intent '{name}' has no examples yet"
    elif judged:
        what = (
            f"intent '{name}' has {_count(examples, 'example')} and {round(share * 100)} % "
            f"errors ({errors} of {judged} reviewed predictions wrong)"
        )
    else:
        what = f"intent '{name}' has only {_count(examples, 'example')}"
    action = InsightAction.ADD_EXAMPLES if thin else InsightAction.REVIEW_EXAMPLES
    advice = "add examples" if thin else "check its examples and add clearer ones"
    return Insight(
        kind=InsightKind.WEAK_INTENT,
        severity=float(errors + max(0, MIN_EXAMPLES_PER_INTENT - examples)),
        message=f"{what}: {advice}",
        intents=(name,),
        action=action,
    )


# --- intents confused with each other -----------------------------------------------------


def _confused_pairs(session: Session, actor: Actor) -> list[Insight]:
    """Reviewed messages the model gave another intent than the right one, per pair of intents
    in either direction."""
    detected, correct = col(Example.detected_intent), col(Example.correct_intent)
    rows = session.exec(
        select(detected, correct, func.count())
        .where(
            col(Example.tenant_id) == actor.tenant_id,
            col(Example.reviewed),
            detected.is_not(None),
            correct.is_not(None),
            detected != correct,
        )
        .group_by(detected, correct)
    ).all()
    taken_for: defaultdict[tuple[str, str], int] = defaultdict(int)  # (right, predicted) -> n
    for predicted, right, n in rows:
        taken_for[(str(right), str(predicted))] += int(n)
    pairs = {tuple(sorted(key)) for key in taken_for}
    found = (_confused_pair(a, b, taken_for[(a, b)], taken_for[(b, a)]) for a, b in pairs)
    return [insight for insight in found if insight is not None]


def _confused_pair(a: str, b: str, a_as_b: int, b_as_a: int) -> Insight | None:
    total = a_as_b + b_as_a
    if total < MIN_CONFUSIONS:
        return None
    if b_as_a > a_as_b:  # name the intent that is missed more often first
        a, b, a_as_b, b_as_a = b, a, b_as_a, a_as_b
    return Insight(
        kind=InsightKind.CONFUSED_INTENTS,
        severity=float(total),
        message=(
            f"'{a}' and '{b}' are confused {_count(total, 'time')} "
            f"({a_as_b} '{a}' taken for '{b}', {b_as_a} the other way): merge or clarify"
        ),
        intents=(a, b),
        action=InsightAction.MERGE_OR_CLARIFY,
    )


# --- open knowledge gaps --------------------------------------------------------------------


def _open_gaps(session: Session, actor: Actor, limit: int) -> list[Insight]:
    rows = session.exec(
        select(KnowledgeGap)
        .where(
            col(KnowledgeGap.tenant_id) == actor.tenant_id,
            col(KnowledgeGap.status) == GapStatus.OPEN.value,
        )
        .order_by(col(KnowledgeGap.severity).desc(), col(KnowledgeGap.id))
        .limit(max(limit, 0))
    ).all()
    return [_gap_insight(row) for row in rows]


def _gap_insight(gap: KnowledgeGap) -> Insight:
    escalated = round(gap.escalation_rate * gap.size)
    if escalated == gap.size:
        what = f"cluster of {gap.size} escalated messages"
    else:
        what = f"cluster of {gap.size} uncertain messages ({escalated} escalated)"
    about = f" about '{gap.label}'" if gap.label else ""
    nearest = [str(pair[0]) for pair in gap.nearest_intents]
    closest = f" (closest: '{nearest[0]}')" if nearest else ""
    return Insight(
        kind=InsightKind.KNOWLEDGE_GAP,
        severity=float(gap.severity),
        message=f"{what}{about}: create an intent or map it{closest}",
        intents=tuple(nearest),
        action=InsightAction.CREATE_OR_MAP_INTENT,
        gap_id=gap.id,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
