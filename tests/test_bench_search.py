"""jobs/bench_search.py end to end on a tiny store: every figure is there, the searches of the
new processes and of this one find the same runs, Spark and sparktrack's API give the same
answers, and a kept store is measured again without being filled again."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = 120
QUOTA = 70  # runs per experiment here: the store is split over two experiments


@pytest.fixture()
def bench(monkeypatch):
    sys.path.insert(0, ROOT)
    monkeypatch.setenv("SPARKTRACK_MAX_RUNS_PER_EXPERIMENT", str(QUOTA))
    from jobs import bench_search

    return bench_search


def _check_row(bench, row: dict, store: str) -> None:
    assert row["runs"] == RUNS and row["experiments"] == 2 and row["store"] == store
    for name in ("sparktrack_cold_s", "sparktrack_new_process_s", "new_process_open_s",
                 "sparktrack_in_process_restart_s", "sparktrack_filtered_s", "sparktrack_all_s",
                 "cold_peak_rss_mb", "new_process_peak_rss_mb",
                 *(f"{side}_{question}_s" for side in ("spark", "api")
                   for question in ("per_user", "top", "history"))):
        assert row[name] > 0, name
    # The first search is the best of the attempts (one per --repeat), each listed.
    assert row["sparktrack_cold_s"] == min(row["sparktrack_cold_all_s"])
    # Every way of running the filtered search finds the same number of runs.
    assert 0 < row["matched"] == row["matched_first"] == row["matched_new_process"] <= 100
    assert row["returned_all"] == RUNS
    # Spark and the API: the same answers, and the answers are the store's.
    assert row["agree_per_user"] and row["agree_top"] and row["agree_history"]
    assert row["spark_per_user"] == row["api_per_user"]
    assert sum(row["spark_per_user"].values()) == RUNS
    assert len(row["spark_per_user"]) == bench.USERS
    assert row["spark_top"] == row["api_top"] and len(row["spark_top"]) == 100
    assert len(row["spark_history"]) == len(row["api_history"]) == bench.HISTORY_POINTS
    assert [point[0] for point in row["spark_history"]] == list(range(bench.HISTORY_POINTS))
    for table in (*bench.TABLES, "state"):
        assert row[f"disk_{table}_bytes"] > 0, table


@pytest.mark.spark
@pytest.mark.slow  # new Python processes and Spark jobs: about 10 s alone, 35 s on a busy machine
def test_bench_measures_every_figure_and_reuses_a_kept_store(bench, spark, tmp_path):
    lines: list[str] = []
    kept = str(tmp_path / "kept")
    [first] = bench.run(print_fn=lines.append, sizes=(RUNS,), mlflow_sizes=(), repeat=1,
                        keep=kept, spark=spark)
    store = os.path.join(kept, f"runs-{RUNS}")
    _check_row(bench, first, store)
    assert any(line.startswith(f"== {RUNS} runs (2 experiment(s))") for line in lines)
    assert any("filling sparktrack" in line for line in lines)

    lines.clear()
    [again] = bench.run(print_fn=lines.append, sizes=(RUNS,), mlflow_sizes=(), repeat=1,
                        store=kept, spark=spark)
    _check_row(bench, again, store)
    assert not any("filling sparktrack" in line for line in lines)
    assert any(f"reusing the store of {RUNS} runs" in line for line in lines)
    # The same runs: not a second fill.
    assert again["spark_per_user"] == first["spark_per_user"]
    assert again["api_top"] == first["api_top"]


def test_store_option_refuses_a_store_not_filled(bench, tmp_path):
    from sparktrack.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=f"runs-{RUNS}.*--keep"):
        bench.run(print_fn=lambda line: None, sizes=(RUNS,), mlflow_sizes=(),
                  store=str(tmp_path / "empty"))


def test_a_fill_that_stopped_before_its_end_is_not_reused(bench, tmp_path):
    from sparktrack import TrackingClient
    from sparktrack.errors import InvalidStateError

    folder = tmp_path / "kept" / f"runs-{RUNS}"
    client = TrackingClient(str(folder))
    client.create_experiment(f"search-{RUNS}-1")  # as a killed fill leaves it: no tag
    client.flush()
    with pytest.raises(InvalidStateError, match="incomplete fill"):
        bench.run(print_fn=lambda line: None, sizes=(RUNS,), mlflow_sizes=(),
                  keep=str(tmp_path / "kept"))
