"""Builders for the tests of template uses and A/B tests: response templates with versions,
customers of a given variant, and reports of uses and outcomes."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from core import template_usage
from core.ab_stats import variant_for
from core.access import Actor
from core.template_usage import RecordSummary, parse_report
from db.engine import session_scope
from db.models import DesignTemplate, DesignTemplateVersion, TemplateKind
from tests.factories import Shop

_ids = itertools.count(1)


def response_template(
    engine: Engine, shop: Shop, name: str = "Delivery times", *, versions: int = 2
) -> int:
    """A response template with `versions` versions, version 1 in production; its id."""
    with session_scope(shop.admin, engine=engine) as s:
        template = DesignTemplate(
            tenant_id=shop.tenant_id,
            kind=TemplateKind.RESPONSE.value,
            name=name,
            latest_number=versions,
            production_number=1,
        )
        s.add(template)
        s.flush()
        assert template.id is not None
        for number in range(1, versions + 1):
            s.add(
                DesignTemplateVersion(
                    tenant_id=shop.tenant_id,
                    template_id=template.id,
                    number=number,
                    content={"text": f"We deliver today (wording {number})."},
                    note=f"wording {number}",
                    author_name="test",
                )
            )
        return template.id


def customers(experiment_id: int, split: float, variant: str, count: int) -> list[str]:
    """`count` customer ids the experiment assigns to `variant`."""
    found = []
    for n in itertools.count():
        customer = f"customer-{n}"
        if variant_for(experiment_id, customer, split) == variant:
            found.append(customer)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


def use(
    template_id: int,
    version: int,
    customer: str,
    *,
    outcome: str | None = None,
    rating: int | None = None,
    created_at: datetime | None = None,
    use_id: str | None = None,
) -> dict[str, Any]:
    """The fields of one reported use (a fresh use id unless given)."""
    fields: dict[str, Any] = {
        "use_id": use_id or f"use-{next(_ids)}",
        "template_id": template_id,
        "version": version,
        "conversation_id": f"conv-{customer}",
        "customer_id": customer,
    }
    optional = {"outcome": outcome, "rating": rating, "created_at": created_at}
    return fields | {k: v for k, v in optional.items() if v is not None}


def report(engine: Engine, actor: Actor, *rows: dict[str, Any]) -> RecordSummary:
    """Record uses and outcomes in one transaction, as the assistant would."""
    items = [parse_report(r) for r in rows]
    with session_scope(actor, engine=engine) as s:
        return template_usage.record_reports(session=s, actor=actor, items=items)


def arm(
    template_id: int,
    version: int,
    people: list[str],
    *,
    resolved: int,
    escalated: int,
    created_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """One use per customer: the first `resolved` resolved, the next `escalated` escalated,
    the rest reported as unknown."""
    outcomes = ["resolved"] * resolved + ["escalated"] * escalated
    outcomes += ["unknown"] * (len(people) - len(outcomes))
    return [
        use(template_id, version, c, outcome=o, created_at=created_at)
        for c, o in zip(people, outcomes, strict=True)
    ]
