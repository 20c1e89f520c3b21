"""`trellis memory …`: extract, show, aggregate and forget customer memories."""

from __future__ import annotations

import sys
from typing import Any

import click

from core.cli import emit, handle_errors, main, tenant_actor
from db.engine import session_scope


@main.group("memory")
def memory_group() -> None:
    """Customer memories: what the assistant learned about each customer."""


def _memory_json(view: Any) -> dict[str, Any]:
    return {
        "id": view.id,
        "kind": view.kind,
        "key": view.key,
        "value": view.value,
        "confidence": round(view.confidence, 4),
        "message_id": view.message_id,
        "state": view.state,
        "observed_at": view.observed_at.isoformat(),
    }


@memory_group.command("extract")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def memory_extract(slug: str, as_json: bool) -> None:
    """Run the shop's rules over every stored customer message (safe to run again)."""
    from core.memory import extract_stored

    engine, actor = tenant_actor(slug)
    with click.progressbar(length=1, label="Extracting memories", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        result = extract_stored(engine=engine, actor=actor, progress=progress)
    emit(
        {"messages": result.messages, "memories": result.memories},
        as_json,
        f"Read {result.messages:,} customer messages; {result.memories:,} new memories.",
    )


@memory_group.command("show")
@click.argument("customer")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--history", is_flag=True, help="Also the superseded and deleted memories.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def memory_show(customer: str, slug: str, history: bool, as_json: bool) -> None:
    """A customer's memories with the message each came from."""
    from core.memory import customer_memories

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        found = customer_memories(
            session=session, actor=actor, customer_id=customer, history=history
        )
    lines = [
        f"{m.kind:<20} {m.key:<22} {m.value:<30} {m.confidence:.2f}"
        + ("" if m.state == "current" else f"  ({m.state})")
        for m in found
    ]
    text = "\n".join(lines) or f"No memories of {customer} in {slug}."
    emit({"memories": [_memory_json(m) for m in found]}, as_json, text)


@memory_group.command("aggregate")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def memory_aggregate(slug: str, as_json: bool) -> None:
    """Rebuild the shop's patterns and propose knowledge for an admin to approve."""
    from core.memory_patterns import aggregate

    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        result = aggregate(session=session, actor=actor)
    emit(
        {"patterns": result.patterns, "proposed_knowledge": result.proposed_knowledge},
        as_json,
        f"{result.patterns:,} patterns; {result.proposed_knowledge:,} knowledge proposals wait "
        f"for an admin ({result.newly_proposed:,} new).",
    )


@memory_group.command("forget")
@click.argument("customer")
@click.option("--tenant", "slug", required=True, help="The shop's slug.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def memory_forget(customer: str, slug: str, yes: bool, as_json: bool) -> None:
    """Forget a customer: delete every memory and blank every message text of theirs."""
    from core.memory import forget_customer

    if not yes:
        click.confirm(
            f"Forget {customer} in {slug}? Their memories are deleted and their messages "
            "blanked; this cannot be undone",
            abort=True,
            err=True,
        )
    engine, actor = tenant_actor(slug)
    with session_scope(actor, engine=engine) as session:
        done = forget_customer(session=session, actor=actor, customer_id=customer)
    emit(
        {
            "customer": done.customer_id,
            "memories": done.memories,
            "messages": done.messages,
            "examples": done.examples,
        },
        as_json,
        f"Forgot {done.customer_id}: {done.memories} memories deleted, {done.messages} "
        f"messages and {done.examples} examples blanked.",
    )
