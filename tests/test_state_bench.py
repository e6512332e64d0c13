"""jobs/bench_search.py grows MLflow's SQLite store by copying runs: every copy gets an id no
other run has, whatever the original ids are."""

from __future__ import annotations

import os
import re
import sqlite3
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mlflow_tables(path: str) -> None:
    """The five run tables with MLflow's own definitions (keys, constraints, indexes)."""
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )

    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        SqlRun.metadata.create_all(engine, tables=[
            model.__table__ for model in (SqlRun, SqlParam, SqlMetric, SqlLatestMetric, SqlTag)
        ])
    finally:
        engine.dispose()


def _add_run(con: sqlite3.Connection, run_uuid: str, start: int) -> None:
    con.execute(
        "INSERT INTO runs (run_uuid, name, status, start_time, end_time, lifecycle_stage, "
        "artifact_uri, experiment_id) VALUES (?, ?, 'FINISHED', ?, ?, 'active', 'a', 1)",
        (run_uuid, f"name-{run_uuid}", start, start + 1),
    )
    con.execute("INSERT INTO params (key, value, run_uuid) VALUES ('p', ?, ?)",
                (f"value-{run_uuid}", run_uuid))
    for table in ("metrics", "latest_metrics"):
        con.execute(f"INSERT INTO {table} (key, value, timestamp, step, is_nan, run_uuid) "
                    "VALUES ('m', ?, ?, 0, 0, ?)", (start / 1000, start, run_uuid))
    con.execute("INSERT INTO tags (key, value, run_uuid) VALUES ('t', ?, ?)",
                (f"tag-{run_uuid}", run_uuid))


def test_copied_runs_get_ids_no_other_run_has(tmp_path):
    sys.path.insert(0, ROOT)
    from jobs.bench_search import _replicate_mlflow_runs

    db = str(tmp_path / "mlflow.db")
    _mlflow_tables(db)
    # Ids whose last four digits are a copy number, and ids equal but for those digits: the
    # ones numbering copies by their last digits gave an id already in the store.
    prefix = "0123456789abcdef0123456789ab"
    originals = [f"{prefix}{n:04d}" for n in (1, 2, 3)] + [f"{prefix}ffff", "f" * 32]
    con = sqlite3.connect(db)
    with con:
        for index, run_uuid in enumerate(originals):
            _add_run(con, run_uuid, 1_000 + index)
    con.close()

    _replicate_mlflow_runs(db, 4)

    con = sqlite3.connect(db)
    try:
        ids = [row[0] for row in con.execute("SELECT run_uuid FROM runs")]
        assert len(ids) == len(set(ids)) == 4 * len(originals)
        assert set(originals) <= set(ids)
        assert all(re.fullmatch("[0-9a-f]{32}", run_uuid) for run_uuid in ids)
        for table in ("params", "metrics", "latest_metrics", "tags"):
            rows = con.execute(f"SELECT run_uuid FROM {table}").fetchall()
            assert sorted(row[0] for row in rows) == sorted(ids)
        # Each copy carries its original's values; only the id and the times differ.
        copies = con.execute(
            "SELECT r.run_uuid, r.name, p.value, t.value, r.start_time FROM runs r "
            "JOIN params p USING (run_uuid) JOIN tags t USING (run_uuid) ORDER BY r.start_time"
        ).fetchall()
        for copy in range(4):
            for index, original in enumerate(originals):
                run_uuid, name, param, tag, start = copies[copy * len(originals) + index]
                assert (name, param, tag) == (f"name-{original}", f"value-{original}",
                                              f"tag-{original}")
                assert start == 1_000 + index + copy * len(originals)
                assert (run_uuid == original) == (copy == 0)
    finally:
        con.close()
