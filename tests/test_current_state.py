"""The cached current state search reads: after the first search of an experiment, later
searches read only the files committed since. Whatever was committed in between (new runs,
metric points, tag deletions, renames, other writers, compaction, gc), a search on the warm
state must answer exactly what a search on a cold store answers.

Also: the numpy fast paths that pick the newest/oldest row per group and merge metric
summaries agree with the plain sort/group-by implementations they replace.
"""

from __future__ import annotations

import os
import random
import threading
from datetime import timedelta

import pyarrow as pa
import pytest

from sparktrack import Metric, Param, RunTag, TrackingClient
from sparktrack.config import Settings
from sparktrack.entities import ViewType
from sparktrack.maintenance import compact
from sparktrack._run_search import search_run_page
from sparktrack._store import TrackingStore, open_store
from sparktrack._store.rows import _pick_by_sorting, newest_rows, oldest_rows
from sparktrack._store.schemas import METRIC_SUMMARIES, TAGS
from sparktrack._store.summaries import _merge_by_group, merge_summaries
from sparktrack._store.state_files import wait_for_saves


def _snapshot(store: TrackingStore, experiment_id: str, **search) -> list[tuple]:
    """Every matching run as (id, name, status, params, metrics, tags), in search order."""
    runs, _ = search_run_page(store, [experiment_id], max_results=1000, **search)
    return [
        (r.info.run_id, r.info.run_name, r.info.status, r.info.lifecycle_stage,
         r.data.params, r.data.metrics, r.data.tags)
        for r in runs
    ]


def _assert_warm_equals_cold(client: TrackingClient, experiment_id: str, **search) -> list:
    warm = _snapshot(open_store(client.store_root), experiment_id, **search)
    # Its own empty caches, and no saved state: everything from the Delta files.
    cold_store = TrackingStore(client.store_root, settings=Settings(save_search_state=False))
    assert warm == _snapshot(cold_store, experiment_id, **search)
    return warm


def _new_run(client, experiment_id, name, *, params=None, metrics=None, tags=None, start=None):
    run = client.create_run(experiment_id, run_name=name, start_time=start)
    client.log_batch(
        run.info.run_id,
        params=[Param(k, v) for k, v in (params or {}).items()],
        metrics=[Metric(k, v, 1, 0) for k, v in (metrics or {}).items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )
    return run.info.run_id


@pytest.fixture()
def client(store_uri):
    return TrackingClient(store_uri)


def test_search_after_commits_of_every_kind_matches_a_cold_store(client):
    experiment_id = client.create_experiment("warm")
    first = _new_run(client, experiment_id, "a", params={"p": "1"}, metrics={"m": 0.5},
                     tags={"team": "x"}, start=1000)
    second = _new_run(client, experiment_id, "b", params={"p": "2"}, metrics={"m": 0.9},
                      start=2000)
    client.flush()
    before = _assert_warm_equals_cold(client, experiment_id, order_by=["metrics.m DESC"])
    assert [row[0] for row in before] == [second, first]

    # New points change the latest, min and max of an existing summary.
    client.log_metric(first, "m", 0.1, step=1)
    client.log_metric(first, "m", 2.0, step=2)
    client.set_tag(second, "team", "y")
    client.delete_tag(first, "team")
    client.update_run(second, name="b-renamed")
    third = _new_run(client, experiment_id, "c", params={"p": "3"}, metrics={"m": 1.5},
                     start=3000)
    client.set_terminated(third, status="FAILED")
    client.flush()

    after = _assert_warm_equals_cold(client, experiment_id, order_by=["metrics.m DESC"])
    assert [row[0] for row in after] == [first, third, second]
    by_id = {row[0]: row for row in after}
    assert by_id[first][5] == {"m": 2.0}
    assert "team" not in by_id[first][6]
    assert by_id[second][1] == "b-renamed" and by_id[second][6]["team"] == "y"
    assert by_id[third][2] == "FAILED"
    for filter_string, expected in (
        ("MIN(metrics.m) < 0.2", {first}),
        ("MAX(metrics.m) > 1.9", {first}),
        ("tags.team = 'y'", {second}),
        ("tags.team IS NULL", {first, third}),
        ("params.p = '3'", {third}),
    ):
        rows = _assert_warm_equals_cold(client, experiment_id, filter_string=filter_string)
        assert {row[0] for row in rows} == expected, filter_string

    client.delete_run(third)
    rows = _assert_warm_equals_cold(client, experiment_id, view_type=ViewType.DELETED_ONLY)
    assert [row[0] for row in rows] == [third]


def test_writes_of_another_store_instance_are_seen(client):
    experiment_id = client.create_experiment("two-writers")
    _new_run(client, experiment_id, "mine", metrics={"m": 1.0})
    client.flush()
    assert len(_snapshot(open_store(client.store_root), experiment_id)) == 1
    other = TrackingStore(client.store_root)  # as another process would write
    theirs = other.create_run(experiment_id, run_name="theirs", user_id="u", start_time=5)
    other.log_batch(theirs.run_id, metrics=[Metric("m", 7.0, 1, 0)])
    other.flush()
    rows = _assert_warm_equals_cold(client, experiment_id, filter_string="metrics.m > 5")
    assert [row[0] for row in rows] == [theirs.run_id]


def test_an_older_tag_committed_after_its_deletion_stays_deleted(client):
    experiment_id = client.create_experiment("late-tag")
    run_id = _new_run(client, experiment_id, "r", tags={"t": "v0"})
    client.flush()
    tags = open_store(client.store_root).tables[TAGS.name]

    def commit_tag(value: str, *, deleted: bool, updated_at: int) -> None:
        tags.append(pa.table({
            "run_id": [run_id], "experiment_id": [experiment_id], "key": ["t"],
            "value": [value], "deleted": [deleted], "updated_at": [updated_at],
        }, schema=TAGS.schema))

    later = 2**62
    commit_tag("", deleted=True, updated_at=later)
    assert _snapshot(open_store(client.store_root), experiment_id)[0][6].get("t") is None
    # A writer whose clock or buffer was behind commits an older value afterwards.
    commit_tag("stale", deleted=False, updated_at=later - 1)
    rows = _assert_warm_equals_cold(client, experiment_id)
    assert rows[0][6].get("t") is None


def test_compaction_and_gc_replace_files_and_the_state_follows(client):
    experiment_id = client.create_experiment("rewritten")
    ids = []
    for i in range(4):  # one commit each: several small files to compact
        ids.append(_new_run(client, experiment_id, f"r{i}", params={"i": str(i)},
                            metrics={"m": float(i)}, start=1000 + i))
        client.flush()
    before = _assert_warm_equals_cold(client, experiment_id)
    compact(client.store_root)
    assert _assert_warm_equals_cold(client, experiment_id) == before

    client.delete_run(ids[0])
    client.gc(older_than=timedelta(0))
    rows = _assert_warm_equals_cold(client, experiment_id, view_type=ViewType.ALL)
    assert [row[0] for row in rows] == list(reversed(ids[1:]))


def _random_rows(rng: random.Random, n: int, runs: int = 30) -> pa.Table:
    return pa.table({
        "run_id": [f"r{rng.randrange(runs)}" for _ in range(n)],
        "key": [f"k{rng.randrange(4)}" for _ in range(n)],
        "at": [rng.randrange(5) for _ in range(n)],  # many ties
        "value": [f"v{rng.randrange(3)}" for _ in range(n)],
        "row": list(range(n)),
    })


# 30 runs: nearly every (run, key) has several rows; 1,000: most have one, some several (the
# rows of single-row groups are kept as they are, only the others are sorted).
# Tables read from many files come in many chunks (some empty): the keys are encoded chunk by
# chunk against one dictionary.
@pytest.mark.parametrize("chunk_rows", [None, 7], ids=["one chunk", "chunks of 7 and empty"])
@pytest.mark.parametrize("runs", [30, 1000])
@pytest.mark.parametrize("seed", range(5))
def test_fast_pick_agrees_with_sorting_including_ties(seed, runs, chunk_rows):
    rows = _random_rows(random.Random(seed), 400, runs)
    if chunk_rows is not None:
        batches = rows.to_batches(max_chunksize=chunk_rows)
        rows = pa.Table.from_batches([batches[0], batches[0].slice(0, 0), *batches[1:]])
        assert rows.column("run_id").num_chunks > 50
    keys = ["run_id", "key"]
    newest = newest_rows(rows, keys, "at")
    oldest = oldest_rows(rows, keys, "at")
    oldest_by_value = oldest_rows(rows, keys, "at", tie_break="value")

    def by_group(table):
        return sorted(table.to_pylist(), key=lambda r: (r["run_id"], r["key"]))

    assert by_group(newest) == by_group(_pick_by_sorting(rows, keys, "at", "descending"))
    assert by_group(oldest) == by_group(_pick_by_sorting(rows, keys, "at", "ascending"))
    assert by_group(oldest_by_value) == by_group(
        _pick_by_sorting(rows, keys, "at", "ascending", "value"))
    assert newest.num_rows == len({(r["run_id"], r["key"]) for r in rows.to_pylist()})
    # Ties go to the first row in table order, as the stable sort does.
    for picked in by_group(newest):
        rivals = [r for r in rows.to_pylist()
                  if (r["run_id"], r["key"], r["at"]) == (picked["run_id"], picked["key"],
                                                          picked["at"])]
        assert picked["row"] == min(r["row"] for r in rivals)


def test_pick_with_a_null_key_falls_back_to_sorting():
    rows = pa.table({"run_id": ["a", None, "a", None], "at": [1, 2, 3, 4]})
    picked = newest_rows(rows, ["run_id"], "at").to_pylist()
    assert sorted(picked, key=lambda r: r["at"]) == [{"run_id": "a", "at": 3},
                                                     {"run_id": None, "at": 4}]


def test_summary_merge_fast_path_agrees_with_group_by():
    rng = random.Random(7)
    n = 300
    partials = pa.table({
        "run_id": [f"r{rng.randrange(60)}" for _ in range(n)],
        "experiment_id": ["1"] * n,
        "key": [f"k{rng.randrange(5)}" for _ in range(n)],
        "latest_value": [rng.choice([rng.random(), float("nan")]) for _ in range(n)],
        "latest_step": [rng.randrange(3) for _ in range(n)],
        "latest_timestamp": [rng.randrange(3) for _ in range(n)],
        "min_value": [rng.random() for _ in range(n)],
        "max_value": [rng.random() for _ in range(n)],
        "count": [rng.randrange(1, 4) for _ in range(n)],
        "updated_at": [rng.randrange(100) for _ in range(n)],
    }, schema=METRIC_SUMMARIES.schema)

    def canonical(table):
        return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())

    merged = merge_summaries(partials)
    assert merged.schema == METRIC_SUMMARIES.schema
    assert canonical(merged) == canonical(_merge_by_group(partials))
    assert len({(r["run_id"], r["key"]) for r in merged.to_pylist()}) == merged.num_rows


@pytest.fixture()
def over_budget(store_uri) -> tuple[TrackingStore, list[str]]:
    """A store whose search cache holds nothing over its budget (0 MB), and two experiments
    of one run each."""
    store = TrackingStore(store_uri, settings=Settings(search_cache_mb=0))
    client = TrackingClient(store_uri)
    experiments = [client.create_experiment(name) for name in ("one", "two")]
    for experiment_id in experiments:
        _new_run(client, experiment_id, f"run-of-{experiment_id}", metrics={"m": 1.0})
    client.flush()
    return store, experiments


def test_memory_budget_keeps_only_the_experiment_searched_last(over_budget):
    store, experiments = over_budget
    for experiment_id in [*experiments, *experiments]:
        rows = _snapshot(store, experiment_id)
        assert [row[1] for row in rows] == [f"run-of-{experiment_id}"]
        held = store.current["runs"]._snapshots  # the cache itself: one experiment at most
        assert list(held) == [experiment_id]


def test_the_experiments_of_one_search_are_kept_together(over_budget):
    """Over the budget, a search of two experiments keeps both (it holds both anyway): the
    next search of the same two finds them in memory instead of reading one again."""
    store, experiments = over_budget
    cache = store.current["runs"]
    store.current_view("runs", experiments)
    first = dict(cache._snapshots)
    assert set(first) == set(experiments)
    store.current_view("runs", experiments)
    assert all(cache._snapshots[e] is first[e] for e in experiments)  # not read again
    store.current_view("runs", experiments[:1])  # a search of one: the other may go
    assert list(cache._snapshots) == experiments[:1]


def _saved_state_file(store_uri, table: str, experiment_id: str) -> str:
    return os.path.join(store_uri, "_search_state", table, f"experiment_id={experiment_id}.arrow")


def test_a_new_process_starts_from_the_saved_state_and_merges_newer_files(client, store_uri):
    experiment_id = client.create_experiment("saved")
    first = _new_run(client, experiment_id, "first", params={"p": "1"}, metrics={"m": 1.0})
    client.flush()
    _snapshot(open_store(client.store_root), experiment_id)  # the first search saves the state
    wait_for_saves()  # in the background
    for table in ("runs", "params", "tags", "metric_summaries"):
        assert os.path.isfile(_saved_state_file(store_uri, table, experiment_id))
    later = _new_run(client, experiment_id, "later", params={"p": "2"}, metrics={"m": 2.0})
    client.log_metric(first, "m", 5.0, step=1)
    client.flush()

    fresh = TrackingStore(store_uri)  # as a new process: nothing in memory
    read = []
    handle = fresh.tables["params"]
    original_read_files = handle.read_files
    handle.read_files = lambda fragments, **kw: (read.append(len(fragments)),
                                                 original_read_files(fragments, **kw))[1]
    rows = _snapshot(fresh, experiment_id, order_by=["metrics.m DESC"])
    assert [(row[0], row[5]) for row in rows] == [(first, {"m": 5.0}), (later, {"m": 2.0})]
    assert read == [1]  # only the params file committed after the state was saved
    assert rows == _snapshot(
        TrackingStore(store_uri, settings=Settings(save_search_state=False)), experiment_id,
        order_by=["metrics.m DESC"],
    )


def test_an_unreadable_saved_state_is_ignored_and_replaced(client, store_uri, caplog):
    experiment_id = client.create_experiment("corrupt")
    run_id = _new_run(client, experiment_id, "r", params={"p": "1"})
    client.flush()
    _snapshot(open_store(client.store_root), experiment_id)
    wait_for_saves()  # in the background: it would replace the broken file below
    path = _saved_state_file(store_uri, "params", experiment_id)
    with open(path, "wb") as broken:
        broken.write(b"not arrow at all")
    rows = _snapshot(TrackingStore(store_uri), experiment_id)
    assert [(row[0], row[4]) for row in rows] == [(run_id, {"p": "1"})]
    assert "Ignoring unreadable search state" in caplog.text and path in caplog.text
    rows = _snapshot(TrackingStore(store_uri), experiment_id)  # the replacement reads fine
    assert [(row[0], row[4]) for row in rows] == [(run_id, {"p": "1"})]


def test_gc_drops_the_saved_state_of_removed_runs(client, store_uri):
    experiment_id = client.create_experiment("gc-state")
    kept = _new_run(client, experiment_id, "kept", params={"secret": "keep"})
    doomed = _new_run(client, experiment_id, "doomed", params={"secret": "remove-me"})
    client.flush()
    _snapshot(open_store(client.store_root), experiment_id)
    client.delete_run(doomed)
    client.gc(older_than=timedelta(0))
    for table in ("runs", "params", "tags", "metric_summaries"):
        path = _saved_state_file(store_uri, table, experiment_id)
        if os.path.exists(path):
            with open(path, "rb") as saved:
                content = saved.read()
            assert b"remove-me" not in content and doomed.encode() not in content
    rows = _snapshot(TrackingStore(store_uri), experiment_id, view_type=ViewType.ALL)
    assert [row[0] for row in rows] == [kept]


def test_saving_the_state_can_be_turned_off(store_uri, monkeypatch):
    from sparktrack.config import settings_from_env
    from sparktrack.errors import InvalidInputError

    assert settings_from_env({"SPARKTRACK_SAVE_SEARCH_STATE": "no"}).save_search_state is False
    assert settings_from_env({"SPARKTRACK_SAVE_SEARCH_STATE": "1"}).save_search_state is True
    with pytest.raises(InvalidInputError, match="SPARKTRACK_SAVE_SEARCH_STATE='maybe'.*boolean"):
        settings_from_env({"SPARKTRACK_SAVE_SEARCH_STATE": "maybe"})
    store = TrackingStore(store_uri, settings=Settings(save_search_state=False))
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("memory-only")
    _new_run(client, experiment_id, "r")
    client.flush()
    assert len(_snapshot(store, experiment_id)) == 1
    assert not os.path.exists(os.path.join(store_uri, "_search_state"))


def test_rows_to_build_counts_the_rows_of_experiments_neither_held_nor_saved(client, store_uri):
    experiments = [client.create_experiment(name) for name in ("built", "other")]
    for i in range(3):
        _new_run(client, experiments[0], f"a{i}", params={"p": "1", "q": "2"})
    _new_run(client, experiments[1], "b", params={"p": "1"})
    client.flush()
    params = TrackingStore(store_uri).current["params"]
    assert params.rows_to_build(experiments) == 3 * 2 + 1  # read from the files' statistics
    assert params.rows_to_build(experiments[1:]) == 1
    params.view(experiments[:1])
    assert params.rows_to_build(experiments) == 1  # held in memory
    wait_for_saves()
    fresh = TrackingStore(store_uri).current["params"]
    assert fresh.rows_to_build(experiments) == 1  # saved beside the table
    assert fresh.rows_to_build([]) == 0


def test_a_search_that_builds_many_rows_reads_its_tables_one_at_a_time(
        client, store_uri, monkeypatch):
    from sparktrack._store import run_reads

    experiment_id = client.create_experiment("alone")
    _new_run(client, experiment_id, "r", params={"p": "1"}, metrics={"m": 1.0})
    client.flush()
    monkeypatch.setattr(run_reads, "READ_ONE_AT_A_TIME_ROWS", 3)  # the store has 4+ rows
    monkeypatch.setattr(run_reads.os, "cpu_count", lambda: 2)
    store = TrackingStore(store_uri, settings=Settings(save_search_state=False))
    readers = set()
    for state in store.current.values():
        snapshot = state.snapshot
        monkeypatch.setattr(state, "snapshot", lambda e, snapshot=snapshot, **kw: (
            readers.add(threading.current_thread().name), snapshot(e, **kw))[1])
    store.current_views(["runs", "params", "tags", "metric_summaries"], [experiment_id])
    assert len(readers) == 1
