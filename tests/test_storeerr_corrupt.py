"""A damaged store: every public call returns or raises StoreError naming the table and the
cause (never ArrowInvalid, OSError, DeltaError, FileNotFoundError or RunNotFoundError), and a
call on a damaged store changes nothing that is already stored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparktrack import TrackingClient
from sparktrack.entities import Metric, Param, RunTag
from sparktrack.errors import StoreError
from sparktrack._store.tracking_store import TrackingStore


def _data_files(table: Path) -> list[Path]:
    return sorted(table.glob("**/*.parquet"))


def _log_entries(table: Path) -> list[Path]:
    return sorted((table / "_delta_log").glob("*.json"))


# Every data file of the table is damaged, so that any read of it meets one.
def _garbage_data_files(table: Path) -> None:
    for path in _data_files(table):
        path.write_bytes(b"not parquet at all")


def _truncated_data_files(table: Path) -> None:
    for path in _data_files(table):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _missing_data_files(table: Path) -> None:
    for path in _data_files(table):
        path.unlink()


def _garbage_last_log_entry(table: Path) -> None:
    _log_entries(table)[-1].write_text('{"add": {"path": garbage')


def _garbage_first_log_entry(table: Path) -> None:
    _log_entries(table)[0].write_text("garbage")


def _missing_first_log_entry(table: Path) -> None:
    _log_entries(table)[0].unlink()


def _missing_log(table: Path) -> None:
    shutil.rmtree(table / "_delta_log")


CORRUPTIONS = {
    "garbage-data-files": _garbage_data_files,
    "truncated-data-files": _truncated_data_files,
    "missing-data-files": _missing_data_files,
    "garbage-last-log-entry": _garbage_last_log_entry,
    "garbage-first-log-entry": _garbage_first_log_entry,
    "missing-first-log-entry": _missing_first_log_entry,
    "missing-log": _missing_log,
}

# The calls that cannot answer without the table (others may answer from intact tables).
NEEDED_BY = {
    "runs": {"get_run", "get_metric_history", "search_runs"},
    "metrics": {"get_metric_history"},
    "params": {"get_run", "search_runs"},
    "tags": {"get_run", "search_runs"},
    "metric_summaries": {"get_run", "search_runs"},
    "experiments": {"search_experiments", "get_experiment"},
}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store with two runs of one experiment, committed in two batches (two log entries)."""
    root = tmp_path_factory.mktemp("corrupt") / "template"
    store = TrackingStore(str(root))
    experiment_id = store.create_experiment("damaged")
    store.set_experiment_tag(experiment_id, "team", "a")
    run_ids = []
    for name in ("first", "second"):
        run_id = store.create_run(experiment_id, run_name=name, user_id="u").run_id
        store.log_batch(run_id, params=[Param("p", name)], tags=[RunTag("t", name)],
                        metrics=[Metric("m", float(i), 1000 + i, i) for i in range(3)])
        store.update_run(run_id, status="FINISHED", end_time=5000)
        store.flush()
        run_ids.append(run_id)
    return root, experiment_id, run_ids


def _listing(root: Path) -> dict[str, int]:
    # The saved search state is a cache beside the tables, rebuilt at will: not the store.
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))
            if p.is_file() and "_search_state" not in p.parts}


def _outcomes(client: TrackingClient, experiment_id: str, run_id: str) -> dict[str, object]:
    calls = {
        "get_run": lambda: client.get_run(run_id),
        "get_metric_history": lambda: client.get_metric_history(run_id, "m"),
        "search_runs": lambda: client.search_runs([experiment_id], "params.p = 'first'"),
        "search_experiments": client.search_experiments,
        "get_experiment": lambda: client.get_experiment(experiment_id),
    }
    outcomes = {}
    for name, call in calls.items():
        try:
            call()
            outcomes[name] = "returned"
        except StoreError as error:
            outcomes[name] = error
    return outcomes


@pytest.mark.parametrize("table", sorted(NEEDED_BY))
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_damaged_table_is_a_store_error_naming_it(template, tmp_path, table, corruption):
    source, experiment_id, (run_id, _) = template
    root = tmp_path / "store"
    shutil.copytree(source, root)
    CORRUPTIONS[corruption](root / table)
    before = _listing(root)

    client = TrackingClient(str(root))
    outcomes = _outcomes(client, experiment_id, run_id)
    failed = {name for name, outcome in outcomes.items() if outcome != "returned"}
    assert NEEDED_BY[table] <= failed, outcomes
    for name in failed:
        message = str(outcomes[name])
        assert str(root / table) in message, (name, message)
        assert "0: <unknown>" not in message  # the engine's backtrace is left out
    assert _listing(root) == before  # reading changed nothing

    # Logging to it: committed (appends never read the damaged file) or StoreError.
    try:
        client.log_metric(run_id, "later", 1.0)
        client.set_tag(run_id, "later", "yes")
        client.flush()
    except StoreError as error:
        assert str(root / table) in str(error)
        after = _listing(root)
        assert all(after.get(path) == size for path, size in before.items())  # nothing lost
        # Repaired, the store takes the rows that were kept buffered meanwhile.
        shutil.rmtree(root / table)
        shutil.copytree(source / table, root / table)
        client.flush()
        run = TrackingClient(str(root)).get_run(run_id)
        assert run.data.metrics.get("later") in (None, 1.0)  # None: refused before buffering
        assert run.data.params == {"p": "first"}
    else:
        after = _listing(root)
        assert all(after.get(path) == size for path, size in before.items())  # nothing lost


def test_a_log_entry_deleted_under_a_reader_is_a_store_error(template, tmp_path):
    """The newest log entry vanishes after a process read the table: its next read says so."""
    source, experiment_id, (run_id, _) = template
    root = tmp_path / "store"
    shutil.copytree(source, root)
    client = TrackingClient(str(root))
    assert client.get_run(run_id).data.params == {"p": "first"}
    _log_entries(root / "runs")[-1].unlink()
    with pytest.raises(StoreError, match=r"^broken Delta log of .*runs"):
        client.get_run(run_id)


def test_an_empty_table_folder_still_reads_as_empty(tmp_path):
    """A table folder with nothing in it (a creation in progress elsewhere) is not damage."""
    root = tmp_path / "store"
    (root / "runs" / "_delta_log").mkdir(parents=True)
    client = TrackingClient(str(root))
    assert len(client.search_runs(["0"])) == 0
