"""Every Trellis setting, read from the environment (and a `.env` file) in one place."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "trellis.db"
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_SQLITE_PATH}"


class Settings(BaseSettings):
    """Settings; each one is documented in the README's settings table (a test checks)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL"),
        description="Database the app and CLI use. PostgreSQL: connect as the app role.",
    )
    migration_database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MIGRATION_DATABASE_URL"),
        description="Owner connection for `trellis init-db` on PostgreSQL (default: DATABASE_URL).",
    )
    log_level: str = Field(
        default="INFO",
        validation_alias=AliasChoices("TRELLIS_LOG_LEVEL"),
        description="Logging level on stderr: DEBUG, INFO, WARNING, ERROR.",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("TRELLIS_LOGIN_MAX_FAILURES"),
        description="Failed logins in a row that lock an account.",
    )
    login_lockout_minutes: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("TRELLIS_LOGIN_LOCKOUT_MINUTES"),
        description="How long a locked account stays locked.",
    )
    min_password_length: int = Field(
        default=10,
        ge=8,
        validation_alias=AliasChoices("TRELLIS_MIN_PASSWORD_LENGTH"),
        description="Shortest password accepted for a new or reset password.",
    )
    page_size: int = Field(
        default=50,
        ge=5,
        le=500,
        validation_alias=AliasChoices("TRELLIS_PAGE_SIZE"),
        description="Rows per page in long tables (audit log, users).",
    )
    max_upload_mb: int = Field(
        default=50,
        ge=1,
        validation_alias=AliasChoices("TRELLIS_MAX_UPLOAD_MB"),
        description="Largest file an import accepts (keep maxUploadSize in .streamlit equal).",
    )
    max_import_rows: int = Field(
        default=1_000_000,
        ge=1,
        validation_alias=AliasChoices("TRELLIS_MAX_IMPORT_ROWS"),
        description="Most rows one imported file may have.",
    )
    max_text_length: int = Field(
        default=2_000,
        ge=1,
        validation_alias=AliasChoices("TRELLIS_MAX_TEXT_LENGTH"),
        description="Longest message text accepted; longer rows are rejected.",
    )
    max_json_depth: int = Field(
        default=20,
        ge=1,
        validation_alias=AliasChoices("TRELLIS_MAX_JSON_DEPTH"),
        description="Deepest nesting accepted in a JSONL line.",
    )
    corrected_weight: float = Field(
        default=2.0,
        gt=0,
        validation_alias=AliasChoices("TRELLIS_CORRECTED_WEIGHT"),
        description="How many times an example a person corrected counts in training.",
    )
    train_min_confidence: float = Field(
        default=0.9,
        ge=0,
        le=1,
        validation_alias=AliasChoices("TRELLIS_TRAIN_MIN_CONFIDENCE"),
        description="Unreviewed examples train only above this detected confidence.",
    )
    gate_max_f1_drop: float = Field(
        default=0.05,
        ge=0,
        le=1,
        validation_alias=AliasChoices("TRELLIS_GATE_MAX_F1_DROP"),
        description="Largest macro-F1 drop from the serving model a new model may deploy with.",
    )
    gate_intent_floor: float = Field(
        default=0.15,
        ge=0,
        le=1,
        validation_alias=AliasChoices("TRELLIS_GATE_INTENT_FLOOR"),
        description="Largest F1 drop of one well-tested intent a new model may deploy with.",
    )
    gate_min_support: int = Field(
        default=20,
        ge=1,
        validation_alias=AliasChoices("TRELLIS_GATE_MIN_SUPPORT"),
        description="Test examples an intent needs before the per-intent floor applies to it.",
    )
    shadow_messages: int = Field(
        default=1_000,
        ge=0,
        validation_alias=AliasChoices("TRELLIS_SHADOW_MESSAGES"),
        description="Latest live messages a candidate model replays against the serving one.",
    )
    auto_retrain_after: int = Field(
        default=100,
        ge=1,
        validation_alias=AliasChoices("TRELLIS_AUTO_RETRAIN_AFTER"),
        description="New reviewed examples since the last run that start a run by themselves.",
    )
    encoder_path: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TRELLIS_ENCODER_PATH"),
        description="Local all-MiniLM-L6-v2 model directory (default: the packaged copy).",
    )


def get_settings() -> Settings:
    """Read the settings now (cheap; not cached so tests and the CLI see env changes)."""
    return Settings()


def env_names() -> list[str]:
    """The environment variable that sets each setting (for docs and their test)."""
    names = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        names.append(str(alias.choices[0]))
    return names
