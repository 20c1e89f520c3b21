"""One import as a user starts it: a file, maybe a profile, and the profile's use recorded.

The file's rows are all or nothing (a savepoint); the profile's success or failure is recorded
either way, so a profile that keeps failing sinks in every shop's ranking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from sqlmodel import Session

from core import dataset, profiles, registry
from core.access import Actor, Role, require_role
from core.errors import FileRefused
from core.file_spec import ReadSpec


@dataclass(frozen=True)
class ImportOutcome:
    """What happened: the report (when the file was read) and, when nothing was written, why."""

    report: dataset.ImportReport | None
    error: str | None
    profile: str | None
    profile_success: bool | None

    def as_json(self) -> dict[str, object]:
        report = self.report
        return {
            "inserted": report.inserted if report else 0,
            "duplicates": report.duplicates if report else 0,
            "rejected": report.rejected if report else 0,
            "profile": self.profile,
        }


def import_upload(
    *,
    session: Session,
    actor: Actor,
    stream: BinaryIO,
    filename: str,
    profile_id: int | None = None,
    spec: ReadSpec | None = None,
    valid_only: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportOutcome:
    """Import a file (admin); a profile, when given, supplies the ReadSpec and counts the use."""
    require_role(actor, Role.ADMIN)
    profile = (
        profiles.get_profile(session=session, actor=actor, profile_id=profile_id)
        if profile_id is not None
        else None
    )
    if profile is not None:
        spec = profile.read_spec()
    try:
        with session.begin_nested():
            report = dataset.import_file(
                session=session,
                actor=actor,
                stream=stream,
                filename=filename,
                spec=spec,
                valid_only=valid_only,
                progress=progress,
            )
    except dataset.RowsRejected as exc:
        return _refused(session, actor, profile, str(exc), exc.report)
    except FileRefused as exc:
        return _refused(session, actor, profile, str(exc), None)
    if report.kind == "conversations" and report.inserted:
        # New customer messages are pending examples: give them the serving model's answer.
        registry.fill_predictions(session=session, actor=actor)
    success = None
    if profile is not None:
        success = profiles.record_use(
            session=session,
            actor=actor,
            profile_id=profile.id,
            valid_rows=report.valid_rows,
            total_rows=report.total_rows,
        )
    return ImportOutcome(report, None, profile.name if profile else None, success)


def _refused(
    session: Session,
    actor: Actor,
    profile: profiles.ProfileView | None,
    error: str,
    report: dataset.ImportReport | None,
) -> ImportOutcome:
    """Nothing was written; the profile still counts a use, judged by how much it could read."""
    if profile is None:
        return ImportOutcome(report, error, None, None)
    valid, total = (report.valid_rows, report.total_rows) if report else (0, 0)
    success = profiles.record_use(
        session=session, actor=actor, profile_id=profile.id, valid_rows=valid, total_rows=total
    )
    return ImportOutcome(report, error, profile.name, success)
