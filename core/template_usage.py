"""Uses of response templates the assistant reports, how each ended, and what they add up to.

The assistant reports each answer it gave with a response template (`record_template_use`: its
own use id, the template and version it served, the conversation and the customer), then how
the conversation ended (`record_outcome`: resolved, escalated or unknown, and the customer's
rating 1-5), one by one or as a JSONL file (`record_reports`, `trellis template use record`).
Reporting a use id again adds nothing; an outcome or rating reported again replaces the last
one (reporting the same one changes nothing). A batch is all or nothing.

A use made while an A/B test of its template ran, with the version that test assigns to the
customer, counts for that variant (core.experiments); every reported outcome of a running test
re-checks its guardrail. Analytics per template, per version and over time are SQL aggregates;
rates count the uses whose outcome was reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from sqlalchemy import and_, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from core import experiments, sql
from core.access import Actor, Role, require_role
from core.errors import InvalidInput, NotFound
from core.experiments import RESPONSE_KIND, OutcomeCounts, outcome_columns
from core.studio import READERS, input_error, label, nothing_recorded, read_jsonl
from db.models import DesignTemplate, TemplateUse, UseOutcome, utcnow

CHUNK = 500
Bucket = Literal["day", "week"]
BUCKETS: dict[str, Callable[[Any], ColumnElement[str]]] = {"day": sql.day, "week": sql.week}

# --------------------------------------------------------------------------------------------
# What the assistant reports
# --------------------------------------------------------------------------------------------


def _external_id(value: object, field: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = label(value, field=field, max_length=128)
    if text != str(value).strip() or not text.isprintable():
        raise ValueError(f"{field} must be one line of printable text")
    return text


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _rating(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ValueError("a rating is a whole number from 1 to 5")
    return value


class OutcomeIn(BaseModel):
    """How the conversation of a use ended, and/or the customer's rating."""

    model_config = ConfigDict(extra="forbid")

    use_id: str
    outcome: UseOutcome | None = None
    rating: int | None = None
    outcome_at: datetime | None = None

    @field_validator("use_id", mode="before")
    @classmethod
    def _use_id(cls, value: object) -> str:
        return _external_id(value, "the use id")

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, value: object) -> object:
        return _rating(value)

    @field_validator("outcome_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value)

    @model_validator(mode="after")
    def _something(self) -> OutcomeIn:
        if self.outcome is None and self.rating is None:
            raise ValueError("an outcome report needs an outcome or a rating")
        return self


class UseIn(BaseModel):
    """One answer the assistant gave with a response template version (optionally with its
    outcome and rating already known)."""

    model_config = ConfigDict(extra="forbid")

    use_id: str
    template: str | None = None  # the template's name, or
    template_id: int | None = None
    version: int
    conversation_id: str
    customer_id: str
    outcome: UseOutcome | None = None
    rating: int | None = None
    created_at: datetime | None = None
    outcome_at: datetime | None = None

    @field_validator("use_id", "conversation_id", "customer_id", mode="before")
    @classmethod
    def _ids(cls, value: object) -> str:
        return _external_id(value, "the id")

    @field_validator("template", mode="before")
    @classmethod
    def _name(cls, value: object) -> str | None:
        return None if value is None else label(value, field="the template's name")

    @field_validator("version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value < 1:
            raise ValueError("versions are numbered from 1")
        return value

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, value: object) -> object:
        return _rating(value)

    @field_validator("created_at", "outcome_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _aware(value)

    @model_validator(mode="after")
    def _one_template(self) -> UseIn:
        if (self.template is None) == (self.template_id is None):
            raise ValueError("name the template by its name (template) or its id (template_id)")
        return self

    def outcome_report(self) -> OutcomeIn | None:
        if self.outcome is None and self.rating is None:
            return None
        return OutcomeIn(
            use_id=self.use_id, outcome=self.outcome, rating=self.rating, outcome_at=self.outcome_at
        )


Report = UseIn | OutcomeIn
USE_KEYS = frozenset({"template", "template_id", "version", "conversation_id", "customer_id"})


def parse_report(fields: dict[str, Any], *, where: str = "") -> Report:
    """A use (it names a template) or an outcome report, validated (InvalidInput)."""
    model: type[Report] = UseIn if USE_KEYS & set(fields) else OutcomeIn
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise input_error(exc, where=where) from exc


def read_reports(lines: Iterable[str]) -> list[tuple[int, Report]]:
    """A JSONL file of uses and outcomes as (line number, report); any bad line refuses the
    whole file, naming every bad line (the first SHOWN_ERRORS of them)."""
    return read_jsonl(lines, lambda fields, where: parse_report(dict(fields), where=where))


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UseView:
    use_id: str
    template_id: int
    version: int
    experiment_id: int | None
    variant: str | None  # A or B when it counted for an A/B test
    conversation_id: str
    customer_id: str
    outcome: UseOutcome
    rating: int | None
    created_at: datetime
    outcome_at: datetime | None  # None: no outcome reported yet

    @classmethod
    def of(cls, row: TemplateUse) -> UseView:
        return cls(
            row.use_id,
            row.template_id,
            row.version_number,
            row.experiment_id,
            row.variant,
            row.conversation_external_id,
            row.customer_id,
            UseOutcome(row.outcome),
            row.rating,
            row.created_at,
            row.outcome_at,
        )


@dataclass(frozen=True)
class RecordSummary:
    added: int  # new uses
    known: int  # uses reported before (or twice in the batch): nothing added for them
    outcomes: int  # reports that changed a use's outcome or rating
    stopped: tuple[int, ...] = ()  # A/B tests their guardrail stopped


class _Templates:
    """Templates named in a batch -> the shop's response templates and their versions, each
    looked up once."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.session, self.actor = session, actor
        self.by_id: dict[int, DesignTemplate] = {}
        self.versions: dict[tuple[int, int], bool] = {}

    def resolve(self, item: UseIn) -> int:
        """The template's id; InvalidInput naming what is wrong."""
        if item.template_id is not None:
            template = self._by_id(item.template_id)
        else:
            assert item.template is not None
            template = self._by_name(item.template)
        assert template.id is not None
        key = (template.id, item.version)
        if key not in self.versions:
            self.versions[key] = experiments.has_version(
                self.session, self.actor, template.id, item.version
            )
        if not self.versions[key]:
            raise InvalidInput(f"{template.name!r} has no version {item.version}")
        return template.id

    def _by_id(self, template_id: int) -> DesignTemplate:
        if template_id not in self.by_id:
            try:
                found = experiments.response_template(self.session, self.actor, template_id)
            except NotFound:
                raise InvalidInput(f"there is no template with id {template_id}") from None
            except InvalidInput as exc:
                raise InvalidInput(str(exc).rstrip(".")) from None
            self.by_id[template_id] = found
        return self.by_id[template_id]

    def _by_name(self, name: str) -> DesignTemplate:
        wanted = name.casefold()
        found = next((t for t in self.by_id.values() if t.name.casefold() == wanted), None)
        if found is None:
            rows = self.session.exec(
                select(DesignTemplate).where(
                    DesignTemplate.tenant_id == self.actor.tenant_id,
                    DesignTemplate.kind == RESPONSE_KIND,
                )
            ).all()
            found = next((t for t in rows if t.name.casefold() == wanted), None)
            if found is None or found.id is None:
                raise InvalidInput(f"there is no response template named {name!r} in this shop")
            self.by_id[found.id] = found
        return found


def record_template_use(
    *,
    session: Session,
    actor: Actor,
    use_id: str,
    template_id: int,
    version: int,
    conversation_id: str,
    customer_id: str,
    outcome: UseOutcome | str | None = None,
    rating: int | None = None,
    created_at: datetime | None = None,
) -> UseView:
    """Record one answer the assistant gave with a response template version (admin: the
    assistant acts as the shop's admin); a use id reported before adds nothing."""
    fields = {
        "use_id": use_id,
        "template_id": template_id,
        "version": version,
        "conversation_id": conversation_id,
        "customer_id": customer_id,
        "outcome": outcome,
        "rating": rating,
        "created_at": created_at,
    }
    item = parse_report(fields)
    record_reports(session=session, actor=actor, items=[item])
    return get_use(session=session, actor=actor, use_id=item.use_id)


def record_outcome(
    *,
    session: Session,
    actor: Actor,
    use_id: str,
    outcome: UseOutcome | str | None = None,
    rating: int | None = None,
    at: datetime | None = None,
) -> UseView:
    """Record how a use's conversation ended and/or the customer's rating (admin); a running
    A/B test's guardrail is checked at once."""
    item = parse_report({"use_id": use_id, "outcome": outcome, "rating": rating, "outcome_at": at})
    record_reports(session=session, actor=actor, items=[item])
    return get_use(session=session, actor=actor, use_id=item.use_id)


def record_reports(
    *,
    session: Session,
    actor: Actor,
    items: Sequence[Report],
    lines: Sequence[int] | None = None,
) -> RecordSummary:
    """Record uses and outcomes in the caller's transaction, all or nothing: every template,
    version and use id is checked first, and any unknown one refuses the batch (named by its
    line when `lines` are given). Then the guardrail of every running test whose uses got an
    outcome is checked."""
    require_role(actor, Role.ADMIN)
    resolver, template_ids, errors = _Templates(session, actor), {}, []
    for n, item in enumerate(items):
        if isinstance(item, UseIn):
            try:
                template_ids[n] = resolver.resolve(item)
            except InvalidInput as exc:
                errors.append(f"{_where(item, n, lines)}: {exc}.")
    known = _known_ids(session, actor, [item.use_id for item in items])
    reported = known | {item.use_id for item in items if isinstance(item, UseIn)}
    for n, item in enumerate(items):
        if isinstance(item, OutcomeIn) and item.use_id not in reported:
            errors.append(f"{_where(item, n, lines)}: no use with this id was reported.")
    if errors:
        raise nothing_recorded(errors)
    windows = experiments.experiment_windows(session, actor, template_ids.values())
    # Rows are written in use-id order (a stable sort keeps a use's own reports in order), so
    # two batches sharing use ids lock them in the same order and never deadlock.
    added = 0
    for n in sorted(template_ids, key=lambda n: items[n].use_id):
        item = items[n]
        if isinstance(item, UseIn) and item.use_id not in known:
            known.add(item.use_id)
            added += _insert(session, actor, item, template_ids[n], windows)
    # Outcomes after every use, so an outcome may come before its use in a file.
    reports = [i.outcome_report() if isinstance(i, UseIn) else i for i in items]
    ordered = sorted((r for r in reports if r is not None), key=lambda r: r.use_id)
    changed = [r.use_id for r in ordered if _apply(session, actor, r)]
    stopped = experiments.enforce_guardrails(
        session=session, actor=actor, experiment_ids=_experiments_of(session, actor, changed)
    )
    uses = sum(isinstance(item, UseIn) for item in items)
    return RecordSummary(added, uses - added, len(changed), tuple(stopped))


def _where(item: Report, n: int, lines: Sequence[int] | None) -> str:
    return f"Line {lines[n]}" if lines else f"Use {item.use_id!r}"


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), CHUNK):
        yield unique[start : start + CHUNK]


def _known_ids(session: Session, actor: Actor, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(
            session.exec(
                select(TemplateUse.use_id).where(
                    TemplateUse.tenant_id == actor.tenant_id, col(TemplateUse.use_id).in_(chunk)
                )
            ).all()
        )
    return found


def _insert(
    session: Session,
    actor: Actor,
    item: UseIn,
    template_id: int,
    windows: dict[int, list[experiments.ExperimentWindow]],
) -> int:
    """Insert one use, counted for the A/B test it was made in; 0 when another writer
    recorded its id first (the unique key), else 1."""
    at = item.created_at or utcnow()
    experiment_id, variant = None, None
    for window in windows.get(template_id, []):
        variant = window.attribute(item.version, item.customer_id, at)
        if variant is not None:
            experiment_id = window.id
            break
    statement = sql.insert_unless_exists(session, TemplateUse, ["tenant_id", "use_id"]).values(
        tenant_id=actor.tenant_id,
        use_id=item.use_id,
        template_id=template_id,
        version_number=item.version,
        experiment_id=experiment_id,
        variant=variant,
        conversation_external_id=item.conversation_id,
        customer_id=item.customer_id,
        outcome=UseOutcome.UNKNOWN.value,
        created_at=at,
    )
    return int(session.execute(statement.returning(TemplateUse.id)).first() is not None)


def _apply(session: Session, actor: Actor, report: OutcomeIn) -> bool:
    """Set the use's outcome and/or rating where they differ; whether anything changed."""
    mine = [col(TemplateUse.tenant_id) == actor.tenant_id, col(TemplateUse.use_id) == report.use_id]
    changed = 0
    if report.outcome is not None:
        differs = or_(
            col(TemplateUse.outcome_at).is_(None), col(TemplateUse.outcome) != report.outcome.value
        )
        changed += session.exec(
            update(TemplateUse)
            .where(*mine, differs)
            .values(outcome=report.outcome.value, outcome_at=report.outcome_at or utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    if report.rating is not None:
        differs = or_(col(TemplateUse.rating).is_(None), col(TemplateUse.rating) != report.rating)
        changed += session.exec(
            update(TemplateUse)
            .where(*mine, differs)
            .values(rating=report.rating)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    return changed > 0


def _experiments_of(session: Session, actor: Actor, use_ids: Sequence[str]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(use_ids):
        found.update(
            i
            for i in session.exec(
                select(TemplateUse.experiment_id)
                .where(
                    TemplateUse.tenant_id == actor.tenant_id,
                    col(TemplateUse.use_id).in_(chunk),
                    col(TemplateUse.experiment_id).is_not(None),
                )
                .distinct()
            ).all()
            if i is not None
        )
    return found


def get_use(*, session: Session, actor: Actor, use_id: str) -> UseView:
    """One reported use of the shop, by the assistant's use id (every role)."""
    require_role(actor, *READERS)
    row = session.exec(
        select(TemplateUse).where(
            TemplateUse.tenant_id == actor.tenant_id, TemplateUse.use_id == use_id
        )
    ).first()
    if row is None:
        raise NotFound(f"No use with id {use_id!r} was reported.")
    return UseView.of(row)


# --------------------------------------------------------------------------------------------
# Analytics (SQL aggregates; every role)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateUsage:
    template_id: int
    name: str
    production_number: int | None
    counts: OutcomeCounts


def _window(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    found = []
    if since is not None:
        found.append(col(TemplateUse.created_at) >= since)
    if until is not None:
        found.append(col(TemplateUse.created_at) < until)
    return found


def template_usage(
    *,
    session: Session,
    actor: Actor,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TemplateUsage]:
    """Each response template of the shop with its uses in [since, until), their outcomes and
    average rating; most used first."""
    require_role(actor, *READERS)
    joined = and_(
        col(TemplateUse.tenant_id) == actor.tenant_id,
        col(TemplateUse.template_id) == col(DesignTemplate.id),
        *_window(since, until),
    )
    columns = outcome_columns()
    rows = session.execute(
        sa_select(
            col(DesignTemplate.id),
            col(DesignTemplate.name),
            col(DesignTemplate.production_number),
            *columns,
        )
        .outerjoin(TemplateUse, joined)
        .where(
            col(DesignTemplate.tenant_id) == actor.tenant_id,
            col(DesignTemplate.kind) == RESPONSE_KIND,
        )
        .group_by(
            col(DesignTemplate.id),
            col(DesignTemplate.name),
            col(DesignTemplate.production_number),
        )
        .order_by(columns[0].desc(), col(DesignTemplate.name))
    ).all()
    return [
        TemplateUsage(int(i), str(name), production, OutcomeCounts.of(values))
        for i, name, production, *values in rows
    ]


@dataclass(frozen=True)
class VersionUsage:
    number: int
    counts: OutcomeCounts


def version_usage(
    *,
    session: Session,
    actor: Actor,
    template_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[VersionUsage]:
    """The uses of each version of a response template that has any, newest version first."""
    require_role(actor, *READERS)
    experiments.response_template(session, actor, template_id)
    number = col(TemplateUse.version_number)
    rows = session.execute(
        sa_select(number, *outcome_columns())
        .where(
            col(TemplateUse.tenant_id) == actor.tenant_id,
            col(TemplateUse.template_id) == template_id,
            *_window(since, until),
        )
        .group_by(number)
        .order_by(number.desc())
    ).all()
    return [VersionUsage(int(n), OutcomeCounts.of(values)) for n, *values in rows]


@dataclass(frozen=True)
class UsagePoint:
    bucket_start: str  # YYYY-MM-DD, UTC: the day, or the Monday that starts the ISO week
    counts: OutcomeCounts


def usage_trend(
    *,
    session: Session,
    actor: Actor,
    since: datetime,
    until: datetime,
    template_id: int | None = None,
    bucket: Bucket = "day",
) -> list[UsagePoint]:
    """Uses, outcomes and average rating per UTC day or week in [since, until), of one
    response template or of all of them; buckets without a use have no point."""
    require_role(actor, *READERS)
    if bucket not in BUCKETS:
        raise InvalidInput(f"{bucket!r} is not a bucket; use day or week.")
    start = BUCKETS[bucket](col(TemplateUse.created_at))
    where = [col(TemplateUse.tenant_id) == actor.tenant_id, *_window(since, until)]
    if template_id is not None:
        experiments.response_template(session, actor, template_id)
        where.append(col(TemplateUse.template_id) == template_id)
    rows = session.execute(
        sa_select(start, *outcome_columns()).where(*where).group_by(start).order_by(start)
    ).all()
    return [UsagePoint(str(b), OutcomeCounts.of(values)) for b, *values in rows]
