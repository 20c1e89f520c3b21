"""Customer memories: what the assistant learns about each customer, with where it came from.

Every customer message stored (live through `core.ingest.record_interaction`, or a backfill
over stored messages) runs through the shop's extraction rules (`core.memory_rules`). Each
memory keeps its source message; a newer memory on the same (customer, kind, key) supersedes
the current one, which stays as history. Admins correct a memory (a new row that supersedes
it), delete a wrong one (kept as a tombstone so extraction does not bring it back) or forget a
customer entirely: every memory row, and the text of every message of theirs, is gone.

Roles: admins read and change customers' memories; managers see only `overview` (counts);
florists see none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Integer, and_, case, cast, delete, func, literal, union, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core import audit, review_groups
from core.access import Actor, Role, require_role
from core.errors import InvalidInput, NotFound, StaleEdit
from core.memory_rules import (
    DEFAULT_RULES,
    CompiledRules,
    Extracted,
    MemoryKind,
    RuleSpec,
    check_rule,
    compile_rules,
    extract,
    is_junk,
    parse_date_value,
)
from core.sql import insert_unless_exists
from core.text import text_hash
from db.engine import is_postgres, session_scope
from db.models import (
    Conversation,
    Correction,
    CustomerMemory,
    Example,
    ExampleStatus,
    KnowledgeGap,
    MemoryRule,
    MemoryState,
    Message,
    utcnow,
)

LOCK_CLASS = 0x6D65_6D6F  # the first key of the shop's memory-writer advisory lock ("memo")
BACKFILL_BATCH = 2_000
MAX_VALUE_LENGTH = 200
ProgressFn = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleView:
    id: int
    name: str
    kind: str
    phrase: str
    key: str
    confidence: float
    is_active: bool
    builtin: bool
    memories: int  # rows it produced, history included
    version: int


def ensure_default_rules(*, session: Session, actor: Actor) -> None:
    """Give the shop the default rules if it has none yet (concurrency-safe)."""
    if session.exec(select(MemoryRule.id).where(MemoryRule.tenant_id == actor.tenant_id)).first():
        return
    for spec in DEFAULT_RULES:
        row = MemoryRule(
            tenant_id=actor.tenant_id,
            name=spec.name,
            kind=spec.kind,
            phrase=spec.phrase,
            key=spec.key,
            confidence=spec.confidence,
            builtin=True,
        )
        statement = insert_unless_exists(session, MemoryRule, ["tenant_id", "name"])
        session.execute(statement.values(**row.model_dump(exclude={"id"})))


def list_rules(*, session: Session, actor: Actor) -> list[RuleView]:
    """The shop's rules with how many memories each produced (admin)."""
    require_role(actor, Role.ADMIN)
    ensure_default_rules(session=session, actor=actor)
    produced = (
        select(CustomerMemory.rule_id, func.count().label("n"))
        .where(CustomerMemory.tenant_id == actor.tenant_id)
        .group_by(col(CustomerMemory.rule_id))
        .subquery()
    )
    rows = session.exec(
        select(MemoryRule, func.coalesce(produced.c.n, 0))
        .outerjoin(produced, produced.c.rule_id == col(MemoryRule.id))
        .where(MemoryRule.tenant_id == actor.tenant_id)
        .order_by(col(MemoryRule.builtin).desc(), col(MemoryRule.id))
    ).all()
    return [_rule_view(rule, int(n)) for rule, n in rows]


def _rule_view(rule: MemoryRule, memories: int) -> RuleView:
    assert rule.id is not None
    return RuleView(
        rule.id,
        rule.name,
        rule.kind,
        rule.phrase,
        rule.key,
        rule.confidence,
        rule.is_active,
        rule.builtin,
        memories,
        rule.version,
    )


def add_rule(
    *,
    session: Session,
    actor: Actor,
    name: str,
    kind: str,
    phrase: str,
    key: str,
    confidence: float,
) -> RuleView:
    """Add an extraction rule to the shop (admin; audited). The phrase is checked first."""
    require_role(actor, Role.ADMIN)
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("A rule needs a name of 1 to 100 characters.")
    check_rule(kind=kind, phrase=phrase, key=key, confidence=confidence)
    ensure_default_rules(session=session, actor=actor)
    taken = session.exec(
        select(MemoryRule.id).where(
            MemoryRule.tenant_id == actor.tenant_id, MemoryRule.name == name
        )
    ).first()
    if taken is not None:
        raise InvalidInput(f"A rule named {name!r} exists already; choose another name.")
    rule = MemoryRule(
        tenant_id=actor.tenant_id,
        name=name,
        kind=kind,
        phrase=phrase.strip(),
        key=key.strip(),
        confidence=confidence,
        created_by=actor.user_id,
    )
    session.add(rule)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action="memory.rule_add",
        entity_type="memory_rule",
        entity_id=rule.id,
        after={"name": name, "kind": kind, "phrase": rule.phrase, "key": rule.key},
    )
    return _rule_view(rule, 0)


def set_rule_active(
    *, session: Session, actor: Actor, rule_id: int, active: bool, expected_version: int
) -> RuleView:
    """Turn a rule on or off (admin; audited; refuses a stale edit). Its memories stay."""
    require_role(actor, Role.ADMIN)
    rule = session.exec(
        select(MemoryRule).where(MemoryRule.tenant_id == actor.tenant_id, MemoryRule.id == rule_id)
    ).first()
    if rule is None:
        raise NotFound(f"Rule {rule_id} does not exist in this shop.")
    changed = session.exec(
        update(MemoryRule)
        .where(
            col(MemoryRule.tenant_id) == actor.tenant_id,
            col(MemoryRule.id) == rule_id,
            col(MemoryRule.version) == expected_version,
        )
        .values(is_active=active, version=expected_version + 1, updated_at=utcnow())
    ).rowcount
    if changed != 1:
        raise StaleEdit(f"Rule {rule.name!r} changed since you loaded it; reload and try again.")
    audit.record(
        session=session,
        actor=actor,
        action="memory.rule_enable" if active else "memory.rule_disable",
        entity_type="memory_rule",
        entity_id=rule_id,
        before={"active": rule.is_active},
        after={"active": active},
    )
    session.refresh(rule)
    count = session.exec(
        select(func.count())
        .select_from(CustomerMemory)
        .where(CustomerMemory.tenant_id == actor.tenant_id, CustomerMemory.rule_id == rule_id)
    ).one()
    return _rule_view(rule, int(count))


def active_rules(*, session: Session, actor: Actor) -> CompiledRules:
    """The shop's active rules, compiled (compiled once per set of rule versions)."""
    ensure_default_rules(session=session, actor=actor)
    rows = session.execute(
        sa_select(
            col(MemoryRule.id),
            col(MemoryRule.version),
            col(MemoryRule.name),
            col(MemoryRule.kind),
            col(MemoryRule.phrase),
            col(MemoryRule.key),
            col(MemoryRule.confidence),
        )
        .where(col(MemoryRule.tenant_id) == actor.tenant_id, col(MemoryRule.is_active))
        .order_by(col(MemoryRule.id))
    ).all()
    return _compiled(tuple(tuple(row) for row in rows))


@lru_cache(maxsize=256)
def _compiled(rows: tuple[tuple[Any, ...], ...]) -> CompiledRules:
    return compile_rules(
        RuleSpec(rid, name, kind, phrase, key, confidence)
        for rid, _version, name, kind, phrase, key, confidence in rows
    )


# --------------------------------------------------------------------------------------------
# Extraction and supersession
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A customer message memories are extracted from."""

    customer_id: str
    message_id: int
    conversation_id: int
    text: str
    at: datetime


def remember(
    *, session: Session, actor: Actor, source: Source, rules: CompiledRules | None = None
) -> list[CustomerMemory]:
    """Extract memories from one customer message and store them (admin or the assistant).

    Idempotent: a message yields a given (kind, key) once, however often it is extracted."""
    require_role(actor, Role.ADMIN)
    if not source.customer_id:
        return []
    found = extract(rules or active_rules(session=session, actor=actor), source.text)
    return _store_all(session, actor, [(source, found)]) if found else []


def _lock_memories(session: Session, actor: Actor) -> None:
    """Serialize the shop's memory writers (two replicas storing memories of one customer).
    Taken only when a message told something; ingest takes review_groups' lock after it."""
    if is_postgres(session.connection()):
        keys = (cast(literal(LOCK_CLASS), Integer), cast(literal(actor.tenant_id), Integer))
        session.execute(select(func.pg_advisory_xact_lock(*keys)))


Found = list[tuple[Source, list[Extracted]]]


def _store_all(session: Session, actor: Actor, found: Found) -> list[CustomerMemory]:
    """Store what a batch of messages told, in message order: what is already stored from
    the same message is skipped; a newer memory supersedes the current one on its key."""
    _lock_memories(session, actor)
    seen = _already_extracted(session, actor, [source.message_id for source, _ in found])
    currents = _currents(session, actor, {source.customer_id for source, _ in found})
    stored = []
    for source, items in found:
        for item in items:
            if (source.message_id, item.kind, item.key) in seen:
                continue
            seen.add((source.message_id, item.kind, item.key))
            key = (source.customer_id, item.kind, item.key)
            row = _new_memory(actor, source, item)
            current = currents.get(key)
            if current is None:
                session.add(row)
                currents[key] = row
            elif _as_aware(current.observed_at) <= _as_aware(source.at):
                _supersede(session, current, row)
                currents[key] = row
            else:  # an older message extracted late (a backfill after live traffic)
                _file_as_history(session, current, row)
            stored.append(row)
    session.flush()
    return stored


def _new_memory(actor: Actor, source: Source, item: Extracted) -> CustomerMemory:
    return CustomerMemory(
        tenant_id=actor.tenant_id,
        customer_id=source.customer_id,
        kind=item.kind,
        key=item.key,
        value=item.value[:MAX_VALUE_LENGTH],
        date_value=item.date_value,
        confidence=item.confidence,
        rule_id=item.rule_id,
        message_id=source.message_id,
        conversation_id=source.conversation_id,
        observed_at=source.at,
        since=source.at,
    )


def _already_extracted(
    session: Session, actor: Actor, message_ids: list[int]
) -> set[tuple[int, str, str]]:
    rows = session.execute(
        sa_select(
            col(CustomerMemory.message_id), col(CustomerMemory.kind), col(CustomerMemory.key)
        ).where(
            col(CustomerMemory.tenant_id) == actor.tenant_id,
            col(CustomerMemory.message_id).in_(message_ids),
        )
    ).all()
    return {(int(m), k, key) for m, k, key in rows}


def _currents(
    session: Session, actor: Actor, customers: set[str]
) -> dict[tuple[str, str, str], CustomerMemory]:
    rows = session.exec(
        select(CustomerMemory).where(
            CustomerMemory.tenant_id == actor.tenant_id,
            col(CustomerMemory.customer_id).in_(sorted(customers)),
            CustomerMemory.state == MemoryState.CURRENT.value,
        )
    ).all()
    return {(m.customer_id, m.kind, m.key): m for m in rows}


def _supersede(session: Session, current: CustomerMemory, new: CustomerMemory) -> None:
    """`new` becomes the current memory; `current` becomes its history."""
    if current.value == new.value:  # said again: the value has been held since the first time
        new.since = current.since
        new.mentions = current.mentions + 1
        new.confidence = max(new.confidence, current.confidence)
    now = utcnow()
    current.state = MemoryState.SUPERSEDED.value
    current.ended_at = now
    current.updated_at = now
    current.version += 1
    session.add(current)
    session.flush()  # the partial unique index allows one current row at a time
    session.add(new)
    session.flush()
    current.superseded_by = new.id
    session.add(current)


def _file_as_history(session: Session, current: CustomerMemory, old: CustomerMemory) -> None:
    old.state = MemoryState.SUPERSEDED.value
    old.ended_at = current.observed_at
    old.superseded_by = current.id
    if old.value == current.value:
        current.since = min(_as_aware(current.since), _as_aware(old.since))
        current.mentions += 1
        session.add(current)
    session.add(old)


def _as_aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class BackfillResult:
    messages: int
    memories: int


def extract_stored(
    *, engine: Engine, actor: Actor, progress: ProgressFn | None = None, batch: int = BACKFILL_BATCH
) -> BackfillResult:
    """Run the rules over every stored customer message of the shop (admin), a batch per
    transaction; safe to run again or to interrupt (extraction is idempotent)."""
    require_role(actor, Role.ADMIN)
    with session_scope(actor, engine=engine) as session:
        total = int(session.exec(_customer_messages(actor, count=True)).one())
        rules = active_rules(session=session, actor=actor)
    done = memories = after = 0
    while True:
        with session_scope(actor, engine=engine) as session:
            read, added, after = _extract_batch(session, actor, rules, after, batch)
        done, memories = done + read, memories + added
        if not read:
            return BackfillResult(done, memories)
        if progress:
            progress(done, max(total, done))


def extract_in_session(*, session: Session, actor: Actor) -> BackfillResult:
    """`extract_stored` inside the caller's transaction (the demo, small shops, tests)."""
    require_role(actor, Role.ADMIN)
    rules = active_rules(session=session, actor=actor)
    done = memories = after = 0
    while True:
        read, added, after = _extract_batch(session, actor, rules, after, BACKFILL_BATCH)
        done, memories = done + read, memories + added
        if not read:
            return BackfillResult(done, memories)


def extract_messages(*, session: Session, actor: Actor, message_ids: Collection[int]) -> int:
    """Extract from these stored messages (an import of conversations), in the caller's
    transaction; only customer messages of known customers count. The memories added."""
    require_role(actor, Role.ADMIN)
    rules, added, ids = active_rules(session=session, actor=actor), 0, sorted(message_ids)
    for chunk in _chunks(ids, BACKFILL_BATCH):
        rows = session.exec(_customer_messages(actor).where(col(Message.id).in_(chunk)))
        found = [
            (Source(customer, mid, cid, text, at), items)
            for mid, cid, customer, text, at in rows.all()
            if (items := extract(rules, text))
        ]
        added += len(_store_all(session, actor, found)) if found else 0
    return added


def _extract_batch(
    session: Session, actor: Actor, rules: CompiledRules, after: int, batch: int
) -> tuple[int, int, int]:
    """Extract from the next `batch` customer messages after id `after`:
    (messages read, memories added, the last id read)."""
    rows = session.exec(_customer_messages(actor).where(col(Message.id) > after).limit(batch))
    read, found = 0, []
    for message_id, conversation_id, customer_id, text, at in rows.all():
        read, after = read + 1, message_id
        items = extract(rules, text)
        if items:
            found.append((Source(customer_id, message_id, conversation_id, text, at), items))
    added = len(_store_all(session, actor, found)) if found else 0
    return read, added, after


def _customer_messages(actor: Actor, *, count: bool = False) -> Any:
    joined = and_(
        col(Conversation.tenant_id) == actor.tenant_id,
        col(Conversation.id) == col(Message.conversation_id),
    )
    where = (
        col(Message.tenant_id) == actor.tenant_id,
        col(Message.role) == "customer",
        col(Conversation.customer_id) != "",
        col(Message.text) != "",
    )
    if count:
        return select(func.count()).select_from(Message).join(Conversation, joined).where(*where)
    return (
        sa_select(
            col(Message.id),
            col(Message.conversation_id),
            col(Conversation.customer_id),
            col(Message.text),
            col(Message.created_at),
        )
        .join(Conversation, joined)
        .where(*where)
        .order_by(col(Message.id))
    )


# --------------------------------------------------------------------------------------------
# Reading a customer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryView:
    id: int
    customer_id: str
    kind: str
    key: str
    value: str
    date_value: date | None
    confidence: float
    mentions: int
    state: str
    rule_name: str | None  # None: written by an admin
    message_id: int | None
    message_text: str | None
    conversation: str | None  # the conversation's external id (links to it)
    observed_at: datetime
    since: datetime
    ended_at: datetime | None
    version: int


@dataclass(frozen=True)
class CustomerSummary:
    customer_id: str
    memories: int
    conversations: int
    last_seen: datetime | None


def find_customers(
    *, session: Session, actor: Actor, query: str = "", limit: int = 50
) -> list[CustomerSummary]:
    """Customers whose id, or one of whose current memories, contains `query` (admin)."""
    require_role(actor, Role.ADMIN)
    query = query.strip()
    conv = (
        select(
            Conversation.customer_id,
            func.count().label("conversations"),
            func.max(Conversation.ended_at).label("last_seen"),
        )
        .where(Conversation.tenant_id == actor.tenant_id, Conversation.customer_id != "")
        .group_by(col(Conversation.customer_id))
    )
    counted = select(CustomerMemory.customer_id, func.count().label("memories")).where(
        CustomerMemory.tenant_id == actor.tenant_id,
        CustomerMemory.state == MemoryState.CURRENT.value,
    )
    if query:  # the customers found first; then only their conversations and memories
        pattern = f"%{_like_escape(query.lower())}%"
        matched = union(
            select(Conversation.customer_id).where(
                Conversation.tenant_id == actor.tenant_id,
                Conversation.customer_id != "",
                func.lower(Conversation.customer_id).like(pattern, escape="\\"),
            ),
            select(CustomerMemory.customer_id).where(
                CustomerMemory.tenant_id == actor.tenant_id,
                CustomerMemory.state == MemoryState.CURRENT.value,
                func.lower(CustomerMemory.value).like(pattern, escape="\\"),
            ),
        ).subquery("matched")
        found = select(matched.c.customer_id)
        conv = conv.where(col(Conversation.customer_id).in_(found))
        counted = counted.where(col(CustomerMemory.customer_id).in_(found))
    conv_sub = conv.subquery()
    mem = counted.group_by(col(CustomerMemory.customer_id)).subquery()
    memories = func.coalesce(mem.c.memories, 0)
    rows = session.exec(
        select(conv_sub.c.customer_id, memories, conv_sub.c.conversations, conv_sub.c.last_seen)
        .outerjoin(mem, mem.c.customer_id == conv_sub.c.customer_id)
        .order_by(memories.desc(), conv_sub.c.last_seen.desc(), conv_sub.c.customer_id)
        .limit(limit)
    ).all()
    return [CustomerSummary(c, int(m), int(n), seen) for c, m, n, seen in rows]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def customer_memories(
    *, session: Session, actor: Actor, customer_id: str, history: bool = False
) -> list[MemoryView]:
    """A customer's memories, current ones first, each with its source message (admin).
    `history=True` adds the superseded and deleted ones."""
    require_role(actor, Role.ADMIN)
    m = CustomerMemory
    # Columns in MemoryView's order, not ORM objects: a customer may have thousands.
    columns: tuple[Any, ...] = (m.id, m.customer_id, m.kind, m.key, m.value, m.date_value)
    columns += (m.confidence,)
    columns += (m.mentions, m.state, MemoryRule.name, m.message_id, Message.text)
    columns += (Conversation.external_id, m.observed_at, m.since, m.ended_at, m.version)
    statement = (
        sa_select(*(col(c) for c in columns))
        .outerjoin(
            MemoryRule,
            and_(
                col(MemoryRule.tenant_id) == actor.tenant_id,
                col(MemoryRule.id) == col(CustomerMemory.rule_id),
            ),
        )
        .outerjoin(
            Message,
            and_(
                col(Message.tenant_id) == actor.tenant_id,
                col(Message.id) == col(CustomerMemory.message_id),
            ),
        )
        .outerjoin(
            Conversation,
            and_(
                col(Conversation.tenant_id) == actor.tenant_id,
                col(Conversation.id) == col(CustomerMemory.conversation_id),
            ),
        )
        .where(
            col(CustomerMemory.tenant_id) == actor.tenant_id,
            col(CustomerMemory.customer_id) == customer_id,
        )
    )
    if not history:
        statement = statement.where(col(CustomerMemory.state) == MemoryState.CURRENT.value)
    current_first = case((col(CustomerMemory.state) == MemoryState.CURRENT.value, 0), else_=1)
    statement = statement.order_by(
        current_first,
        col(CustomerMemory.kind),
        col(CustomerMemory.key),
        col(CustomerMemory.observed_at).desc(),
        col(CustomerMemory.id).desc(),
    )
    return [MemoryView(*row) for row in session.execute(statement).all()]


def _view(m: CustomerMemory, rule: str | None, text: str | None, conv: str | None) -> MemoryView:
    assert m.id is not None
    return MemoryView(
        m.id,
        m.customer_id,
        m.kind,
        m.key,
        m.value,
        m.date_value,
        m.confidence,
        m.mentions,
        m.state,
        rule,
        m.message_id,
        text,
        conv,
        m.observed_at,
        m.since,
        m.ended_at,
        m.version,
    )


def conversation_messages(
    *, session: Session, actor: Actor, external_id: str
) -> list[tuple[str, str, datetime]]:
    """The messages of one conversation, oldest first: (role, text, time) (admin)."""
    require_role(actor, Role.ADMIN)
    rows = session.exec(
        select(Message.role, Message.text, Message.created_at)
        .join(
            Conversation,
            and_(
                col(Conversation.tenant_id) == actor.tenant_id,
                col(Conversation.id) == col(Message.conversation_id),
            ),
        )
        .where(Message.tenant_id == actor.tenant_id, Conversation.external_id == external_id)
        .order_by(col(Message.created_at), col(Message.id))
    ).all()
    return [(role, text, at) for role, text, at in rows]


# --------------------------------------------------------------------------------------------
# Correcting, deleting, forgetting
# --------------------------------------------------------------------------------------------


def _editable(session: Session, actor: Actor, memory_id: int, expected_version: int) -> Any:
    row = session.exec(
        select(CustomerMemory).where(
            CustomerMemory.tenant_id == actor.tenant_id, CustomerMemory.id == memory_id
        )
    ).first()
    if row is None:
        raise NotFound(f"Memory {memory_id} does not exist in this shop.")
    if row.version != expected_version or row.state != MemoryState.CURRENT.value:
        raise StaleEdit(
            "This memory changed since you loaded it (a newer one replaced it, or another admin "
            "edited or deleted it); reload and try again."
        )
    return row


def edit_memory(
    *, session: Session, actor: Actor, memory_id: int, value: str, expected_version: int
) -> MemoryView:
    """Correct a memory's value (admin; audited): the correction becomes the current memory,
    written by the admin at full confidence, and the old one its history."""
    require_role(actor, Role.ADMIN)
    current = _editable(session, actor, memory_id, expected_version)
    value, day = _checked_value(current.kind, value)
    if value == current.value:
        raise InvalidInput("The new value is the same as the current one; nothing changed.")
    _lock_memories(session, actor)
    now = utcnow()
    new = CustomerMemory(
        tenant_id=actor.tenant_id,
        customer_id=current.customer_id,
        kind=current.kind,
        key=current.key,
        value=value,
        date_value=day,
        confidence=1.0,
        changed_by=actor.user_id,
        observed_at=now,
        since=now,
    )
    _supersede(session, current, new)
    session.flush()
    audit.record(
        session=session,
        actor=actor,
        action="memory.edit",
        entity_type="customer_memory",
        entity_id=new.id,
        before={"memory": memory_id, "kind": current.kind},
        after={"memory": new.id, "kind": new.kind},
    )
    return _view(new, None, None, None)


def _checked_value(kind: str, value: str) -> tuple[str, date | None]:
    value = " ".join(value.split())
    if kind == MemoryKind.IMPORTANT_DATE.value:
        parsed = parse_date_value(value)
        if parsed is None:
            raise InvalidInput(
                "An important date needs a date such as 2027-05-03, --05-03 or May 3."
            )
        return parsed
    if not value:
        raise InvalidInput("A memory needs a value.")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"A memory's value holds at most {MAX_VALUE_LENGTH} characters.")
    if is_junk(value):
        raise InvalidInput(f"{value!r} says too little to remember; write what the customer meant.")
    return value, None


def delete_memory(*, session: Session, actor: Actor, memory_id: int, expected_version: int) -> None:
    """Delete a wrong memory (admin; audited). Its row stays as a tombstone, so extracting
    its message again does not bring it back; forgetting the customer removes it too."""
    require_role(actor, Role.ADMIN)
    row = _editable(session, actor, memory_id, expected_version)
    now = utcnow()
    row.state = MemoryState.DELETED.value
    row.ended_at = now
    row.updated_at = now
    row.changed_by = actor.user_id
    row.version += 1
    session.add(row)
    audit.record(
        session=session,
        actor=actor,
        action="memory.delete",
        entity_type="customer_memory",
        entity_id=memory_id,
        before={"kind": row.kind},
    )


@dataclass(frozen=True)
class Forgotten:
    customer_id: str
    memories: int
    messages: int
    examples: int


def forget_customer(*, session: Session, actor: Actor, customer_id: str) -> Forgotten:
    """Forget a customer (admin; audited): delete every memory row of theirs and blank the
    text of every message of their conversations, with the examples made from them."""
    require_role(actor, Role.ADMIN)
    customer_id = customer_id.strip()
    conversations = select(Conversation.id).where(
        Conversation.tenant_id == actor.tenant_id, Conversation.customer_id == customer_id
    )
    known = (
        session.exec(conversations.limit(1)).first()
        or session.exec(
            select(CustomerMemory.id).where(
                CustomerMemory.tenant_id == actor.tenant_id,
                CustomerMemory.customer_id == customer_id,
            )
        ).first()
    )
    if not customer_id or known is None:
        raise NotFound(f"No customer {customer_id!r} in this shop.")
    _lock_memories(session, actor)
    memories = session.exec(
        delete(CustomerMemory).where(
            col(CustomerMemory.tenant_id) == actor.tenant_id,
            col(CustomerMemory.customer_id) == customer_id,
        )
    ).rowcount
    messages = session.exec(
        update(Message)
        .where(
            col(Message.tenant_id) == actor.tenant_id,
            col(Message.conversation_id).in_(conversations),
        )
        .values(text="")
    ).rowcount
    examples = _blank_examples(session, actor, conversations)
    audit.record(
        session=session,
        actor=actor,
        action="memory.forget",
        entity_type="customer",
        entity_id=customer_id,
        after={"memories": memories, "messages": messages, "examples": examples},
    )
    return Forgotten(customer_id, memories, messages, examples)


def _blank_examples(session: Session, actor: Actor, conversations: Any) -> int:
    """Examples copy their message's text: blank them too, take them out of review and
    training, and drop their texts from the knowledge gaps that quote them."""
    rows = session.exec(
        select(Example.id, Example.text, Example.text_hash).where(
            Example.tenant_id == actor.tenant_id, col(Example.conversation_id).in_(conversations)
        )
    ).all()
    if not rows:
        return 0
    ids = [int(r[0]) for r in rows if r[0] is not None]
    texts = {r[1] for r in rows}
    for chunk in _chunks(ids, 1_000):
        session.exec(
            update(Example)
            .where(col(Example.tenant_id) == actor.tenant_id, col(Example.id).in_(chunk))
            .values(
                text="",
                text_hash=text_hash(""),
                content_hash=None,
                ai_response=None,
                correct_response=None,
                status=ExampleStatus.REJECTED.value,
                issue_score=None,
                issue_suggestion=None,
                updated_at=utcnow(),
                version=col(Example.version) + 1,
            )
        )
        session.exec(
            update(Correction)
            .where(
                col(Correction.tenant_id) == actor.tenant_id,
                col(Correction.example_id).in_(chunk),
                col(Correction.field) == "response",
            )
            .values(original_value=None, corrected_value=None)
        )
    _scrub_gaps(session, actor, set(ids), texts)
    review_groups.refresh(
        session=session, actor=actor, text_hashes={r[2] for r in rows} | {text_hash("")}
    )
    return len(ids)


def _scrub_gaps(session: Session, actor: Actor, ids: set[int], texts: set[str]) -> None:
    gaps = session.exec(select(KnowledgeGap).where(KnowledgeGap.tenant_id == actor.tenant_id))
    for gap in gaps.all():
        if ids.isdisjoint(gap.example_ids) and texts.isdisjoint(gap.representatives):
            continue
        gap.representatives = [t for t in gap.representatives if t not in texts]
        session.add(gap)


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
