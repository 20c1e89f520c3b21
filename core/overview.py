"""The numbers on each role's Home page, as SQL aggregates over the actor's shop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core.access import Actor
from db.models import Conversation, Example, ExampleStatus, User, utcnow


@dataclass(frozen=True)
class Overview:
    messages_7d: int
    messages_prev_7d: int
    escalated_7d: int
    conversations_7d: int
    pending_review: int
    labelled: int
    total_examples: int
    active_users: int
    top_topics: list[tuple[str, int]]

    @property
    def escalation_rate_7d(self) -> float | None:
        return self.escalated_7d / self.messages_7d if self.messages_7d else None

    @property
    def labelled_share(self) -> float | None:
        return self.labelled / self.total_examples if self.total_examples else None


def shop_overview(*, session: Session, actor: Actor, now: datetime | None = None) -> Overview:
    """Counts for the last 7 days (and the 7 before), review backlog and top topics."""
    now = now or utcnow()
    week, fortnight = now - timedelta(days=7), now - timedelta(days=14)
    mine = col(Example.tenant_id) == actor.tenant_id
    recent = col(Example.created_at) >= week
    prev = (col(Example.created_at) >= fortnight) & (col(Example.created_at) < week)
    # sqlmodel's select() is typed for at most four columns; this one has six.
    row = session.execute(
        sa_select(
            func.count(),
            func.sum(case((recent, 1), else_=0)),
            func.sum(case((prev, 1), else_=0)),
            func.sum(case((recent & col(Example.escalated), 1), else_=0)),
            func.sum(case((col(Example.status) == ExampleStatus.PENDING.value, 1), else_=0)),
            func.sum(case((col(Example.correct_intent).is_not(None), 1), else_=0)),
        ).where(mine)
    ).one()
    total, m7, mprev, esc7, pending, labelled = (int(v or 0) for v in row)
    return Overview(
        messages_7d=m7,
        messages_prev_7d=mprev,
        escalated_7d=esc7,
        conversations_7d=_conversations_since(session, actor, week),
        pending_review=pending,
        labelled=labelled,
        total_examples=total,
        active_users=_active_users(session, actor),
        top_topics=_top_topics(session, actor, now - timedelta(days=30)),
    )


def _conversations_since(session: Session, actor: Actor, since: datetime) -> int:
    return session.exec(
        select(func.count()).where(
            Conversation.tenant_id == actor.tenant_id, Conversation.started_at >= since
        )
    ).one()


def _active_users(session: Session, actor: Actor) -> int:
    return session.exec(
        select(func.count()).where(User.tenant_id == actor.tenant_id, User.is_active)
    ).one()


def _top_topics(session: Session, actor: Actor, since: datetime) -> list[tuple[str, int]]:
    """Labelled intents customers asked about most since `since`."""
    intent = col(Example.correct_intent)
    rows = session.exec(
        select(intent, func.count())
        .where(
            Example.tenant_id == actor.tenant_id, intent.is_not(None), Example.created_at >= since
        )
        .group_by(intent)
        .order_by(func.count().desc(), intent)
        .limit(8)
    ).all()
    return [(str(name), int(n)) for name, n in rows]
