"""Import speed and memory: a 100,000-row CSV through `trellis import`'s code path.

Prints one JSON object. Reference, side by side on the same file and database: pandas
read_csv + DataFrame.to_sql (the usual quick way), which reads the whole file into memory.
Goals (issue #3): PostgreSQL >= 20,000 rows/s, SQLite >= 5,000 rows/s, re-import >= 50,000
rows/s skipped, memory flat (peak RSS growth about the same for 20k and 100k rows).
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BANKING77, fresh_database, measure, pg_server_url

ROWS = 100_000


def make_csv(path: Path, rows: int) -> None:
    """BANKING77 training texts, made unique with an order reference, cycled to `rows`."""
    with (BANKING77 / "train.csv").open(encoding="utf-8") as src:
        base = list(csv.DictReader(src))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "intent"])
        for i in range(rows):
            row = base[i % len(base)]
            writer.writerow([f"{row['text']} (order #{100000 + i})", row["intent"]])


def trellis_import(url: str, path: str) -> dict[str, Any]:
    from sqlmodel import select

    from core.access import Actor
    from core.imports import import_upload
    from core.tenants import create_tenant
    from db.engine import make_engine, session_scope
    from db.models import Tenant

    engine = make_engine(url)
    with session_scope(None, engine=engine) as session:
        shop = session.exec(select(Tenant)).first() or create_tenant(
            session=session, name="Bench shop"
        )
        assert shop.id is not None
        actor = Actor.cli(shop.id)
    with session_scope(actor, engine=engine) as session, open(path, "rb") as stream:
        outcome = import_upload(
            session=session, actor=actor, stream=stream, filename=Path(path).name
        )
    assert outcome.error is None and outcome.report is not None, outcome.error
    return {"inserted": outcome.report.inserted, "duplicates": outcome.report.duplicates}


def pandas_reference(url: str, path: str) -> dict[str, Any]:
    import pandas as pd
    from sqlalchemy import create_engine

    frame = pd.read_csv(path)
    written = frame.to_sql(
        "reference_import",
        create_engine(url),
        if_exists="append",
        index=False,
        method="multi",
        chunksize=2_000,
    )
    return {"inserted": int(written or len(frame))}


TRELLIS_MODULES = ("core.imports", "core.dataset", "core.tenants", "db.engine", "sqlmodel")
PANDAS_MODULES = ("pandas", "sqlalchemy")


def bench_backend(backend: str, big: Path, small: Path, workdir: Path) -> dict[str, Any]:
    with fresh_database(backend, workdir) as db:
        first = measure(trellis_import, db.app_url, str(big), preload=TRELLIS_MODULES)
        again = measure(trellis_import, db.app_url, str(big), preload=TRELLIS_MODULES)
    with fresh_database(backend, workdir) as db:
        small_run = measure(trellis_import, db.app_url, str(small), preload=TRELLIS_MODULES)
    with fresh_database(backend, workdir) as db:
        ref = measure(pandas_reference, db.owner_url, str(big), preload=PANDAS_MODULES)
    assert first["result"]["inserted"] == ROWS and again["result"]["duplicates"] == ROWS
    return {
        "import_rows_per_s": round(ROWS / first["seconds"]),
        "reimport_skipped_rows_per_s": round(ROWS / again["seconds"]),
        "import_seconds": round(first["seconds"], 2),
        "peak_rss_growth_mib_100k": round(first["rss_growth_mib"], 1),
        "peak_rss_growth_mib_20k": round(small_run["rss_growth_mib"], 1),
        "reference_pandas_to_sql_rows_per_s": round(ROWS / ref["seconds"]),
        "reference_peak_rss_growth_mib_100k": round(ref["rss_growth_mib"], 1),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        big, small = workdir / "examples-100k.csv", workdir / "examples-20k.csv"
        make_csv(big, ROWS)
        make_csv(small, ROWS // 5)
        result: dict[str, Any] = {
            "benchmark": "import",
            "rows": ROWS,
            "file_mib": round(big.stat().st_size / 2**20, 1),
        }
        result["sqlite"] = bench_backend("sqlite", big, small, workdir)
        if pg_server_url():
            result["postgresql"] = bench_backend("postgresql", big, small, workdir)
        else:
            result["postgresql"] = "skipped: set BENCH_DATABASE_URL (or TEST_DATABASE_URL)"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
