"""A/B tests of response templates: two versions, a sticky split, outcomes per variant.

Florists and admins start a test on a response template: version A (the production version
unless another is named) against version B (an existing version, or new content saved as the
next version), with B's share of customers, the smallest difference in resolution rate worth
detecting, alpha and power. While it runs, `choose_version` tells the assistant which version a
customer gets (core.ab_stats.variant_for: the same customer always gets the same variant), and
every use it reports is counted for the variant it served (core.template_usage).

Results are SQL aggregates over the uses: per variant, the uses, outcomes reported, resolved,
escalated and the average rating; the test of the difference in resolution rate; the sample
size each arm needs; and the guardrail, which stops the test when B's escalation rate is
significantly worse than A's (checked after every reported outcome, and by
`evaluate_experiment`). Admins promote the winner: it becomes the template's production version
through core.templates.promote, audited the same way as any promotion.

Rates count the uses whose outcome was reported: a use still waiting for its outcome is in
`uses` but in no rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import case, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from core import audit, sql, templates
from core.ab_stats import (
    Method,
    ProportionTest,
    Variant,
    b_is_worse,
    compare_proportions,
    sample_size_per_arm,
    variant_for,
)
from core.access import Actor, Role, require_role
from core.errors import InvalidInput, NotFound, StaleEdit
from core.studio import EDITORS, READERS, input_error
from db.models import (
    DesignTemplate,
    DesignTemplateVersion,
    ExperimentStatus,
    TemplateExperiment,
    TemplateKind,
    TemplateUse,
    UseOutcome,
    utcnow,
)

RESPONSE_KIND = TemplateKind.RESPONSE.value  # the templates the assistant answers with
ENTITY = "template_experiment"
# The guardrail waits until each arm has this many reported outcomes, so that the first few
# conversations (checked one by one as they end) cannot stop a test on their own.
GUARDRAIL_MIN_OUTCOMES = 20
DEFAULT_BASELINE = 0.5  # the resolution rate assumed before A has any outcome (the largest n)


# --------------------------------------------------------------------------------------------
# Outcome counts (shared with core.template_usage)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeCounts:
    """Uses of a template (or variant) and how they ended."""

    uses: int
    reported: int  # uses whose outcome was reported
    resolved: int
    escalated: int
    rated: int
    avg_rating: float | None

    @property
    def resolution_rate(self) -> float | None:
        return self.resolved / self.reported if self.reported else None

    @property
    def escalation_rate(self) -> float | None:
        return self.escalated / self.reported if self.reported else None

    @classmethod
    def of(cls, row: Sequence[Any]) -> OutcomeCounts:
        """From the values of outcome_columns(), in order."""
        uses, reported, resolved, escalated, rated, rating = row
        return cls(
            int(uses or 0),
            int(reported or 0),
            int(resolved or 0),
            int(escalated or 0),
            int(rated or 0),
            None if rating is None else float(rating),
        )


NO_USES = OutcomeCounts(0, 0, 0, 0, 0, None)


def outcome_columns() -> list[ColumnElement[Any]]:
    """SQL aggregates over TemplateUse rows, in the order OutcomeCounts.of reads them."""

    def count_of(outcome: UseOutcome) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((col(TemplateUse.outcome) == outcome.value, 1))), 0)

    return [
        func.count(col(TemplateUse.id)),
        func.count(col(TemplateUse.outcome_at)),
        count_of(UseOutcome.RESOLVED),
        count_of(UseOutcome.ESCALATED),
        func.count(col(TemplateUse.rating)),
        func.avg(col(TemplateUse.rating)),
    ]


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentView:
    id: int
    template_id: int
    template_name: str
    version_a: int
    version_b: int
    split: float  # B's share of customers
    min_effect: float
    alpha: float
    power: float
    note: str
    status: ExperimentStatus
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    winner: int | None

    @property
    def running(self) -> bool:
        return self.status is ExperimentStatus.RUNNING

    def version_of(self, variant: Variant) -> int:
        return self.version_b if variant == "B" else self.version_a

    @classmethod
    def of(cls, row: TemplateExperiment, template_name: str) -> ExperimentView:
        assert row.id is not None
        return cls(
            id=row.id,
            template_id=row.template_id,
            template_name=template_name,
            version_a=row.version_a,
            version_b=row.version_b,
            split=row.split,
            min_effect=row.min_effect,
            alpha=row.alpha,
            power=row.power,
            note=row.note,
            status=ExperimentStatus(row.status),
            started_at=row.started_at,
            stopped_at=row.stopped_at,
            stop_reason=row.stop_reason,
            winner=row.winner,
        )


def _load(session: Session, actor: Actor, experiment_id: int) -> TemplateExperiment:
    found = session.exec(
        select(TemplateExperiment).where(
            TemplateExperiment.tenant_id == actor.tenant_id,
            TemplateExperiment.id == experiment_id,
        )
    ).first()
    if found is None:
        raise NotFound(f"There is no A/B test with id {experiment_id} in this shop.")
    return found


def _template_name(session: Session, actor: Actor, template_id: int) -> str:
    name = session.exec(
        select(DesignTemplate.name).where(
            DesignTemplate.tenant_id == actor.tenant_id, DesignTemplate.id == template_id
        )
    ).one()
    return str(name)


def _view(session: Session, actor: Actor, row: TemplateExperiment) -> ExperimentView:
    return ExperimentView.of(row, _template_name(session, actor, row.template_id))


def get_experiment(*, session: Session, actor: Actor, experiment_id: int) -> ExperimentView:
    """One A/B test of the shop (every role)."""
    require_role(actor, *READERS)
    return _view(session, actor, _load(session, actor, experiment_id))


def list_experiments(
    *,
    session: Session,
    actor: Actor,
    status: ExperimentStatus | str | None = None,
    template_id: int | None = None,
) -> list[ExperimentView]:
    """The shop's A/B tests, newest first, optionally of one status or template (every role)."""
    require_role(actor, *READERS)
    query = (
        select(TemplateExperiment, DesignTemplate.name)
        .join(
            DesignTemplate,
            (col(DesignTemplate.tenant_id) == col(TemplateExperiment.tenant_id))
            & (col(DesignTemplate.id) == col(TemplateExperiment.template_id)),
        )
        .where(TemplateExperiment.tenant_id == actor.tenant_id)
    )
    if status is not None:
        query = query.where(TemplateExperiment.status == _status(status).value)
    if template_id is not None:
        query = query.where(TemplateExperiment.template_id == template_id)
    rows = session.exec(
        query.order_by(col(TemplateExperiment.started_at).desc(), col(TemplateExperiment.id).desc())
    ).all()
    return [ExperimentView.of(row, name) for row, name in rows]


def _status(status: ExperimentStatus | str) -> ExperimentStatus:
    try:
        return ExperimentStatus(status)
    except ValueError:
        raise InvalidInput(
            f"{status!r} is not a status; use running, stopped or promoted."
        ) from None


# --------------------------------------------------------------------------------------------
# Starting a test (florists and admins)
# --------------------------------------------------------------------------------------------


class ExperimentDesign(BaseModel):
    """What a test is set to detect, and how it splits customers."""

    model_config = ConfigDict(extra="forbid")

    split: float = Field(0.5, ge=0.01, le=0.99)  # B's share of customers
    min_effect: float = Field(0.05, ge=0.005, le=0.5)  # resolution-rate difference, absolute
    alpha: float = Field(0.05, ge=0.001, le=0.2)
    power: float = Field(0.8, ge=0.5, le=0.99)
    note: str = Field("", max_length=500)


def response_template(session: Session, actor: Actor, template_id: int) -> DesignTemplate:
    """The shop's response template with this id (NotFound; InvalidInput for another kind)."""
    found = session.exec(
        select(DesignTemplate).where(
            DesignTemplate.tenant_id == actor.tenant_id, DesignTemplate.id == template_id
        )
    ).first()
    if found is None:
        raise NotFound(f"There is no template with id {template_id} in this shop.")
    if found.kind != RESPONSE_KIND:
        raise InvalidInput(
            f"{found.name!r} is a {found.kind} template; uses and A/B tests are of response "
            "templates."
        )
    return found


def has_version(session: Session, actor: Actor, template_id: int, number: int) -> bool:
    found = session.exec(
        select(DesignTemplateVersion.id).where(
            DesignTemplateVersion.tenant_id == actor.tenant_id,
            DesignTemplateVersion.template_id == template_id,
            DesignTemplateVersion.number == number,
        )
    ).first()
    return found is not None


def start_experiment(
    *,
    session: Session,
    actor: Actor,
    template_id: int,
    version_b: int | None = None,
    content_b: Mapping[str, Any] | None = None,
    note_b: str = "",
    version_a: int | None = None,
    split: float = 0.5,
    min_effect: float = 0.05,
    alpha: float = 0.05,
    power: float = 0.8,
    note: str = "",
) -> ExperimentView:
    """Start an A/B test of a response template (florist, admin; audited): version A (default:
    production) against version B, an existing version or `content_b` saved as a new one."""
    require_role(actor, *EDITORS)
    try:
        design = ExperimentDesign(
            split=split, min_effect=min_effect, alpha=alpha, power=power, note=note.strip()
        )
    except ValidationError as exc:
        raise input_error(exc) from exc
    template = response_template(session, actor, template_id)
    _refuse_a_second_test(session, actor, template)
    number_a = template.production_number if version_a is None else version_a
    if number_a is None:
        raise InvalidInput(f"{template.name!r} has no production version to test against.")
    number_b = _variant_b(session, actor, template, version_b, content_b, note_b)
    for number in (number_a, number_b):
        if not has_version(session, actor, template_id, number):
            raise NotFound(f"{template.name!r} has no version {number}.")
    if number_a == number_b:
        raise InvalidInput(f"Version {number_a} cannot be tested against itself.")
    row = TemplateExperiment(
        tenant_id=actor.tenant_id,
        template_id=template_id,
        version_a=number_a,
        version_b=number_b,
        started_by=actor.user_id,
        **design.model_dump(),
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:  # another test of this template started at the same moment
        raise _already_running(template) from exc
    _audit(session, actor, "experiment.start", row, after=_audited(row))
    return _view(session, actor, row)


def _variant_b(
    session: Session,
    actor: Actor,
    template: DesignTemplate,
    version_b: int | None,
    content_b: Mapping[str, Any] | None,
    note_b: str,
) -> int:
    if (version_b is None) == (content_b is None):
        raise InvalidInput("Give variant B as an existing version or as new content, not both.")
    if version_b is not None:
        return version_b
    assert content_b is not None and template.id is not None
    saved = templates.save_version(
        session=session,
        actor=actor,
        template_id=template.id,
        content=content_b,
        note=note_b.strip() or "Variant B of an A/B test",
        expected_version=template.version,
    )
    return saved.number


def _refuse_a_second_test(session: Session, actor: Actor, template: DesignTemplate) -> None:
    running = session.exec(
        select(TemplateExperiment.id).where(
            TemplateExperiment.tenant_id == actor.tenant_id,
            TemplateExperiment.template_id == template.id,
            TemplateExperiment.status == ExperimentStatus.RUNNING.value,
        )
    ).first()
    if running is not None:
        raise _already_running(template)


def _already_running(template: DesignTemplate) -> InvalidInput:
    return InvalidInput(
        f"{template.name!r} already has an A/B test running; stop it before starting another."
    )


def _audited(row: TemplateExperiment) -> dict[str, Any]:
    return {
        "template_id": row.template_id,
        "version_a": row.version_a,
        "version_b": row.version_b,
        "split": row.split,
        "min_effect": row.min_effect,
        "alpha": row.alpha,
        "power": row.power,
    }


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    row: TemplateExperiment,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    audit.record(
        session=session,
        actor=actor,
        action=action,
        entity_type=ENTITY,
        entity_id=row.id,
        before=before,
        after=after,
        reason=reason,
    )


# --------------------------------------------------------------------------------------------
# Which version a customer gets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    version: int
    experiment_id: int | None  # None: no test runs, the production version serves
    variant: Variant | None


def _customer(customer_id: str) -> str:
    cleaned = customer_id.strip() if isinstance(customer_id, str) else ""
    if not 1 <= len(cleaned) <= 128:
        raise InvalidInput("A customer id needs 1 to 128 characters.")
    return cleaned


def _production(template: DesignTemplate) -> int:
    if template.production_number is None:
        raise InvalidInput(f"{template.name!r} has no production version yet.")
    return template.production_number


def assign_variant(*, session: Session, actor: Actor, experiment_id: int, customer_id: str) -> int:
    """The version this customer gets in a running test, always the same one; once the test
    ended, the template's production version (every role)."""
    require_role(actor, *READERS)
    row = _load(session, actor, experiment_id)
    customer = _customer(customer_id)
    if row.status != ExperimentStatus.RUNNING.value:
        return _production(response_template(session, actor, row.template_id))
    variant = variant_for(experiment_id, customer, row.split)
    return row.version_b if variant == "B" else row.version_a


def choose_version(
    *, session: Session, actor: Actor, template_id: int, customer_id: str
) -> Assignment:
    """The version of a response template the assistant should answer this customer with: its
    variant of the running test, else the production version (every role)."""
    require_role(actor, *READERS)
    template = response_template(session, actor, template_id)
    customer = _customer(customer_id)
    running = session.exec(
        select(TemplateExperiment).where(
            TemplateExperiment.tenant_id == actor.tenant_id,
            TemplateExperiment.template_id == template_id,
            TemplateExperiment.status == ExperimentStatus.RUNNING.value,
        )
    ).first()
    if running is None or running.id is None:
        return Assignment(_production(template), None, None)
    variant = variant_for(running.id, customer, running.split)
    version = running.version_b if variant == "B" else running.version_a
    return Assignment(version, running.id, variant)


@dataclass(frozen=True)
class ExperimentWindow:
    """When a test ran, and how it split customers: what attributes a reported use to it."""

    id: int
    template_id: int
    version_a: int
    version_b: int
    split: float
    started_at: datetime
    stopped_at: datetime | None

    def attribute(self, version: int, customer_id: str, at: datetime) -> Variant | None:
        """The variant a use counts for: it happened while the test ran and served the
        version this customer is assigned; else None (it counts for no variant)."""
        if at < self.started_at or (self.stopped_at is not None and at >= self.stopped_at):
            return None
        variant = variant_for(self.id, customer_id, self.split)
        served = self.version_b if variant == "B" else self.version_a
        return variant if served == version else None


def experiment_windows(
    session: Session, actor: Actor, template_ids: Iterable[int]
) -> dict[int, list[ExperimentWindow]]:
    """Every test of these templates, by template id."""
    ids = sorted(set(template_ids))
    found: dict[int, list[ExperimentWindow]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = session.exec(
        select(TemplateExperiment).where(
            TemplateExperiment.tenant_id == actor.tenant_id,
            col(TemplateExperiment.template_id).in_(ids),
        )
    ).all()
    for r in rows:
        assert r.id is not None
        found[r.template_id].append(
            ExperimentWindow(
                r.id, r.template_id, r.version_a, r.version_b, r.split, r.started_at, r.stopped_at
            )
        )
    return found


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmResult:
    variant: Variant
    version: int
    counts: OutcomeCounts
    needed: int  # reported outcomes this arm needs to detect the test's min_effect


@dataclass(frozen=True)
class Guardrail:
    """Is B's escalation rate significantly worse than A's (one-sided, at the test's alpha)?"""

    checked: bool  # both arms had GUARDRAIL_MIN_OUTCOMES reported outcomes
    method: Method | None
    p_value: float | None
    tripped: bool


@dataclass(frozen=True)
class ExperimentResult:
    experiment: ExperimentView
    a: ArmResult
    b: ArmResult
    resolution: ProportionTest | None  # None until both arms have a reported outcome
    guardrail: Guardrail
    baseline: float  # the resolution rate the sample sizes assume
    baseline_observed: bool  # A's observed rate (else DEFAULT_BASELINE)

    @property
    def enough_data(self) -> bool:
        """Both arms have the outcomes the test needs for its min_effect, alpha and power."""
        return all(arm.counts.reported >= arm.needed for arm in (self.a, self.b))

    @property
    def leader(self) -> int | None:
        """The version with the significantly higher resolution rate, if one has."""
        test = self.resolution
        if test is None or not test.significant or test.difference == 0:
            return None
        return (self.b if test.difference > 0 else self.a).version


def _arm_counts(session: Session, actor: Actor, experiment_id: int) -> dict[Variant, OutcomeCounts]:
    rows = session.execute(
        sa_select(col(TemplateUse.variant), *outcome_columns())
        .where(
            col(TemplateUse.tenant_id) == actor.tenant_id,
            col(TemplateUse.experiment_id) == experiment_id,
        )
        .group_by(col(TemplateUse.variant))
    ).all()
    found: dict[Variant, OutcomeCounts] = {"A": NO_USES, "B": NO_USES}
    for variant, *values in rows:
        if variant in found:
            found[variant] = OutcomeCounts.of(values)
    return found


def _guardrail(view: ExperimentView, a: OutcomeCounts, b: OutcomeCounts) -> Guardrail:
    if min(a.reported, b.reported) < GUARDRAIL_MIN_OUTCOMES:
        return Guardrail(False, None, None, False)
    method, p_value = b_is_worse(a.escalated, a.reported, b.escalated, b.reported)
    return Guardrail(True, method, p_value, p_value < view.alpha)


def _result(session: Session, actor: Actor, row: TemplateExperiment) -> ExperimentResult:
    view = _view(session, actor, row)
    counts = _arm_counts(session, actor, view.id)
    a, b = counts["A"], counts["B"]
    observed = a.resolution_rate is not None
    baseline = a.resolution_rate if a.resolution_rate is not None else DEFAULT_BASELINE
    needed_a, needed_b = sample_size_per_arm(
        baseline, view.min_effect, alpha=view.alpha, power=view.power, split=view.split
    )
    test = None
    if a.reported and b.reported:
        test = compare_proportions(a.resolved, a.reported, b.resolved, b.reported, alpha=view.alpha)
    return ExperimentResult(
        view,
        ArmResult("A", view.version_a, a, needed_a),
        ArmResult("B", view.version_b, b, needed_b),
        test,
        _guardrail(view, a, b),
        baseline,
        observed,
    )


def experiment_results(*, session: Session, actor: Actor, experiment_id: int) -> ExperimentResult:
    """Per variant counts, the test of the resolution rates, sample sizes and the guardrail
    (every role; changes nothing)."""
    require_role(actor, *READERS)
    return _result(session, actor, _load(session, actor, experiment_id))


def running_results(*, session: Session, actor: Actor) -> list[ExperimentResult]:
    """The results of every running test of the shop, newest first (every role)."""
    require_role(actor, *READERS)
    rows = session.exec(
        select(TemplateExperiment)
        .where(
            TemplateExperiment.tenant_id == actor.tenant_id,
            TemplateExperiment.status == ExperimentStatus.RUNNING.value,
        )
        .order_by(col(TemplateExperiment.started_at).desc(), col(TemplateExperiment.id).desc())
    ).all()
    return [_result(session, actor, row) for row in rows]


def evaluate_experiment(*, session: Session, actor: Actor, experiment_id: int) -> ExperimentResult:
    """The results, after stopping the test if its guardrail tripped (florist, admin)."""
    require_role(actor, *EDITORS)
    row = _load(session, actor, experiment_id)
    _enforce(session, actor, row)
    return _result(session, actor, row)


def enforce_guardrails(
    *, session: Session, actor: Actor, experiment_ids: Iterable[int]
) -> list[int]:
    """Stop each of these tests that runs and whose guardrail tripped; the ids stopped
    (florist, admin: core.template_usage calls it after recording outcomes)."""
    require_role(actor, *EDITORS)
    rows = session.exec(
        select(TemplateExperiment).where(
            TemplateExperiment.tenant_id == actor.tenant_id,
            col(TemplateExperiment.id).in_(sorted(set(experiment_ids))),
            TemplateExperiment.status == ExperimentStatus.RUNNING.value,
        )
    ).all()
    return [row.id for row in rows if row.id is not None and _enforce(session, actor, row)]


def _enforce(session: Session, actor: Actor, row: TemplateExperiment) -> bool:
    """Stop the test if it runs and its guardrail tripped; whether this call stopped it."""
    if row.status != ExperimentStatus.RUNNING.value:
        return False
    found = _result(session, actor, row)
    return found.guardrail.tripped and _stop(session, actor, row, _guardrail_reason(found))


def _guardrail_reason(found: ExperimentResult) -> str:
    a, b, rail = found.a.counts, found.b.counts, found.guardrail
    return (
        f"Guardrail: variant B's escalation rate {b.escalation_rate:.1%} "
        f"({b.escalated}/{b.reported}) is significantly worse than A's {a.escalation_rate:.1%} "
        f"({a.escalated}/{a.reported}); one-sided {rail.method} p = {rail.p_value:.4f} "
        f"< alpha {found.experiment.alpha}."
    )


# --------------------------------------------------------------------------------------------
# Stopping and promoting
# --------------------------------------------------------------------------------------------


def _stop(session: Session, actor: Actor, row: TemplateExperiment, reason: str) -> bool:
    """Stop a running test with one conditional UPDATE; False when it was no longer running
    (someone, or the guardrail, stopped it first)."""
    matched = session.exec(
        update(TemplateExperiment)
        .where(
            col(TemplateExperiment.tenant_id) == actor.tenant_id,
            col(TemplateExperiment.id) == row.id,
            col(TemplateExperiment.status) == ExperimentStatus.RUNNING.value,
        )
        .values(
            status=ExperimentStatus.STOPPED.value,
            stopped_at=utcnow(),
            stopped_by=actor.user_id,
            stop_reason=reason[:500],
        )
    ).rowcount  # type: ignore[attr-defined]
    session.refresh(row)
    if matched != 1:
        return False
    _audit(
        session,
        actor,
        "experiment.stop",
        row,
        before={"status": ExperimentStatus.RUNNING.value},
        after={"status": row.status},
        reason=row.stop_reason,
    )
    return True


def stop_experiment(
    *, session: Session, actor: Actor, experiment_id: int, reason: str = ""
) -> ExperimentView:
    """Stop a running test (florist, admin; audited). Its uses stay; none are added to it."""
    require_role(actor, *EDITORS)
    row = _load(session, actor, experiment_id)
    if row.status != ExperimentStatus.RUNNING.value:
        raise InvalidInput(f"A/B test {experiment_id} is not running; it is {row.status}.")
    text = reason.strip() or f"Stopped by {actor.label}"
    if len(text) > 500:
        raise InvalidInput("A reason has at most 500 characters.")
    if not _stop(session, actor, row, text):
        raise StaleEdit(f"A/B test {experiment_id} was stopped by someone else just now.")
    return _view(session, actor, row)


def promote_winner(
    *,
    session: Session,
    actor: Actor,
    experiment_id: int,
    version: int | None = None,
    reason: str | None = None,
) -> ExperimentView:
    """Label the winning version production and end the test (admin; audited both as a
    template promotion and as the test's end). Without `version`, the winner is the version
    with the significantly better resolution rate; with it, A's or B's number."""
    require_role(actor, Role.ADMIN)
    row = _load(session, actor, experiment_id)
    if row.status == ExperimentStatus.PROMOTED.value:
        raise InvalidInput(f"A/B test {experiment_id} promoted version {row.winner} already.")
    number = version if version is not None else _significant_winner(session, actor, row)
    if number not in (row.version_a, row.version_b):
        raise InvalidInput(
            f"Version {number} is not in this test; promote {row.version_a} (A) or "
            f"{row.version_b} (B)."
        )
    why = reason or f"Winner of A/B test {experiment_id}"
    templates.promote(
        session=session, actor=actor, template_id=row.template_id, number=number, reason=why
    )
    before = {"status": row.status, "winner": row.winner}
    now = utcnow()
    matched = session.exec(
        update(TemplateExperiment)
        .where(
            col(TemplateExperiment.tenant_id) == actor.tenant_id,
            col(TemplateExperiment.id) == row.id,
            col(TemplateExperiment.status) == row.status,
        )
        .values(
            status=ExperimentStatus.PROMOTED.value,
            winner=number,
            stopped_at=row.stopped_at or now,
            stopped_by=row.stopped_by if row.stopped_at else actor.user_id,
            stop_reason=row.stop_reason or f"Version {number} promoted",
        )
    ).rowcount  # type: ignore[attr-defined]
    if matched != 1:
        raise StaleEdit(f"A/B test {experiment_id} was changed by someone else just now.")
    session.refresh(row)
    _audit(
        session,
        actor,
        "experiment.promote",
        row,
        before=before,
        after={"status": row.status, "winner": number},
        reason=why,
    )
    return _view(session, actor, row)


def _significant_winner(session: Session, actor: Actor, row: TemplateExperiment) -> int:
    found = _result(session, actor, row)
    if found.leader is None:
        shown = (
            "no outcomes yet"
            if found.resolution is None
            else (f"p = {found.resolution.p_value:.4f}")
        )
        raise InvalidInput(
            f"Neither version resolves significantly more ({shown}); name the version to promote."
        )
    return found.leader


# --------------------------------------------------------------------------------------------
# The results chart: per variant and UTC day
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPoint:
    day: str  # YYYY-MM-DD, UTC, of the uses
    variant: Variant
    version: int
    counts: OutcomeCounts  # that day's uses
    cumulative_reported: int  # up to and including that day
    cumulative_resolved: int
    cumulative_escalated: int

    @property
    def cumulative_resolution_rate(self) -> float | None:
        n = self.cumulative_reported
        return self.cumulative_resolved / n if n else None

    @property
    def cumulative_escalation_rate(self) -> float | None:
        n = self.cumulative_reported
        return self.cumulative_escalated / n if n else None


def experiment_series(*, session: Session, actor: Actor, experiment_id: int) -> list[SeriesPoint]:
    """Per UTC day and variant: the day's counts and the running totals, for the results
    chart (every role). Days without a use of a variant have no point for it."""
    require_role(actor, *READERS)
    view = _view(session, actor, _load(session, actor, experiment_id))
    day = sql.day(col(TemplateUse.created_at))
    rows = session.execute(
        sa_select(day, col(TemplateUse.variant), *outcome_columns())
        .where(
            col(TemplateUse.tenant_id) == actor.tenant_id,
            col(TemplateUse.experiment_id) == experiment_id,
        )
        .group_by(day, col(TemplateUse.variant))
        .order_by(day, col(TemplateUse.variant))
    ).all()
    totals: dict[str, list[int]] = {"A": [0, 0, 0], "B": [0, 0, 0]}
    points = []
    for bucket, variant, *values in rows:
        if variant not in totals:
            continue
        counts = OutcomeCounts.of(values)
        total = totals[variant]
        total[0] += counts.reported
        total[1] += counts.resolved
        total[2] += counts.escalated
        points.append(SeriesPoint(str(bucket), variant, view.version_of(variant), counts, *total))
    return points
