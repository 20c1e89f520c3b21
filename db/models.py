"""Every Trellis table, in one module so relationships never import in a circle.

Tenant-owned tables inherit `TenantOwned`: an indexed `tenant_id` that every query filters on,
that the session guard in db.engine enforces, and that PostgreSQL row-level security backs up.
Times are aware UTC datetimes on both backends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (SQLModel's UTCDateTime refuses naive ones)."""
    return datetime.now(UTC)


class TenantOwned(SQLModel):
    """Mixin for every table that belongs to one shop."""

    tenant_id: int = Field(foreign_key="tenant.id", index=True, nullable=False)


class SharedOwned(SQLModel):
    """Mixin for rows every shop may read but only the creating shop may change."""

    owner_tenant_id: int = Field(foreign_key="tenant.id", index=True, nullable=False)


class SharedCounter(SQLModel):
    """Mixin for the use counters of a shared row: every shop counts (UPDATE), only the shared
    row's owner creates the counter row, and none deletes it (it goes with its row)."""

    # (the shared model, the column here that holds its id)
    counted: ClassVar[tuple[type[SharedOwned], str]]


def same_shop_parent(table: str) -> UniqueConstraint:
    """(tenant_id, id) on a parent table: the target of same_shop_fk references."""
    return UniqueConstraint("tenant_id", "id", name=f"uq_{table}_tenant_id_id")


def same_shop_fk(column: str, parent: str) -> ForeignKeyConstraint:
    """A reference that can only point at a row of the same shop (RLS does not check FKs)."""
    return ForeignKeyConstraint(
        ["tenant_id", column],
        [f"{parent}.tenant_id", f"{parent}.id"],
        name=f"fk_{column}_same_shop_{parent}",
    )


class ExampleStatus(StrEnum):
    PENDING = "pending"
    REVIEWED = "reviewed"
    APPROVED = "approved"
    REJECTED = "rejected"
    ESCALATED = "escalated"  # a reviewer handed it to a person; not training data until labelled
    USED_IN_TRAINING = "used_in_training"


class ExampleSource(StrEnum):
    LIVE = "live"
    IMPORTED = "imported"
    SYNTHETIC = "synthetic"


class Tenant(SQLModel, table=True):
    """A flower shop. The registry of shops itself is not tenant-owned."""

    __tablename__ = "tenant"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    slug: str = Field(max_length=64, unique=True, index=True)
    is_demo: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow)


class User(TenantOwned, table=True):
    __tablename__ = "app_user"
    __table_args__ = (same_shop_parent("app_user"),)
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(default="", max_length=120)
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None)
    last_login_at: datetime | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class AuditEvent(TenantOwned, table=True):
    """Who did what, when, with the values before and after and the reason given."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_tenant_at", "tenant_id", "at"),
        same_shop_fk("actor_user_id", "app_user"),
    )
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor_user_id: int | None = Field(default=None)
    actor_name: str = Field(max_length=120)
    action: str = Field(max_length=64, index=True)
    entity_type: str = Field(max_length=64)
    entity_id: str = Field(default="", max_length=64)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    reason: str | None = Field(default=None, sa_column=Column(Text))


class Intent(TenantOwned, table=True):
    __tablename__ = "intent"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_intent_tenant_name"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)


class Conversation(TenantOwned, table=True):
    __tablename__ = "conversation"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id", name="uq_conversation_tenant_external"),
        Index("ix_conversation_tenant_started", "tenant_id", "started_at"),
        # A customer's conversations in time order: memory's success rates ("started after
        # the customer said it") and the customer views.
        Index("ix_conversation_tenant_customer_started", "tenant_id", "customer_id", "started_at"),
        same_shop_parent("conversation"),
    )
    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=128)
    customer_id: str = Field(default="", max_length=128)
    channel: str = Field(default="chat", max_length=32)
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = Field(default=None)
    escalated: bool = Field(default=False)
    resolved: bool | None = Field(default=None)


class Message(TenantOwned, table=True):
    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_tenant_conversation", "tenant_id", "conversation_id", "created_at"),
        UniqueConstraint("tenant_id", "dedupe_key", name="uq_message_tenant_dedupe"),
        same_shop_parent("message"),
        same_shop_fk("conversation_id", "conversation"),
    )
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int
    role: str = Field(max_length=16)  # customer | assistant | agent
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    # Set by file imports (conversation, role, text, time) so re-importing a log adds nothing;
    # NULL for live traffic, where every message counts.
    dedupe_key: str | None = Field(default=None, max_length=64)


# What the review queue reads of an example that is waiting or flagged (core.review.queue).
REVIEW_QUEUE_ROWS = "(status = 'pending' AND NOT reviewed) OR issue_score IS NOT NULL"
REVIEW_QUEUE_COLUMNS = [
    "confidence",
    "margin",
    "escalated",
    "issue_score",
    "id",
    "status",
    "reviewed",
]


class Example(TenantOwned, table=True):
    """One customer message as training data: what the assistant did and what was right."""

    __tablename__ = "example"
    __table_args__ = (
        UniqueConstraint("tenant_id", "content_hash", name="uq_example_tenant_content"),
        Index("ix_example_tenant_status", "tenant_id", "status"),
        # What core.analytics reads of a shop's window in created_at order, so its aggregates
        # read this index alone (an index-only scan on PostgreSQL), never the table; it also
        # serves every other created_at lookup. All key columns rather than PostgreSQL's
        # INCLUDE: one definition fits SQLite too (no INCLUDE there; Alembic's autogenerate
        # ignores ddl_if, so per-dialect twins would never match the models), and it measured
        # as fast at 1M examples. `id` joins the relabels (SQLite holds it in every index).
        Index(
            "ix_example_analytics",
            "tenant_id",
            "created_at",
            "escalated",
            "confidence",
            "intent_correct",
            "correct_intent",
            "detected_intent",
            "id",
        ),
        Index("ix_example_tenant_detected", "tenant_id", "detected_intent"),
        Index("ix_example_tenant_text_hash", "tenant_id", "text_hash"),
        Index("ix_example_tenant_issue", "tenant_id", "issue_score"),
        # Reviews since the last training run: what every review action counts (auto-retrain).
        Index("ix_example_tenant_reviewed", "tenant_id", "reviewed_at"),
        # The review queue groups the examples that may need a person by text_hash: on
        # PostgreSQL an index-only scan of this, in group order, instead of the whole shop.
        Index(
            "ix_example_review_queue",
            "tenant_id",
            "text_hash",
            postgresql_include=REVIEW_QUEUE_COLUMNS,
            postgresql_where=text(REVIEW_QUEUE_ROWS),
            sqlite_where=text(REVIEW_QUEUE_ROWS),
        ),
        same_shop_parent("example"),
        same_shop_fk("conversation_id", "conversation"),
        same_shop_fk("message_id", "message"),
        same_shop_fk("reviewer_id", "app_user"),
    )
    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    detected_intent: str | None = Field(default=None, max_length=100)
    confidence: float | None = Field(default=None, ge=0, le=1)
    top_intents: list[Any] | None = Field(default=None, sa_column=Column(JSON))
    margin: float | None = Field(default=None)  # top-1 minus top-2 probability
    correct_intent: str | None = Field(default=None, max_length=100)
    ai_response: str | None = Field(default=None, sa_column=Column(Text))
    correct_response: str | None = Field(default=None, sa_column=Column(Text))
    response_source: str | None = Field(default=None, max_length=32)
    escalated: bool = Field(default=False)
    reviewed: bool = Field(default=False)
    intent_correct: bool | None = Field(default=None)
    status: str = Field(default=ExampleStatus.PENDING.value, max_length=24)
    source: str = Field(default=ExampleSource.LIVE.value, max_length=16)
    # text_hash groups repeats of one message; content_hash (text + label) de-duplicates
    # labelled data and is NULL for live traffic, where every occurrence counts.
    text_hash: str = Field(max_length=64)
    content_hash: str | None = Field(default=None, max_length=64)
    conversation_id: int | None = Field(default=None)
    message_id: int | None = Field(default=None)
    reviewer_id: int | None = Field(default=None)
    reviewed_at: datetime | None = Field(default=None)
    # Set by label-issue detection: the given label is probably wrong (score 0..1, higher is
    # likelier) and this intent is probably right. Any review action clears it.
    issue_score: float | None = Field(default=None)
    issue_suggestion: str | None = Field(default=None, max_length=100)
    issue_found_at: datetime | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class ReviewGroup(TenantOwned, table=True):
    """The review queue's groups, kept current by core.review_groups on every write that can
    change them: per text_hash, the group's examples waiting for a person (reason "all") and,
    in a row per reason, those waiting for that reason. The first page of the queue, of any
    reason, is then an index read, not a grouping of every waiting example."""

    __tablename__ = "review_group"
    __table_args__ = (
        # text_hash before reason: a refresh deletes a group's rows of every reason by it.
        UniqueConstraint("tenant_id", "text_hash", "reason", name="uq_review_group_key"),
        # The queue's order; `size` too, so totals read the index alone.
        Index("ix_review_group_rank", "tenant_id", "reason", "priority", "newest", "size"),
    )
    id: int | None = Field(default=None, primary_key=True)
    reason: str = Field(max_length=16)  # "all", or one of core.review_groups.Reason
    text_hash: str = Field(max_length=64)
    size: int  # examples of the group waiting (for this reason)
    priority: float  # the sum of their uncertainty
    newest: int  # the newest of them (Example.id): the one the reviewer sees


class Correction(TenantOwned, table=True):
    """One change a reviewer made to an example; the log that undo restores from."""

    __tablename__ = "correction"
    __table_args__ = (
        Index("ix_correction_tenant_created", "tenant_id", "created_at"),
        Index("ix_correction_tenant_example", "tenant_id", "example_id"),
        # The standing intent relabels core.analytics counts (correction_rate), a few % of the
        # log. SQLite's predicate spells the boolean test as SQLAlchemy renders it in queries
        # there, so its planner sees that the query implies it.
        Index(
            "ix_correction_relabelled",
            "tenant_id",
            "example_id",
            postgresql_where=text("field = 'intent' AND was_mismatch AND reverted_at IS NULL"),
            sqlite_where=text("field = 'intent' AND was_mismatch = 1 AND reverted_at IS NULL"),
        ),
        same_shop_fk("example_id", "example"),
        same_shop_fk("reviewer_id", "app_user"),
        same_shop_fk("reverted_by", "app_user"),
    )
    id: int | None = Field(default=None, primary_key=True)
    example_id: int
    field: str = Field(max_length=32)  # intent | response | status
    original_value: str | None = Field(default=None, sa_column=Column(Text))
    corrected_value: str | None = Field(default=None, sa_column=Column(Text))
    was_mismatch: bool = Field(default=False)
    note: str | None = Field(default=None, sa_column=Column(Text))
    reviewer_id: int | None = Field(default=None)
    batch_id: str | None = Field(default=None, max_length=36, index=True)
    # Every example field the action changed, as it was before (undo restores exactly this),
    # and the example's version right after the action (undo refuses if it moved on since).
    previous: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version_after: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow)
    reverted_at: datetime | None = Field(default=None)
    reverted_by: int | None = Field(default=None)
    reverted_version: int | None = Field(default=None)  # the example's version after the revert


class ShopSettings(TenantOwned, table=True):
    """A shop's own thresholds (one row per shop; defaults apply until an admin saves)."""

    __tablename__ = "shop_settings"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_shop_settings_tenant"),)
    id: int | None = Field(default=None, primary_key=True)
    review_confidence: float = Field(default=0.6, ge=0, le=1)
    review_margin: float = Field(default=0.1, ge=0, le=1)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: int | None = Field(default=None)
    version: int = Field(default=1)
    # Alert thresholds (core.alerts): accuracy and macro-F1 alert below theirs, escalation and
    # misclassification above. Their own version, so editing them never makes a review
    # threshold edit stale (0: never saved, the defaults apply).
    alert_intent_accuracy: float = Field(
        default=0.7, ge=0, le=1, sa_column_kwargs={"server_default": text("0.7")}
    )
    alert_escalation_rate: float = Field(
        default=0.3, ge=0, le=1, sa_column_kwargs={"server_default": text("0.3")}
    )
    alert_macro_f1: float = Field(
        default=0.7, ge=0, le=1, sa_column_kwargs={"server_default": text("0.7")}
    )
    alert_misclassification: float = Field(
        default=0.15, ge=0, le=1, sa_column_kwargs={"server_default": text("0.15")}
    )
    alert_version: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    # Memory thresholds (core.memory): a pattern is a (kind, key, value) held by at least
    # memory_pattern_customers customers at memory_pattern_confidence or more; it is proposed
    # as knowledge from memory_knowledge_customers customers and memory_knowledge_success.
    memory_pattern_customers: int = Field(
        default=2, ge=2, sa_column_kwargs={"server_default": text("2")}
    )
    memory_pattern_confidence: float = Field(
        default=0.7, ge=0, le=1, sa_column_kwargs={"server_default": text("0.7")}
    )
    memory_knowledge_customers: int = Field(
        default=5, ge=2, sa_column_kwargs={"server_default": text("5")}
    )
    memory_knowledge_success: float = Field(
        default=0.8, ge=0, le=1, sa_column_kwargs={"server_default": text("0.8")}
    )
    memory_version: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})


class GapStatus(StrEnum):
    OPEN = "open"
    DISMISSED = "dismissed"
    RESOLVED = "resolved"


class KnowledgeGap(TenantOwned, table=True):
    """A cluster of escalated or uncertain messages the assistant has no good intent for."""

    __tablename__ = "knowledge_gap"
    __table_args__ = (
        Index("ix_knowledge_gap_tenant_status", "tenant_id", "status"),
        same_shop_fk("resolved_by", "app_user"),
    )
    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default=GapStatus.OPEN.value, max_length=16)
    label: str = Field(default="", max_length=200)  # its most telling words
    size: int
    escalation_rate: float
    avg_confidence: float | None = Field(default=None)
    severity: float
    example_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    representatives: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    nearest_intents: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    resolution: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = Field(default=None)
    resolved_by: int | None = Field(default=None)


class ImportProfile(SharedOwned, table=True):
    """How to read files from one source platform; shared by every shop, anonymously."""

    __tablename__ = "import_profile"
    __table_args__ = (
        UniqueConstraint("owner_tenant_id", "name", name="uq_import_profile_owner_name"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    source: str = Field(max_length=100, index=True)  # the platform, e.g. "Shopify Inbox"
    kind: str = Field(default="examples", max_length=16)  # examples | conversations
    file_format: str = Field(default="csv", max_length=16)  # csv | jsonl
    mapping: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    delimiter: str | None = Field(default=None, max_length=4)
    encoding: str | None = Field(default=None, max_length=32)
    date_format: str | None = Field(default=None, max_length=64)
    cleanup: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class ImportProfileUsage(SharedCounter, table=True):
    """Anonymous use counters of a profile; any shop's import updates them atomically."""

    __tablename__ = "import_profile_usage"
    counted = (ImportProfile, "profile_id")
    profile_id: int = Field(
        sa_column=Column(
            "profile_id",
            Integer,
            ForeignKey("import_profile.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    success_count: int = Field(default=0)
    failure_count: int = Field(default=0)
    last_successful_use: datetime | None = Field(default=None)
    last_used_at: datetime | None = Field(default=None)


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


ACTIVE_RUN = "status IN ('pending', 'running')"


class TrainingRun(TenantOwned, table=True):
    """One training run: what it trained on, how it went (live progress) and what it decided."""

    __tablename__ = "training_run"
    __table_args__ = (
        Index("ix_training_run_tenant_created", "tenant_id", "created_at"),
        # One run at a time per shop, across every app replica: the database refuses a second.
        Index(
            "uq_training_run_one_active",
            "tenant_id",
            unique=True,
            sqlite_where=text(ACTIVE_RUN),
            postgresql_where=text(ACTIVE_RUN),
        ),
        same_shop_parent("training_run"),
        same_shop_fk("started_by", "app_user"),
    )
    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default=RunStatus.PENDING.value, max_length=16)
    trigger: str = Field(default="manual", max_length=16)  # manual | auto | cli
    started_by: int | None = Field(default=None)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    stage: str = Field(default="queued", max_length=32)
    progress: float = Field(default=0.0)
    eta_seconds: float | None = Field(default=None)
    points: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    baseline_metrics: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    gate: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    shadow: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))
    deployed: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = Field(default=None)
    finished_at: datetime | None = Field(default=None)
    heartbeat_at: datetime | None = Field(default=None)


ONE_SERVING = "is_active"


class ModelVersion(TenantOwned, table=True):
    """A trained intent model; the artifact lives here so every app replica serves the same."""

    __tablename__ = "model_version"
    __table_args__ = (
        UniqueConstraint("tenant_id", "version", name="uq_model_version_tenant_version"),
        Index(
            "uq_model_version_one_serving",
            "tenant_id",
            unique=True,
            sqlite_where=text(ONE_SERVING),
            postgresql_where=text(ONE_SERVING),
        ),
        same_shop_parent("model_version"),
        same_shop_fk("run_id", "training_run"),
    )
    id: int | None = Field(default=None, primary_key=True)
    version: int
    run_id: int | None = Field(default=None)
    artifact: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sha256: str = Field(max_length=64)
    size_bytes: int
    features: str = Field(default="tfidf", max_length=16)
    intents: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    is_active: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow)
    activated_at: datetime | None = Field(default=None)


class SnapshotPeriod(StrEnum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"  # ISO weeks: Monday 00:00 UTC to the next Monday
    MONTHLY = "monthly"


class MetricSnapshot(TenantOwned, table=True):
    """The headline metrics of one complete period, frozen when it was taken (once per period)."""

    __tablename__ = "metric_snapshot"
    __table_args__ = (
        # Also what makes taking a snapshot idempotent across replicas (ON CONFLICT DO NOTHING).
        UniqueConstraint(
            "tenant_id", "period", "period_start", name="uq_metric_snapshot_tenant_period_start"
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(max_length=16)
    period_start: datetime  # UTC, aligned: the hour, the day, the ISO week's Monday, the 1st
    total_messages: int
    ai_resolved: int
    escalated: int
    escalation_rate: float | None = Field(default=None)
    avg_confidence: float | None = Field(default=None)
    intent_accuracy: float | None = Field(default=None)
    correction_rate: float | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)


class AlertKind(StrEnum):
    INTENT_ACCURACY = "intent_accuracy"
    ESCALATION_RATE = "escalation_rate"
    MACRO_F1 = "macro_f1"
    MISCLASSIFICATION = "misclassification"


OPEN_ALERT = "cleared_at IS NULL"


class AlertEvent(TenantOwned, table=True):
    """A threshold crossed: raised when a metric went past it, cleared when it came back."""

    __tablename__ = "alert_event"
    __table_args__ = (
        Index("ix_alert_event_tenant_raised", "tenant_id", "raised_at"),
        # One open alert per kind per shop, across every replica: the database refuses a second.
        Index(
            "uq_alert_event_one_open",
            "tenant_id",
            "kind",
            unique=True,
            sqlite_where=text(OPEN_ALERT),
            postgresql_where=text(OPEN_ALERT),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    value: float  # the metric when raised
    threshold: float
    message: str = Field(sa_column=Column(Text, nullable=False))
    raised_at: datetime = Field(default_factory=utcnow)
    cleared_at: datetime | None = Field(default=None)
    cleared_value: float | None = Field(default=None)  # the metric when cleared


def tenant_tables() -> list[str]:
    """Names of every table with a tenant_id column (what RLS and the isolation tests cover)."""
    return sorted(t.name for t in SQLModel.metadata.sorted_tables if "tenant_id" in t.c)


def shared_tables() -> list[str]:
    """Tables every shop reads but only the owning shop (owner_tenant_id) changes."""
    return sorted(t.name for t in SQLModel.metadata.sorted_tables if "owner_tenant_id" in t.c)


# --------------------------------------------------------------------------------------------
# Florist studio: the catalog, style and prompt templates with their versions, generator
# configurations, the designs the (outside) image generator reports, and the shared library.
# --------------------------------------------------------------------------------------------


class Flower(TenantOwned, table=True):
    """A flower of the shop's catalog (core.catalog)."""

    __tablename__ = "flower"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "variety", name="uq_flower_tenant_name_variety"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    variety: str = Field(default="", max_length=100)
    color: str = Field(max_length=50)
    season: str = Field(default="all_year", max_length=16)  # spring … winter | all_year
    in_stock: bool = Field(default=True)
    price_tier: str = Field(default="standard", max_length=16)  # budget … luxury
    description: str = Field(default="", max_length=500)
    image_url: str | None = Field(default=None, max_length=2000)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class ArrangementType(TenantOwned, table=True):
    """A kind of arrangement the shop makes: bouquet, centerpiece, wreath…"""

    __tablename__ = "arrangement_type"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_arrangement_type_tenant_name"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class Occasion(TenantOwned, table=True):
    """An occasion customers buy for, with the flowers and colors it usually calls for."""

    __tablename__ = "occasion"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_occasion_tenant_name"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    typical_flowers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    typical_colors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # season -> the flowers preferred for this occasion then
    seasonal_preferences: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    price_sensitivity: str = Field(default="medium", max_length=16)  # low | medium | high
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class BudgetTier(TenantOwned, table=True):
    """A price band customers choose from; max_price NULL means open-ended."""

    __tablename__ = "budget_tier"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_budget_tier_tenant_name"),
        CheckConstraint(
            "min_price >= 0 AND (max_price IS NULL OR max_price >= min_price)",
            name="ck_budget_tier_prices",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    min_price: float = Field(default=0.0)
    max_price: float | None = Field(default=None)
    description: str = Field(default="", max_length=500)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class TemplateKind(StrEnum):
    STYLE = "style"
    PROMPT = "prompt"
    RESPONSE = "response"


class SharedTemplate(SharedOwned, table=True):
    """A style or prompt template a shop published to the library every shop browses,
    anonymously; adopting it copies it into the adopting shop (core.library)."""

    __tablename__ = "shared_template"
    __table_args__ = (
        UniqueConstraint("owner_tenant_id", "kind", "name", name="uq_shared_template_owner_name"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source_template_id: int | None = Field(default=None)  # the owner's template it came from
    source_number: int | None = Field(default=None)  # and which version of it
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class SharedTemplateUsage(SharedCounter, table=True):
    """Anonymous counters of a library template: adoptions, and each approved (success) or
    rejected (failure) design made with an adopted copy, counted atomically by any shop."""

    __tablename__ = "shared_template_usage"
    counted = (SharedTemplate, "item_id")
    item_id: int = Field(
        sa_column=Column(
            "item_id",
            Integer,
            ForeignKey("shared_template.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    adoptions: int = Field(default=0)
    success_count: int = Field(default=0)
    failure_count: int = Field(default=0)
    last_successful_use: datetime | None = Field(default=None)
    last_used_at: datetime | None = Field(default=None)


class DesignTemplate(TenantOwned, table=True):
    """A style or prompt template of the shop. Its content lives in immutable versions; the
    template holds which version is labelled production (core.templates)."""

    __tablename__ = "design_template"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "name", name="uq_design_template_tenant_kind_name"),
        same_shop_parent("design_template"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # TemplateKind
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=500)
    latest_number: int = Field(default=1)
    production_number: int | None = Field(default=None)
    # The label's last position, so a rollback can move it back.
    previous_production_number: int | None = Field(default=None)
    usage_count: int = Field(default=0)  # designs recorded with it
    active: bool = Field(default=True)
    # The library template this one was adopted from (NULL once that is withdrawn).
    library_item_id: int | None = Field(
        default=None,
        sa_column=Column(
            "library_item_id",
            Integer,
            ForeignKey("shared_template.id", ondelete="SET NULL"),
            nullable=True,
        ),
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class DesignTemplateVersion(TenantOwned, table=True):
    """One saved state of a template: written once, never changed."""

    __tablename__ = "design_template_version"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "template_id", "number", name="uq_design_template_version_number"
        ),
        same_shop_parent("design_template_version"),
        same_shop_fk("template_id", "design_template"),
        same_shop_fk("author_id", "app_user"),
    )
    id: int | None = Field(default=None, primary_key=True)
    template_id: int
    number: int
    content: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    note: str = Field(default="", max_length=500)
    author_id: int | None = Field(default=None)
    author_name: str = Field(default="", max_length=120)
    created_at: datetime = Field(default_factory=utcnow)


class ModelType(StrEnum):
    DALLE3 = "dalle3"
    GPT4 = "gpt4"
    CUSTOM = "custom"


ACTIVE_CONFIG = "is_active"


class GeneratorConfig(TenantOwned, table=True):
    """A named set of parameters for the outside image/text generator of one model type."""

    __tablename__ = "generator_config"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_generator_config_tenant_name"),
        # Exactly one active configuration per model type and shop, across every replica.
        Index(
            "uq_generator_config_one_active",
            "tenant_id",
            "model_type",
            unique=True,
            sqlite_where=text(ACTIVE_CONFIG),
            postgresql_where=text(ACTIVE_CONFIG),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    model_type: str = Field(max_length=16)  # ModelType
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", max_length=500)
    is_active: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


class Design(TenantOwned, table=True):
    """One design the generator made and reported, with what florists thought of it."""

    __tablename__ = "design"
    __table_args__ = (
        # Also what makes reporting a design twice add nothing (core.designs).
        UniqueConstraint("tenant_id", "design_id", name="uq_design_tenant_design_id"),
        Index("ix_design_tenant_created", "tenant_id", "created_at"),
        Index("ix_design_tenant_template", "tenant_id", "template_id"),
        Index("ix_design_tenant_style", "tenant_id", "style_id"),
        Index("ix_design_tenant_occasion", "tenant_id", "occasion"),
        CheckConstraint("rating IS NULL OR (rating >= 0 AND rating <= 5)", name="ck_design_rating"),
        CheckConstraint("tokens >= 0 AND cost >= 0", name="ck_design_usage"),
        same_shop_fk("template_id", "design_template"),
        same_shop_fk("template_version_id", "design_template_version"),
        same_shop_fk("style_id", "design_template"),
        same_shop_fk("reviewed_by", "app_user"),
    )
    id: int | None = Field(default=None, primary_key=True)
    design_id: str = Field(max_length=128)  # the generator's own id
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    image_url: str = Field(max_length=2000)
    model_type: str = Field(max_length=16)  # ModelType
    template_id: int | None = Field(default=None)
    template_version_id: int | None = Field(default=None)
    style_id: int | None = Field(default=None)
    occasion: str | None = Field(default=None, max_length=100)
    tokens: int = Field(default=0)
    cost: float = Field(default=0.0)
    rating: int | None = Field(default=None)  # 0..5
    approved: bool | None = Field(default=None)  # None: not decided yet
    favorite: bool = Field(default=False)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    reviewed_by: int | None = Field(default=None)
    reviewed_at: datetime | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)  # when the generator made it
    recorded_at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------------------------
# Response templates in use: each use the assistant reports with its outcome, and A/B tests
# between two versions of a template (core.template_usage, core.experiments).
# --------------------------------------------------------------------------------------------


class ExperimentStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # by a person, or by the escalation guardrail
    PROMOTED = "promoted"  # stopped, and its winner labelled production


RUNNING_EXPERIMENT = "status = 'running'"


class TemplateExperiment(TenantOwned, table=True):
    """An A/B test of two versions of a response template: customers are assigned to B by a
    hash of (experiment id, customer id) below `split`, so a customer always sees one variant."""

    __tablename__ = "template_experiment"
    __table_args__ = (
        same_shop_parent("template_experiment"),
        same_shop_fk("template_id", "design_template"),
        same_shop_fk("started_by", "app_user"),
        same_shop_fk("stopped_by", "app_user"),
        Index("ix_template_experiment_tenant_template", "tenant_id", "template_id"),
        # One running test per template and shop, across every replica.
        Index(
            "uq_template_experiment_one_running",
            "tenant_id",
            "template_id",
            unique=True,
            sqlite_where=text(RUNNING_EXPERIMENT),
            postgresql_where=text(RUNNING_EXPERIMENT),
        ),
        CheckConstraint("version_a <> version_b", name="ck_template_experiment_versions"),
        CheckConstraint("split > 0 AND split < 1", name="ck_template_experiment_split"),
        CheckConstraint(
            "min_effect > 0 AND min_effect < 1 AND alpha > 0 AND alpha < 1 "
            "AND power > 0 AND power < 1",
            name="ck_template_experiment_design",
        ),
        CheckConstraint(
            "status IN ('running', 'stopped', 'promoted')", name="ck_template_experiment_status"
        ),
        CheckConstraint(
            "winner IS NULL OR winner = version_a OR winner = version_b",
            name="ck_template_experiment_winner",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    template_id: int
    version_a: int  # the control: the production version when the test started
    version_b: int
    split: float = Field(default=0.5)  # the share of customers who get version B
    min_effect: float = Field(default=0.05)  # resolution-rate difference worth detecting
    alpha: float = Field(default=0.05)
    power: float = Field(default=0.8)
    note: str = Field(default="", max_length=500)
    status: str = Field(default=ExperimentStatus.RUNNING.value, max_length=16)
    started_by: int | None = Field(default=None)
    started_at: datetime = Field(default_factory=utcnow)
    stopped_by: int | None = Field(default=None)
    stopped_at: datetime | None = Field(default=None)
    stop_reason: str | None = Field(default=None, max_length=500)
    winner: int | None = Field(default=None)  # the version promoted


class UseOutcome(StrEnum):
    UNKNOWN = "unknown"  # not reported yet (outcome_at NULL), or reported as neither
    RESOLVED = "resolved"
    ESCALATED = "escalated"


class TemplateUse(TenantOwned, table=True):
    """One answer the assistant gave with a response template version, and how it ended."""

    __tablename__ = "template_use"
    __table_args__ = (
        # Also what makes reporting a use twice add nothing (core.template_usage).
        UniqueConstraint("tenant_id", "use_id", name="uq_template_use_tenant_use_id"),
        Index("ix_template_use_tenant_template_created", "tenant_id", "template_id", "created_at"),
        Index("ix_template_use_tenant_experiment", "tenant_id", "experiment_id", "variant"),
        CheckConstraint(
            "outcome IN ('unknown', 'resolved', 'escalated')", name="ck_template_use_outcome"
        ),
        CheckConstraint(
            "rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_template_use_rating"
        ),
        CheckConstraint(
            "variant IS NULL OR (variant IN ('A', 'B') AND experiment_id IS NOT NULL)",
            name="ck_template_use_variant",
        ),
        same_shop_fk("template_id", "design_template"),
        same_shop_fk("experiment_id", "template_experiment"),
    )
    id: int | None = Field(default=None, primary_key=True)
    use_id: str = Field(max_length=128)  # the assistant's own id for this use
    template_id: int
    version_number: int
    experiment_id: int | None = Field(default=None)  # the A/B test it counted for, if any
    variant: str | None = Field(default=None, max_length=1)  # A or B
    conversation_external_id: str = Field(max_length=128)
    customer_id: str = Field(max_length=128)
    outcome: str = Field(default=UseOutcome.UNKNOWN.value, max_length=16)
    rating: int | None = Field(default=None)  # 1..5, the customer's
    created_at: datetime = Field(default_factory=utcnow)  # when the answer was given
    outcome_at: datetime | None = Field(default=None)  # when its outcome was last reported


# --------------------------------------------------------------------------------------------
# Response templates: what full-text search and suggestions read (core.responses).
# --------------------------------------------------------------------------------------------

# On PostgreSQL the search document is a tsvector, written by core.responses with every save;
# on SQLite the column stays NULL and an FTS5 table (response_search_fts, SQLite only, created
# and kept in step by core.responses) does the searching.
SEARCH_DOCUMENT = Text().with_variant(TSVECTOR(), "postgresql")


class ResponseSearch(TenantOwned, table=True):
    """The searchable text of a response template's latest version, one row per template,
    rewritten on every save (core.responses); the versions stay the record."""

    __tablename__ = "response_search"
    __table_args__ = (
        UniqueConstraint("tenant_id", "template_id", name="uq_response_search_template"),
        same_shop_fk("template_id", "design_template"),
        Index("ix_response_search_document", "document", postgresql_using="gin"),
    )
    id: int | None = Field(default=None, primary_key=True)
    template_id: int
    name: str = Field(max_length=100)
    category: str = Field(default="", max_length=60)
    body: str = Field(sa_column=Column(Text, nullable=False))  # the response text
    phrases: str = Field(sa_column=Column(Text, nullable=False))  # trigger phrases, one a line
    intents: str = Field(sa_column=Column(Text, nullable=False))  # trigger intents, one a line
    active: bool = Field(default=True)
    document: str | None = Field(default=None, sa_column=Column(SEARCH_DOCUMENT, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------------------------
# Memory: what the assistant learns about each customer (core.memory), the rules that extract
# it, and what many customers of one shop share (patterns, and knowledge an admin approved).
# --------------------------------------------------------------------------------------------


class MemoryState(StrEnum):
    CURRENT = "current"
    SUPERSEDED = "superseded"  # a newer memory on the same key replaced it; kept as history
    DELETED = "deleted"  # an admin removed it as wrong; kept so extraction does not redo it


class KnowledgeStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class MemoryRule(TenantOwned, table=True):
    """A shop's extraction rule: a phrase in core.memory_rules' safe phrase language."""

    __tablename__ = "memory_rule"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_memory_rule_tenant_name"),
        same_shop_parent("memory_rule"),
        CheckConstraint("confidence > 0 AND confidence <= 1", name="ck_memory_rule_confidence"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    kind: str = Field(max_length=32)
    phrase: str = Field(max_length=200)
    key: str = Field(max_length=100)  # the key template ({key}, {value})
    confidence: float
    is_active: bool = Field(default=True)
    builtin: bool = Field(default=False)
    created_by: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = Field(default=1)


CURRENT_MEMORY = "state = 'current'"
SOURCED_MEMORY = "message_id IS NOT NULL"


class CustomerMemory(TenantOwned, table=True):
    """One thing a customer told the assistant, with the message it came from.

    A newer memory on the same (customer, kind, key) supersedes the current one, which stays
    as history; at most one is current (a partial unique index). One message yields a given
    (kind, key) once, so extracting a message again adds nothing."""

    __tablename__ = "customer_memory"
    __table_args__ = (
        Index("ix_customer_memory_tenant_customer", "tenant_id", "customer_id", "observed_at"),
        Index(
            "uq_customer_memory_current",
            "tenant_id",
            "customer_id",
            "kind",
            "key",
            unique=True,
            sqlite_where=text(CURRENT_MEMORY),
            postgresql_where=text(CURRENT_MEMORY),
        ),
        Index(
            "uq_customer_memory_source",
            "tenant_id",
            "message_id",
            "kind",
            "key",
            unique=True,
            sqlite_where=text(SOURCED_MEMORY),
            postgresql_where=text(SOURCED_MEMORY),
        ),
        # What aggregation groups by: current memories of the shop, by (kind, key, value).
        Index(
            "ix_customer_memory_tenant_pattern",
            "tenant_id",
            "kind",
            "key",
            "value",
            "customer_id",
            "confidence",
            "since",
            sqlite_where=text(CURRENT_MEMORY),
            postgresql_where=text(CURRENT_MEMORY),
        ),
        Index("ix_customer_memory_tenant_rule", "tenant_id", "rule_id"),
        CheckConstraint(
            "state IN ('current', 'superseded', 'deleted')", name="ck_customer_memory_state"
        ),
        CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name="ck_customer_memory_confidence"
        ),
        same_shop_parent("customer_memory"),
        same_shop_fk("rule_id", "memory_rule"),
        same_shop_fk("message_id", "message"),
        same_shop_fk("conversation_id", "conversation"),
    )
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    key: str = Field(max_length=100)
    value: str = Field(max_length=200)
    date_value: date | None = Field(default=None)  # important dates; year 2000 when not said
    confidence: float
    mentions: int = Field(default=1)  # times the customer said it again
    state: str = Field(default=MemoryState.CURRENT.value, max_length=16)
    rule_id: int | None = Field(default=None)  # None: an admin wrote it
    message_id: int | None = Field(default=None)  # provenance: the message it came from
    conversation_id: int | None = Field(default=None)
    observed_at: datetime = Field(default_factory=utcnow)  # when the customer said it
    # Since when the customer has held this value: a repeat of the same value supersedes the
    # row (each mention keeps its source) but carries `since` over.
    since: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = Field(default=None)  # when superseded or deleted
    superseded_by: int | None = Field(default=None)
    changed_by: int | None = Field(default=None)  # the admin who wrote or deleted it
    version: int = Field(default=1)


class MemoryPattern(TenantOwned, table=True):
    """A (kind, key, value) that several customers of the shop hold (core.memory.aggregate)."""

    __tablename__ = "memory_pattern"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "key", "value", name="uq_memory_pattern_value"),
        Index("ix_memory_pattern_tenant_customers", "tenant_id", "customers"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    key: str = Field(max_length=100)
    value: str = Field(max_length=200)
    customers: int
    avg_confidence: float
    conversations: int = Field(default=0)  # of those customers, after the memory, outcome known
    successes: int = Field(default=0)  # of those: resolved without escalation
    computed_at: datetime = Field(default_factory=utcnow)


class GlobalKnowledge(TenantOwned, table=True):
    """A pattern proposed as knowledge for the whole shop; an admin approves or rejects it."""

    __tablename__ = "global_knowledge"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "key", "value", name="uq_global_knowledge_value"),
        Index("ix_global_knowledge_tenant_status", "tenant_id", "status"),
        CheckConstraint(
            "status IN ('proposed', 'approved', 'rejected', 'withdrawn')",
            name="ck_global_knowledge_status",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    key: str = Field(max_length=100)
    value: str = Field(max_length=200)
    status: str = Field(default=KnowledgeStatus.PROPOSED.value, max_length=16)
    customers: int
    avg_confidence: float
    success_rate: float
    conversations: int
    proposed_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = Field(default=None)
    decided_by: int | None = Field(default=None)
    note: str | None = Field(default=None, sa_column=Column(Text))
    version: int = Field(default=1)
