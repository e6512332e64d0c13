"""jobs/bench_writers.py at tiny sizes, so the job does not rot: real writer processes into one
store, nothing lost, maintenance leaves fewer files, searches find the runs before and after."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobs import bench_writers  # noqa: E402
from sparktrack.errors import InvalidInputError  # noqa: E402

LOGGED_TABLES = ("runs", "params", "metrics", "tags", "metric_summaries")


def test_writers_lose_nothing_and_maintenance_compacts():
    lines: list[str] = []
    result = bench_writers.run(print_fn=lines.append, processes=3, runs=4, repeat=1,
                               progress_every=2)

    assert result["exit_codes"] == [0, 0, 0]
    assert result["runs"] == 12 and result["points"] == 12 * 3 * 3
    assert not any(result["lost"].values()) and not any(result["lost_after"].values())
    assert "lost: 0" in lines and "after maintenance, lost: 0" in lines
    for table in LOGGED_TABLES:
        before, after = result["tables_before"][table], result["tables_after"][table]
        # Every writer committed at least once; compaction leaves one file per experiment.
        assert before["files"] >= 3 and after["files"] == 1, table
        assert after["versions"] > before["versions"], table
    assert result["tables_after"]["runs_latest"]["files"] >= 1
    # The filter matches runs with lr 0.003 and a small loss: some of these 12 do.
    assert result["search_before"]["matched"] == result["search_after"]["matched"] > 0
    assert result["size_after"]["search_state_bytes"] > 0
    assert result["wall_s"] > 0 and result["runs_per_s"] > 0
    assert not os.path.exists(lines[0].split(" into ")[1].removesuffix(" ..."))  # removed


def test_verification_counts_what_a_store_lost(tmp_path):
    # The check itself: a run that is missing or holds other values is counted, not passed.
    from sparktrack import TrackingClient

    client = TrackingClient(str(tmp_path))
    experiment_id = client.create_experiment("partial")
    for index, status in ((0, "FINISHED"), (1, "RUNNING")):
        run_id = client.create_run(experiment_id, run_name=f"w0-r{index}").info.run_id
        for key, value in bench_writers._params(0, index).items():
            client.log_param(run_id, key, value)
        for step in range(bench_writers.STEPS - 1):  # the last step is missing
            for key in bench_writers.METRIC_KEYS:
                client.log_metric(run_id, key, bench_writers._metric(key, 0, index, step),
                                  step=step)
        client.set_tag(run_id, *bench_writers.TAG)
        if status == "FINISHED":
            client.set_terminated(run_id)
    client.create_run(experiment_id, run_name="w7-r0")  # no writer logged it
    client.flush()

    lost = bench_writers._verify(client, experiment_id, processes=1, runs=3)
    keys, steps = len(bench_writers.METRIC_KEYS), bench_writers.STEPS
    assert lost == {"runs": 1, "status": 1, "params": 3, "tags": 1,
                    "latest": 2 * keys + keys, "points": 2 * keys + keys * steps, "extra": 1}
    assert bench_writers._lost_line(lost).startswith("lost: runs 1, status 1, params 3")


@pytest.mark.parametrize("sizes", [
    {"processes": 0, "runs": 4}, {"processes": 2, "runs": 0}, {"processes": 1_000, "runs": 1_000},
])
def test_bad_sizes_are_refused_before_anything_runs(sizes):
    with pytest.raises(InvalidInputError, match="processes"):
        bench_writers.run(print_fn=lambda line: None, **sizes)
