"""What many customers of one shop share: patterns, and knowledge an admin approves.

`aggregate` rebuilds the shop's patterns in SQL: a (kind, key, value) that at least
`pattern_customers` customers hold as a current memory at `pattern_confidence` or more. For
each pattern it counts the conversations its holders started after they first said it whose
outcome is known (resolved set, or escalated), and those that ended resolved without
escalation: the success rate. Patterns with at least `knowledge_customers` customers and a
success rate of at least `knowledge_success` are proposed as knowledge; nothing becomes
knowledge until an admin approves it (audited), and approved knowledge can be withdrawn.
Everything stays inside the shop: every query filters on the actor's tenant, and RLS backs it.
Names and important dates are personal: two customers called Ann are not a pattern, so those
kinds never become patterns or knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    text,
    update,
)
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core import audit
from core.access import Actor, Role, require_role
from core.errors import InvalidInput, NotFound, StaleEdit
from core.memory_rules import MemoryKind
from core.shop_settings import compare_and_set, settings_id
from db.engine import is_postgres
from db.models import (
    Conversation,
    CustomerMemory,
    GlobalKnowledge,
    KnowledgeStatus,
    MemoryPattern,
    MemoryState,
    Message,
    ShopSettings,
    utcnow,
)

LOCK_CLASS = 0x6D65_6D61  # advisory lock class for one shop's aggregation ("mema")
PAGE = 200
PERSONAL_KINDS = (MemoryKind.PERSONAL_INFO.value, MemoryKind.IMPORTANT_DATE.value)

# --- thresholds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryThresholds:
    pattern_customers: int = 2
    pattern_confidence: float = 0.7
    knowledge_customers: int = 5
    knowledge_success: float = 0.8
    version: int = 0  # 0: never saved, the defaults apply

    def values(self) -> dict[str, float]:
        return {
            "pattern_customers": self.pattern_customers,
            "pattern_confidence": self.pattern_confidence,
            "knowledge_customers": self.knowledge_customers,
            "knowledge_success": self.knowledge_success,
        }


def memory_thresholds(*, session: Session, actor: Actor) -> MemoryThresholds:
    """The shop's memory thresholds, or the defaults until an admin saves some (admin, manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    row = session.exec(
        select(ShopSettings).where(ShopSettings.tenant_id == actor.tenant_id)
    ).first()
    if row is None:
        return MemoryThresholds()
    return MemoryThresholds(
        row.memory_pattern_customers,
        row.memory_pattern_confidence,
        row.memory_knowledge_customers,
        row.memory_knowledge_success,
        row.memory_version,
    )


def set_memory_thresholds(
    *, session: Session, actor: Actor, new: MemoryThresholds, expected_version: int
) -> MemoryThresholds:
    """Change the memory thresholds (admin; audited; refuses a stale edit). They apply from
    the next aggregation."""
    require_role(actor, Role.ADMIN)
    if min(new.pattern_customers, new.knowledge_customers) < 2:
        raise InvalidInput("A pattern needs at least 2 customers, and so does knowledge.")
    if new.knowledge_customers < new.pattern_customers:
        raise InvalidInput("Knowledge needs at least as many customers as a pattern.")
    for name in ("pattern_confidence", "knowledge_success"):
        if not 0 <= getattr(new, name) <= 1:
            raise InvalidInput(f"The {name.replace('_', ' ')} must lie between 0 and 1.")
    before = memory_thresholds(session=session, actor=actor)
    values = {f"memory_{k}": v for k, v in new.values().items()}
    if before.version != expected_version or not compare_and_set(
        session=session,
        actor=actor,
        version_field="memory_version",
        expected_version=expected_version,
        values=values,
    ):
        raise StaleEdit(
            "Another admin changed the memory thresholds since you loaded them; "
            "the page now shows the current values.",
            current=before,
        )
    audit.record(
        session=session,
        actor=actor,
        action="settings.memory_thresholds",
        entity_type="shop_settings",
        entity_id=settings_id(session=session, actor=actor),
        before=before.values(),
        after=new.values(),
    )
    return replace(new, version=expected_version + 1)


# --- aggregation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AggregateResult:
    patterns: int
    proposed_knowledge: int  # knowledge waiting for an admin after this aggregation
    newly_proposed: int


def aggregate(*, session: Session, actor: Actor) -> AggregateResult:
    """Rebuild the shop's patterns and propose knowledge (admin, or the scheduled job)."""
    require_role(actor, Role.ADMIN)
    limits = memory_thresholds(session=session, actor=actor)
    if is_postgres(session.connection()):
        keys = (cast(literal(LOCK_CLASS), Integer), cast(literal(actor.tenant_id), Integer))
        # Two admins pressing "aggregate now" at once: one waits for the other.
        session.execute(select(func.pg_advisory_xact_lock(*keys)))
        # One large grouping: sort in memory, and compiling it (JIT) costs more than it saves.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))
    session.exec(delete(MemoryPattern).where(col(MemoryPattern.tenant_id) == actor.tenant_id))
    session.execute(_insert_patterns(actor, limits))
    patterns = session.exec(
        select(func.count())
        .select_from(MemoryPattern)
        .where(MemoryPattern.tenant_id == actor.tenant_id)
    ).one()
    newly = _propose(session, actor, limits)
    proposed = session.exec(
        select(func.count())
        .select_from(GlobalKnowledge)
        .where(
            GlobalKnowledge.tenant_id == actor.tenant_id,
            GlobalKnowledge.status == KnowledgeStatus.PROPOSED.value,
        )
    ).one()
    return AggregateResult(int(patterns), int(proposed), newly)


def _insert_patterns(actor: Actor, limits: MemoryThresholds) -> Any:
    """INSERT … SELECT in one pass: each held memory with its holder's later conversations
    (those started after the customer first said it, outcome known), then per value."""
    m = CustomerMemory.__table__.alias("m")  # type: ignore[attr-defined]
    c = Conversation.__table__.alias("c")  # type: ignore[attr-defined]
    success = case((and_(c.c.resolved.is_(True), c.c.escalated.is_(False)), 1), else_=0)
    per_holder = (
        sa_select(
            m.c.kind,
            m.c.key,
            m.c.value,
            m.c.confidence,
            func.count(c.c.id).label("conversations"),
            func.coalesce(func.sum(success), 0).label("successes"),
        )
        .outerjoin(
            c,
            and_(
                c.c.tenant_id == actor.tenant_id,
                c.c.customer_id == m.c.customer_id,
                c.c.started_at > m.c.since,
                or_(c.c.resolved.is_not(None), c.c.escalated.is_(True)),
            ),
        )
        .where(
            m.c.tenant_id == actor.tenant_id,
            m.c.state == MemoryState.CURRENT.value,
            m.c.confidence >= limits.pattern_confidence,
            m.c.kind.not_in(PERSONAL_KINDS),
        )
        .group_by(m.c.id, m.c.kind, m.c.key, m.c.value, m.c.confidence)
        .subquery("h")
    )
    # One current memory per (customer, kind, key): each holder row is one customer.
    rows = (
        sa_select(
            literal(actor.tenant_id),
            per_holder.c.kind,
            per_holder.c.key,
            per_holder.c.value,
            func.count(),
            cast(func.avg(per_holder.c.confidence), Float),
            cast(func.sum(per_holder.c.conversations), Integer),
            cast(func.sum(per_holder.c.successes), Integer),
            literal(utcnow()),
        )
        .group_by(per_holder.c.kind, per_holder.c.key, per_holder.c.value)
        .having(func.count() >= limits.pattern_customers)
    )
    columns = [
        "tenant_id",
        "kind",
        "key",
        "value",
        "customers",
        "avg_confidence",
        "conversations",
        "successes",
        "computed_at",
    ]
    return insert(MemoryPattern).from_select(columns, rows)


def _propose(session: Session, actor: Actor, limits: MemoryThresholds) -> int:
    """From the new patterns, in SQL: drop proposals that no longer qualify (decided knowledge
    keeps its status), refresh the figures of the rest, propose the new ones; their count."""
    k, p = GlobalKnowledge.__table__, MemoryPattern.__table__  # type: ignore[attr-defined]
    same = and_(p.c.kind == k.c.kind, p.c.key == k.c.key, p.c.value == k.c.value)
    qualifies = and_(
        p.c.tenant_id == actor.tenant_id,
        p.c.customers >= limits.knowledge_customers,
        p.c.conversations > 0,
        cast(p.c.successes, Float) >= limits.knowledge_success * p.c.conversations,
    )
    rate = cast(p.c.successes, Float) / p.c.conversations
    session.execute(
        delete(k).where(
            k.c.tenant_id == actor.tenant_id,
            k.c.status == KnowledgeStatus.PROPOSED.value,
            ~sa_select(p.c.id).where(qualifies, same).exists(),
        )
    )
    figures = {
        "customers": p.c.customers,
        "avg_confidence": p.c.avg_confidence,
        "conversations": p.c.conversations,
        "success_rate": rate,
    }
    session.execute(
        update(k)
        .where(k.c.tenant_id == actor.tenant_id, qualifies, same)
        .values(**figures, updated_at=utcnow())
    )
    now = utcnow()
    new = sa_select(
        p.c.tenant_id,
        p.c.kind,
        p.c.key,
        p.c.value,
        literal(KnowledgeStatus.PROPOSED.value),
        *figures.values(),
        literal(now),
        literal(now),
        literal(1),
    ).where(
        qualifies,
        ~sa_select(k.c.id).where(k.c.tenant_id == actor.tenant_id, same).exists(),
    )
    columns = ["tenant_id", "kind", "key", "value", "status", *figures, "proposed_at"]
    statement = insert(k).from_select([*columns, "updated_at", "version"], new)
    return len(session.execute(statement.returning(k.c.id)).all())


# --- reading patterns and knowledge ----------------------------------------------------------


@dataclass(frozen=True)
class PatternView:
    kind: str
    key: str
    value: str
    customers: int
    avg_confidence: float
    conversations: int
    success_rate: float | None
    computed_at: datetime


def list_patterns(
    *, session: Session, actor: Actor, kind: str | None = None, limit: int = PAGE
) -> list[PatternView]:
    """The shop's patterns, most widely held first (admin)."""
    require_role(actor, Role.ADMIN)
    statement = select(MemoryPattern).where(MemoryPattern.tenant_id == actor.tenant_id)
    if kind:
        statement = statement.where(MemoryPattern.kind == kind)
    rows = session.exec(
        statement.order_by(
            col(MemoryPattern.customers).desc(),
            col(MemoryPattern.avg_confidence).desc(),
            col(MemoryPattern.id),
        ).limit(limit)
    ).all()
    return [
        PatternView(
            p.kind,
            p.key,
            p.value,
            p.customers,
            p.avg_confidence,
            p.conversations,
            p.successes / p.conversations if p.conversations else None,
            p.computed_at,
        )
        for p in rows
    ]


@dataclass(frozen=True)
class KnowledgeView:
    id: int
    kind: str
    key: str
    value: str
    status: str
    customers: int
    avg_confidence: float
    success_rate: float
    conversations: int
    proposed_at: datetime
    decided_at: datetime | None
    note: str | None
    version: int


def list_knowledge(
    *, session: Session, actor: Actor, status: str | None = None
) -> list[KnowledgeView]:
    """The shop's knowledge, proposals first (admin)."""
    require_role(actor, Role.ADMIN)
    statement = select(GlobalKnowledge).where(GlobalKnowledge.tenant_id == actor.tenant_id)
    if status:
        statement = statement.where(GlobalKnowledge.status == status)
    order = case(
        (col(GlobalKnowledge.status) == KnowledgeStatus.PROPOSED.value, 0),
        (col(GlobalKnowledge.status) == KnowledgeStatus.APPROVED.value, 1),
        else_=2,
    )
    rows = session.exec(
        statement.order_by(order, col(GlobalKnowledge.customers).desc(), col(GlobalKnowledge.id))
    ).all()
    return [_knowledge_view(k) for k in rows]


def _knowledge_view(k: GlobalKnowledge) -> KnowledgeView:
    assert k.id is not None
    return KnowledgeView(
        k.id,
        k.kind,
        k.key,
        k.value,
        k.status,
        k.customers,
        k.avg_confidence,
        k.success_rate,
        k.conversations,
        k.proposed_at,
        k.decided_at,
        k.note,
        k.version,
    )


# Which decision may follow which status.
DECISIONS = {
    "approve": (
        KnowledgeStatus.APPROVED,
        (KnowledgeStatus.PROPOSED, KnowledgeStatus.REJECTED, KnowledgeStatus.WITHDRAWN),
    ),
    "reject": (KnowledgeStatus.REJECTED, (KnowledgeStatus.PROPOSED,)),
    "withdraw": (KnowledgeStatus.WITHDRAWN, (KnowledgeStatus.APPROVED,)),
}


def decide(
    *,
    session: Session,
    actor: Actor,
    knowledge_id: int,
    decision: str,
    expected_version: int,
    note: str | None = None,
) -> KnowledgeView:
    """Approve, reject or withdraw knowledge (admin; audited; refuses a stale decision)."""
    require_role(actor, Role.ADMIN)
    if decision not in DECISIONS:
        raise InvalidInput(f"Unknown decision {decision!r}: approve, reject or withdraw.")
    target, allowed_from = DECISIONS[decision]
    item = session.exec(
        select(GlobalKnowledge).where(
            GlobalKnowledge.tenant_id == actor.tenant_id, GlobalKnowledge.id == knowledge_id
        )
    ).first()
    if item is None:
        raise NotFound(f"Knowledge {knowledge_id} does not exist in this shop.")
    if item.version != expected_version:
        raise StaleEdit("Another admin decided on this knowledge since you loaded it; reload.")
    if item.status not in {s.value for s in allowed_from}:
        raise InvalidInput(f"Knowledge that is {item.status} cannot be {target.value}.")
    now = utcnow()
    changed = session.exec(
        update(GlobalKnowledge)
        .where(
            col(GlobalKnowledge.tenant_id) == actor.tenant_id,
            col(GlobalKnowledge.id) == knowledge_id,
            col(GlobalKnowledge.version) == expected_version,
        )
        .values(
            status=target.value,
            decided_at=now,
            decided_by=actor.user_id,
            updated_at=now,
            note=(note or "").strip() or None,
            version=expected_version + 1,
        )
    ).rowcount
    if changed != 1:
        raise StaleEdit("Another admin decided on this knowledge since you loaded it; reload.")
    audit.record(
        session=session,
        actor=actor,
        action=f"memory.knowledge_{decision}",
        entity_type="global_knowledge",
        entity_id=knowledge_id,
        before={"status": item.status},
        after={"status": target.value, "kind": item.kind, "key": item.key, "value": item.value},
        reason=note,
    )
    session.refresh(item)
    return _knowledge_view(item)


# --- counts and customer analytics ---------------------------------------------------------


@dataclass(frozen=True)
class MemoryOverview:
    memories: int  # current
    customers: int  # with at least one current memory
    by_kind: dict[str, int]
    patterns: int
    knowledge: dict[str, int]  # by status
    last_aggregated: datetime | None


def overview(*, session: Session, actor: Actor) -> MemoryOverview:
    """Counts only, never a customer's memories (admin, manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    current = and_(
        col(CustomerMemory.tenant_id) == actor.tenant_id,
        col(CustomerMemory.state) == MemoryState.CURRENT.value,
    )
    by_kind = dict(
        session.exec(
            select(CustomerMemory.kind, func.count())
            .where(current)
            .group_by(col(CustomerMemory.kind))
        ).all()
    )
    customers = session.exec(
        select(func.count(func.distinct(CustomerMemory.customer_id))).where(current)
    ).one()
    patterns, last = session.exec(
        select(func.count(), func.max(MemoryPattern.computed_at)).where(
            MemoryPattern.tenant_id == actor.tenant_id
        )
    ).one()
    knowledge = dict(
        session.exec(
            select(GlobalKnowledge.status, func.count())
            .where(GlobalKnowledge.tenant_id == actor.tenant_id)
            .group_by(col(GlobalKnowledge.status))
        ).all()
    )
    return MemoryOverview(
        sum(by_kind.values()), int(customers), by_kind, int(patterns), knowledge, last
    )


@dataclass(frozen=True)
class CustomerStats:
    customer_id: str
    memories: int
    interactions: int  # customer messages
    conversations: int  # with a known outcome
    success_rate: float | None
    memories_percentile: float  # share of the shop's customers at or below, 0..100
    interactions_percentile: float
    success_percentile: float | None


def _per_customer(actor: Actor) -> Any:
    """One row per customer of the shop: memory, interaction and outcome counts (SQL)."""
    customer = col(Conversation.customer_id)
    resolved, escalated = col(Conversation.resolved), col(Conversation.escalated)
    of_shop = (col(Conversation.tenant_id) == actor.tenant_id, customer != "")
    conv = (
        select(
            customer.label("customer_id"),
            func.count().label("conversations"),
            func.sum(case((or_(resolved.is_not(None), escalated), 1), else_=0)).label("known"),
            func.sum(case((and_(resolved.is_(True), escalated.is_(False)), 1), else_=0)).label(
                "successes"
            ),
        )
        .where(*of_shop)
        .group_by(customer)
        .subquery("conv")
    )
    msgs = (
        select(customer.label("customer_id"), func.count().label("n"))
        .join(
            Message,
            and_(
                col(Message.tenant_id) == actor.tenant_id,
                col(Message.conversation_id) == col(Conversation.id),
            ),
        )
        .where(*of_shop, col(Message.role) == "customer")
        .group_by(customer)
        .subquery("msgs")
    )
    mem = (
        select(col(CustomerMemory.customer_id).label("customer_id"), func.count().label("n"))
        .where(
            col(CustomerMemory.tenant_id) == actor.tenant_id,
            col(CustomerMemory.state) == MemoryState.CURRENT.value,
        )
        .group_by(col(CustomerMemory.customer_id))
        .subquery("mem")
    )
    memories = func.coalesce(mem.c.n, 0)
    interactions = func.coalesce(msgs.c.n, 0)
    rate = case(
        (conv.c.known > 0, cast(conv.c.successes, Float) / conv.c.known), else_=literal(None)
    )
    return (
        sa_select(
            conv.c.customer_id,
            memories.label("memories"),
            interactions.label("interactions"),
            conv.c.known.label("known"),
            rate.label("rate"),
            (func.cume_dist().over(order_by=memories) * 100).label("p_mem"),
            (func.cume_dist().over(order_by=interactions) * 100).label("p_int"),
            (func.cume_dist().over(partition_by=rate.is_(None), order_by=rate) * 100).label(
                "p_rate"
            ),
        )
        .outerjoin(msgs, msgs.c.customer_id == conv.c.customer_id)
        .outerjoin(mem, mem.c.customer_id == conv.c.customer_id)
        .subquery("per_customer")
    )


SORTS = ("memories", "interactions", "rate")


def customer_stats(
    *, session: Session, actor: Actor, sort: str = "memories", limit: int = 100, offset: int = 0
) -> list[CustomerStats]:
    """Per customer: memories, interactions, success rate and each one's percentile among the
    shop's customers (SQL window functions), one page at a time (admin)."""
    require_role(actor, Role.ADMIN)
    if sort not in SORTS:
        raise InvalidInput(f"Sort by one of {', '.join(SORTS)}.")
    per = _per_customer(actor)
    key = per.c[sort]
    rows = session.execute(
        select(per)
        .order_by(key.is_(None), key.desc(), per.c.customer_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        CustomerStats(
            r.customer_id,
            int(r.memories),
            int(r.interactions),
            int(r.known or 0),
            None if r.rate is None else float(r.rate),
            float(r.p_mem),
            float(r.p_int),
            None if r.rate is None else float(r.p_rate),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Distributions:
    """How many customers have each count: aggregates a manager may see."""

    memories: list[tuple[int, int]]  # (memories, customers)
    interactions: list[tuple[int, int]]
    success: list[tuple[int, int]]  # (success rate in tenths, 0..10; customers)


def distributions(*, session: Session, actor: Actor) -> Distributions:
    """Customers per memory count, interaction count and success-rate decile (admin, manager)."""
    require_role(actor, Role.ADMIN, Role.MANAGER)
    per = _per_customer(actor)

    def histogram(column: Any) -> list[tuple[int, int]]:
        rows = session.execute(
            select(column, func.count())
            .where(column.is_not(None))
            .group_by(column)
            .order_by(column)
        ).all()
        return [(int(v), int(n)) for v, n in rows]

    deciles: dict[int, int] = {}
    for rate, customers in histogram_raw(session, per.c.rate):
        deciles[int(rate * 10)] = deciles.get(int(rate * 10), 0) + customers
    return Distributions(
        histogram(per.c.memories), histogram(per.c.interactions), sorted(deciles.items())
    )


def histogram_raw(session: Session, column: Any) -> list[tuple[float, int]]:
    """(value, customers) per distinct value; success rates are few distinct fractions, and
    SQLite and PostgreSQL disagree on rounding a float to an integer."""
    rows = session.execute(
        select(column, func.count()).where(column.is_not(None)).group_by(column)
    ).all()
    return [(float(v), int(n)) for v, n in rows]
