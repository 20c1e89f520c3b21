"""The database itself keeps one training run at a time and one serving model per shop, so the
rule holds across app replicas."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from db.engine import session_scope
from db.models import ModelVersion, TrainingRun
from tests.factories import make_shop


def _run(shop, status):
    return TrainingRun(tenant_id=shop.tenant_id, status=status)


def _model(shop, version, active):
    return ModelVersion(
        tenant_id=shop.tenant_id,
        version=version,
        artifact=b"x",
        sha256="0" * 64,
        size_bytes=1,
        is_active=active,
    )


@pytest.mark.parametrize("second", ["pending", "running"])
def test_a_second_active_run_of_a_shop_is_refused(engine, second):
    bloom = make_shop(engine)
    with session_scope(bloom.admin, engine=engine) as s:
        s.add(_run(bloom, "running"))
    with pytest.raises(IntegrityError), session_scope(bloom.admin, engine=engine) as s:
        s.add(_run(bloom, second))
        s.flush()


def test_finished_runs_and_other_shops_do_not_block(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    with session_scope(bloom.admin, engine=engine) as s:
        s.add_all([_run(bloom, "completed"), _run(bloom, "failed"), _run(bloom, "running")])
    with session_scope(fern.admin, engine=engine) as s:
        s.add(_run(fern, "running"))


def test_only_one_model_serves_per_shop(engine):
    bloom, fern = make_shop(engine, "Bloom"), make_shop(engine, "Fern")
    with session_scope(bloom.admin, engine=engine) as s:
        s.add_all([_model(bloom, 1, True), _model(bloom, 2, False)])
    with session_scope(fern.admin, engine=engine) as s:
        s.add(_model(fern, 1, True))
    with pytest.raises(IntegrityError), session_scope(bloom.admin, engine=engine) as s:
        s.add(_model(bloom, 3, True))
        s.flush()
