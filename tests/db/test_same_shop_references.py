"""References between tenant rows can only point inside the same shop.

RLS does not apply to foreign-key checks on PostgreSQL, and the tenant guard checks only the
row's own tenant_id, so the schema itself must refuse a reference into another shop: every
reference is a composite key (tenant_id, parent_id) -> parent (tenant_id, id).
"""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKeyConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from db.engine import session_scope
from db.models import Conversation, Example, Message, tenant_tables
from tests.factories import make_shop


def _conversation(engine, shop, external_id):
    with session_scope(shop.admin, engine=engine) as s:
        conv = Conversation(tenant_id=shop.tenant_id, external_id=external_id)
        s.add(conv)
        s.flush()
        return conv.id


def test_every_reference_between_tenant_tables_leads_with_tenant_id():
    tenant = set(tenant_tables())
    loose = []
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in tenant:
            continue
        for fk in table.foreign_key_constraints:
            assert isinstance(fk, ForeignKeyConstraint)
            if fk.referred_table.name in tenant and fk.column_keys[0] != "tenant_id":
                loose.append(f"{table.name}.{fk.column_keys}")
    assert loose == []


def test_a_message_cannot_point_at_another_shops_conversation(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    fern_conv = _conversation(engine, fern, "f-1")
    with pytest.raises(IntegrityError), session_scope(bloom.admin, engine=engine) as s:
        s.add(
            Message(
                tenant_id=bloom.tenant_id, conversation_id=fern_conv, role="customer", text="hello"
            )
        )
        s.flush()
    with session_scope(bloom.admin, engine=engine) as s:
        assert s.exec(select(Message)).all() == []


def test_an_example_cannot_name_another_shops_reviewer(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    with pytest.raises(IntegrityError), session_scope(bloom.admin, engine=engine) as s:
        s.add(
            Example(
                tenant_id=bloom.tenant_id, text="hi", text_hash="h", reviewer_id=fern.admin.user_id
            )
        )
        s.flush()


def test_references_inside_one_shop_work(engine):
    bloom = make_shop(engine, "Bloom")
    conv = _conversation(engine, bloom, "b-1")
    with session_scope(bloom.admin, engine=engine) as s:
        msg = Message(tenant_id=bloom.tenant_id, conversation_id=conv, role="customer", text="hi")
        s.add(msg)
        s.flush()
        s.add(
            Example(
                tenant_id=bloom.tenant_id,
                text="hi",
                text_hash="h",
                conversation_id=conv,
                message_id=msg.id,
                reviewer_id=bloom.admin.user_id,
            )
        )
