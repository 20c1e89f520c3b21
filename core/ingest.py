"""Live traffic from the assistant: each customer message it answered, as it happens.

The assistant (outside Trellis) calls `record_interaction` (or the batch form, or
`trellis ingest FILE`): the message is stored in its conversation and becomes a pending
Example for review and training, with the serving model's prediction once a model serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import memory, review_groups
from core.access import Actor, Role, require_role
from core.config import get_settings
from core.errors import FileRefused, InvalidInput, validation_message
from core.memory_rules import CompiledRules
from core.registry import predict
from core.text import message_key, text_hash
from db.models import Conversation, Example, ExampleSource, ExampleStatus, Message, utcnow


class InteractionIn(BaseModel):
    """One answered customer message, as the assistant reports it."""

    text: str
    conversation_id: str
    customer_id: str = ""
    response: str | None = None
    escalated: bool = False
    # How the conversation ended, once the assistant knows: True resolved, False unresolved.
    resolved: bool | None = None
    created_at: datetime | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = value.strip()
        limit = get_settings().max_text_length
        if not value:
            raise ValueError("is empty")
        if len(value) > limit:
            raise ValueError(f"is longer than {limit} characters")
        return value

    @field_validator("conversation_id")
    @classmethod
    def _conversation(cls, value: str) -> str:
        value = value.strip()
        if not 1 <= len(value) <= 128:
            raise ValueError("needs 1 to 128 characters")
        return value

    @field_validator("customer_id")
    @classmethod
    def _customer(cls, value: str) -> str:
        if len(value) > 128:
            raise ValueError("is longer than 128 characters")
        return value.strip()

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


@dataclass(frozen=True)
class Recorded:
    example_id: int
    message_id: int
    conversation_id: int


def parse_interaction(fields: dict[str, object], *, where: str = "") -> InteractionIn:
    """Validate one interaction, turning pydantic's errors into one clear message."""
    try:
        return InteractionIn.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(f"{where}{validation_message(exc)}") from exc


def record_interaction(
    *,
    session: Session,
    actor: Actor,
    text: str,
    conversation_id: str,
    customer_id: str = "",
    response: str | None = None,
    escalated: bool = False,
    resolved: bool | None = None,
    created_at: datetime | None = None,
) -> Recorded:
    """Store one answered customer message as a pending example, and what it tells about the
    customer as memories (admin or the assistant)."""
    item = parse_interaction(
        {
            "text": text,
            "conversation_id": conversation_id,
            "customer_id": customer_id,
            "response": response,
            "escalated": escalated,
            "resolved": resolved,
            "created_at": created_at,
        }
    )
    recorded = _record(session, actor, item)
    review_groups.refresh(session=session, actor=actor, text_hashes={text_hash(item.text)})
    return recorded


def record_interactions(*, session: Session, actor: Actor, items: Iterable[InteractionIn]) -> int:
    """Store a batch of interactions in the caller's transaction (all or nothing)."""
    require_role(actor, Role.ADMIN)
    count, hashes = 0, set()
    rules = memory.active_rules(session=session, actor=actor)
    for item in items:
        _record(session, actor, item, rules)
        hashes.add(text_hash(item.text))
        count += 1
    review_groups.refresh(session=session, actor=actor, text_hashes=hashes)
    return count


def read_interactions(lines: Iterable[str]) -> list[InteractionIn]:
    """Parse a JSONL file of interactions; any bad line refuses the whole file, by number."""
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FileRefused(
                f"Line {number} is not valid JSON ({exc.msg}); nothing recorded."
            ) from exc
        if not isinstance(fields, dict):
            raise FileRefused(f"Line {number} is not a JSON object; nothing recorded.")
        try:
            items.append(parse_interaction(fields, where=f"Line {number}: "))
        except InvalidInput as exc:
            raise FileRefused(f"{exc}; nothing recorded.") from exc
    return items


def _record(
    session: Session, actor: Actor, item: InteractionIn, rules: CompiledRules | None = None
) -> Recorded:
    require_role(actor, Role.ADMIN)
    at = item.created_at or utcnow()
    key = message_key(item.conversation_id, "customer", item.text, at)
    already = _already_recorded(session, actor, key)
    if already is not None:  # the assistant retried: recording twice would count it twice
        return already
    conversation = _conversation(session, actor, item, at)
    assert conversation.id is not None
    message = Message(
        tenant_id=actor.tenant_id,
        conversation_id=conversation.id,
        role="customer",
        text=item.text,
        created_at=at,
        dedupe_key=key,
    )
    session.add(message)
    if item.response:
        session.add(
            Message(
                tenant_id=actor.tenant_id,
                conversation_id=conversation.id,
                role="assistant",
                text=item.response,
                created_at=at,
                dedupe_key=message_key(item.conversation_id, "assistant", item.response, at),
            )
        )
    session.flush()
    prediction = predict(session=session, actor=actor, text=item.text)
    example = Example(
        tenant_id=actor.tenant_id,
        text=item.text,
        text_hash=text_hash(item.text),
        detected_intent=prediction.intent if prediction else None,
        confidence=prediction.confidence if prediction else None,
        top_intents=[list(pair) for pair in prediction.top[:3]] if prediction else None,
        margin=prediction.margin if prediction else None,
        ai_response=item.response,
        escalated=item.escalated,
        status=ExampleStatus.PENDING.value,
        source=ExampleSource.LIVE.value,
        conversation_id=conversation.id,
        message_id=message.id,
        created_at=at,
        updated_at=at,
    )
    session.add(example)
    session.flush()
    assert example.id is not None and message.id is not None
    if conversation.customer_id:
        source = memory.Source(conversation.customer_id, message.id, conversation.id, item.text, at)
        memory.remember(session=session, actor=actor, source=source, rules=rules)
    return Recorded(example.id, message.id, conversation.id)


def _already_recorded(session: Session, actor: Actor, key: str) -> Recorded | None:
    """The recording of this very message (same conversation, text and time), if any."""
    row = session.exec(
        select(Example.id, Message.id, Message.conversation_id)
        .join(Message, col(Example.message_id) == col(Message.id))
        .where(Message.tenant_id == actor.tenant_id, Message.dedupe_key == key)
    ).first()
    if row is None:
        return None
    example_id, message_id, conversation_id = row
    assert example_id is not None and message_id is not None
    return Recorded(example_id, message_id, conversation_id)


def _conversation(
    session: Session, actor: Actor, item: InteractionIn, at: datetime
) -> Conversation:
    """The conversation with this external id, created on its first message."""
    conversation = _find(session, actor, item.conversation_id)
    if conversation is None:
        conversation = Conversation(
            tenant_id=actor.tenant_id,
            external_id=item.conversation_id,
            customer_id=item.customer_id,
            started_at=at,
        )
        try:
            with session.begin_nested():  # another replica may create it at the same moment
                session.add(conversation)
        except IntegrityError:
            conversation = _find(session, actor, item.conversation_id)
            assert conversation is not None
    if item.escalated and not conversation.escalated:
        conversation.escalated = True
        session.add(conversation)
    if item.customer_id and not conversation.customer_id:  # told only on a later message
        conversation.customer_id = item.customer_id
        session.add(conversation)
    if item.resolved is not None and conversation.resolved != item.resolved:
        conversation.resolved = item.resolved
        session.add(conversation)
    if conversation.ended_at is None or conversation.ended_at < at:
        conversation.ended_at = at
        session.add(conversation)
    return conversation


def _find(session: Session, actor: Actor, external_id: str) -> Conversation | None:
    return session.exec(
        select(Conversation).where(
            Conversation.tenant_id == actor.tenant_id, Conversation.external_id == external_id
        )
    ).first()
