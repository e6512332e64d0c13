"""A saved search state is read a part at a time: a new process decodes the keys its search
names and the rows of its page, not every row. Every part must be exactly what the rows the
state was saved from give, whatever their shape, and a search from a loaded state must answer
as one from the tables."""

from __future__ import annotations

import math
import random
import shutil
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sparktrack import Metric, Param, RunTag, TrackingClient
from sparktrack.entities import ViewType
from sparktrack._store import open_store
from sparktrack._store.schemas import METRIC_SUMMARIES, PARAMS, RUNS, TAGS
from sparktrack._store.search_source import StoreSearchSource
from sparktrack._store.state_files import wait_for_saves
from sparktrack._store.stored_rows import StoredRows, encode
from test_search_aligned_store import FILTERS, ORDERS, Joined, _answers, fill_two_experiments

KEYED = {spec.name: spec for spec in (PARAMS, TAGS, METRIC_SUMMARIES)}


def _random_rows(spec, *, runs: int, keys: int, seed: int, id_length: int = 32) -> pa.Table:
    """Rows of ``spec`` for random runs and keys: some runs miss some keys, strings are null
    where the schema allows, and rows come in no particular order."""
    rng = random.Random(seed)
    run_ids = [f"{rng.getrandbits(128):032x}"[:id_length] for _ in range(runs)]
    pairs = [(run_id, f"k{key}") for run_id in run_ids for key in range(keys)
             if rng.random() < 0.8]
    rng.shuffle(pairs)
    columns = {}
    for field in spec.schema:
        if field.name == "run_id":
            columns[field.name] = [run_id for run_id, _ in pairs]
        elif field.name == "key":
            columns[field.name] = [key for _, key in pairs]
        elif pa.types.is_string(field.type):
            columns[field.name] = [None if field.nullable and rng.random() < 0.2
                                   else rng.choice(["a", "b", "c", f"v{rng.random()}"])
                                   for _ in pairs]
        elif pa.types.is_boolean(field.type):
            columns[field.name] = [rng.random() < 0.3 for _ in pairs]
        elif pa.types.is_floating(field.type):
            columns[field.name] = [rng.choice([rng.random(), math.nan, -math.inf])
                                   for _ in pairs]
        else:
            columns[field.name] = [rng.randrange(1 << 40) for _ in pairs]
    return pa.table(columns, schema=spec.schema)


def _stored(encoded, schema: pa.Schema) -> StoredRows:
    return StoredRows(encoded.stored, encoded.batch_keys, schema, parts=encoded.parts)


def _sorted(table: pa.Table) -> list[tuple]:
    return sorted((tuple(map(repr, row.values())) for row in table.to_pylist()))


@pytest.mark.parametrize("table", sorted(KEYED))
@pytest.mark.parametrize("window_rows", [1 << 20, 3])
@pytest.mark.parametrize("id_length", [32, 7])
def test_each_part_of_stored_rows_is_what_the_rows_give(table, window_rows, id_length):
    spec = KEYED[table]
    rows = _random_rows(spec, runs=40, keys=4, seed=window_rows + id_length, id_length=id_length)
    # Saved rows are often slices of several chunks: store those.
    rows = pa.concat_tables([rows.slice(0, 17), rows.slice(17)])
    for compress in (False, True):
        stored = _stored(encode(rows, window_rows=window_rows, compress=compress), spec.schema)
        assert stored.all().schema == spec.schema
        assert _sorted(stored.all()) == _sorted(rows)
        run_ids = stored.run_ids()
        assert sorted(run_ids.to_pylist()) == sorted(set(rows.column("run_id").to_pylist()))
        for key in ["k0", "k1", "k3", "never"]:
            expected = rows.filter(pc.equal(rows.column("key"), key))
            assert _sorted(stored.with_key(key)) == _sorted(expected), key
            for column in [f.name for f in spec.schema if f.name not in ("run_id", "key")]:
                indices, values = stored.key_column(key, column)
                got = list(zip(run_ids.take(pa.array(indices)).to_pylist(),
                               values.to_pylist(), strict=True))
                want = list(zip(expected.column("run_id").to_pylist(),
                                expected.column(column).to_pylist(), strict=True))
                assert sorted(map(repr, got)) == sorted(map(repr, want)), (key, column)
        page = pa.array(rows.column("run_id").to_pylist()[::7] + ["not-a-run"])
        columns = ["key", "run_id", spec.schema.names[-1]]
        expected = rows.filter(pc.is_in(rows.column("run_id"), value_set=page)).select(columns)
        assert _sorted(stored.of_runs(page, columns)) == _sorted(expected)
        assert stored.of_runs(pa.array(["not-a-run"]), columns).num_rows == 0


def test_stored_runs_keep_their_rows_and_an_empty_state_has_none():
    rows = _random_rows(RUNS, runs=30, keys=1, seed=3)
    stored = _stored(encode(rows, window_rows=4, compress=True), RUNS.schema)
    assert stored.all().equals(rows)  # one row per run: stored in their order
    assert stored.run_ids().equals(rows.column("run_id").combine_chunks())
    empty = _stored(encode(PARAMS.schema.empty_table(), window_rows=4, compress=False),
                       PARAMS.schema)
    assert empty.all().equals(PARAMS.schema.empty_table())
    assert empty.with_key("k").num_rows == 0 and len(empty.run_ids()) == 0
    assert empty.key_column("k", "value")[0].size == 0
    assert empty.of_runs(pa.array(["a"]), ["run_id", "value"]).num_rows == 0


@pytest.fixture()
def saved_store(tmp_path):
    """Two experiments whose runs miss some keys (so the tables' run ids differ), a deleted
    tag and a deleted run, their search state saved."""
    client = TrackingClient(str(tmp_path / "store"))
    experiments, _ = fill_two_experiments(client, count=14, without_params=(6,),
                                          without_metrics=(9,), without_tags=(7, 8))
    # The deletes read runs before them (saving their state): save it again at the last version.
    shutil.rmtree(os.path.join(client.store_root, "_search_state"), ignore_errors=True)
    open_store(client.store_root).release_caches()
    client.search_runs(experiments)  # builds and saves the state
    wait_for_saves()
    return client, experiments


def _every_answer(store, experiments) -> tuple[list, list, list]:
    answers, pages, loaded = [], [], []
    for view_type in (ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL):
        source = StoreSearchSource(store, experiments, view_type=view_type)
        loaded.append({name: [snapshot.stored is not None for snapshot in view.snapshots]
                       for name, view in source._views.items()})
        answers.append((_answers(source), _answers(Joined(source))))
        runs = source.load_runs(source.page_rows(source.runs()))
        pages.append(sorted((run.info.run_id, run.info.artifact_uri, run.data.params,
                             repr(run.data.metrics), run.data.tags) for run in runs))  # NaN
    return answers, pages, loaded


def test_a_search_from_a_loaded_state_answers_as_one_from_the_tables(saved_store):
    client, experiments = saved_store
    store = open_store(client.store_root)
    store.release_caches()
    from_saved, pages_from_saved, loaded = _every_answer(store, experiments)
    assert all(all(flags) for view in loaded for flags in view.values()), loaded  # stored

    shutil.rmtree(os.path.join(client.store_root, "_search_state"))
    store.release_caches()
    from_tables, pages_from_tables, loaded = _every_answer(store, experiments)
    assert not any(any(flags) for view in loaded for flags in view.values())
    assert from_saved == from_tables
    assert pages_from_saved == pages_from_tables
    assert any(metrics != "{}" and tags != {} for page in pages_from_tables
               for *_, metrics, tags in page)


def test_a_new_search_decodes_only_the_keys_it_names(saved_store):
    client, experiments = saved_store
    store = open_store(client.store_root)
    store.release_caches()
    source = StoreSearchSource(store, experiments, view_type=ViewType.ACTIVE_ONLY)
    from sparktrack._search import filter_runs, order_runs, parse_filter, parse_order_by

    matched = filter_runs(parse_filter("params.p = 'b' AND tags.t LIKE 'x%'"), source)
    page = order_runs(matched, parse_order_by(["metrics.m DESC"]), source, limit=2)
    assert page.num_rows == 2
    source.load_runs(source.page_rows(page))
    for table in ("params", "tags", "metric_summaries"):
        for snapshot in source._views[table].snapshots:
            assert snapshot._rows is None, table  # never decoded whole
            assert set(snapshot.by_key) <= {"p", "t"}, table
    # What it did decode, it decoded right: the same page as from the tables.
    expected = client.search_runs(experiments, "params.p = 'b' AND tags.t LIKE 'x%'",
                                  order_by=["metrics.m DESC"], max_results=2)
    assert page.column("run_id").to_pylist() == [run.info.run_id for run in expected]
    assert np.all(np.array([run.data.params["p"] for run in expected]) == "b")


CHANGES = ["new run", "new run without values", "run ended", "new metric value",
           "deleted tag", "deleted run", "restored run", "new param", "two changes"]


def _change(client, experiments, change: str) -> None:
    runs = {run.info.run_name: run.info.run_id
            for run in client.search_runs(experiments, run_view_type=ViewType.ALL)}
    if change in ("new run", "two changes"):
        run = client.create_run(experiments[0], run_name="late", start_time=5000)
        client.log_batch(run.info.run_id, metrics=[Metric("m", 0.01, 1, 0)],
                         params=[Param("p", "b")], tags=[RunTag("t", "x-late")])
    if change == "new run without values":
        client.create_run(experiments[1], run_name="bare", start_time=5000)
    if change == "run ended":
        client.set_terminated(runs["run-0"], status="FAILED")
    if change in ("new metric value", "two changes"):
        client.log_metric(runs["run-0"], "m", 0.99, step=9)
    if change == "deleted tag":
        client.delete_tag(runs["run-1"], "t")
    if change == "deleted run":
        client.delete_run(runs["run-2"])
    if change == "restored run":
        client.restore_run(runs["run-3"])
    if change in ("new param", "two changes"):
        client.log_param(runs["run-1"], "q", "late")
    client.flush()


@pytest.mark.parametrize("change", CHANGES)
def test_a_loaded_state_brought_up_to_date_answers_as_the_tables(saved_store, change):
    """A new process finds the saved state older than the tables: it leaves the changed
    runs' stored rows out and keeps their current rows apart, never decoding the rest."""
    client, experiments = saved_store
    _change(client, experiments, change)
    store = open_store(client.store_root)
    store.release_caches()
    brought_up, pages_brought_up, _ = _every_answer(store, experiments)
    source = StoreSearchSource(store, experiments, view_type=ViewType.ALL)
    apart = 0
    for table in ("params", "tags", "metric_summaries"):
        for snapshot in source._views[table].snapshots:
            assert snapshot.stored is not None and not snapshot.decoded, (table, change)
            apart += snapshot.extra is not None
    runs_only = {"run ended", "deleted run", "restored run"}  # a new run has tags
    assert (apart > 0) == (change not in runs_only)

    shutil.rmtree(os.path.join(client.store_root, "_search_state"))
    store.release_caches()
    from_tables, pages_from_tables, _ = _every_answer(store, experiments)
    assert brought_up == from_tables
    assert pages_brought_up == pages_from_tables


def test_a_loaded_state_saved_again_is_decoded_by_the_saver_not_the_search(saved_store,
                                                                           monkeypatch):
    import threading

    from sparktrack._store import current_state, state_files

    client, experiments = saved_store
    monkeypatch.setattr(current_state, "_RESAVE_AFTER_FILES", 2)
    runs = {run.info.run_name: run.info.run_id for run in client.search_runs(experiments)}
    for name in ("run-0", "run-1"):  # one of each experiment, two commits each
        for key in ("late-1", "late-2"):
            client.log_param(runs[name], key, "x")
            client.flush()
    store = open_store(client.store_root)
    store.release_caches()
    release = threading.Event()
    state_files._save_in_background("(blocker)", lambda: release.wait(30))
    try:
        source = StoreSearchSource(store, experiments, view_type=ViewType.ALL)
        source.load_runs(source.page_rows(source.runs()))
        snapshots = source._views["params"].snapshots
        assert not any(snapshot.decoded for snapshot in snapshots)  # the saver will
    finally:
        release.set()
    wait_for_saves()
    version = store.tables["params"].version()
    for experiment_id, snapshot in zip(experiments, snapshots, strict=True):
        saved = state_files.StateFiles.for_table(
            client.store_root, "params", PARAMS.schema).load(experiment_id)
        assert saved.version == snapshot.version == version
        assert _sorted(saved.rows) == _sorted(snapshot.rows)


def test_run_ids_are_stored_in_the_order_given_then_in_the_order_first_named():
    rows = _random_rows(PARAMS, runs=12, keys=3, seed=5)
    named = list(dict.fromkeys(rows.column("run_id").to_pylist()))
    order = pa.array(["not-here", *named[:5][::-1]])  # some of the runs, and one without rows
    stored = _stored(encode(rows, window_rows=4, compress=False, run_order=order), PARAMS.schema)
    assert stored.run_ids().to_pylist() == named[:5][::-1] + named[5:]
    assert _sorted(stored.all()) == _sorted(rows)


def test_saved_states_store_run_ids_in_the_runs_order(saved_store):
    """So a new process finds each row's run by its index: the params, tags and metric
    summaries of runs that all have some share the runs' own order."""
    client, experiments = saved_store
    store = open_store(client.store_root)
    store.release_caches()
    source = StoreSearchSource(store, experiments, view_type=ViewType.ALL)
    for index, experiment_id in enumerate(experiments):
        runs = source._views["runs"].snapshots[index].rows.column("run_id").to_pylist()
        for table in ("params", "tags", "metric_summaries"):
            snapshot = source._views[table].snapshots[index]
            having = set(snapshot.rows.column("run_id").to_pylist())
            assert snapshot.stored.run_ids().to_pylist() == [r for r in runs if r in having]


def test_artifact_locations_are_resolved_when_a_search_names_them_and_on_every_page(
        saved_store):
    """A search that does not name ``attributes.artifact_uri`` resolves only its page's
    locations; one that does compares the resolved ones (the stored form is relative)."""
    client, experiments = saved_store
    root = client.store_root
    store = open_store(root)
    store.release_caches()
    page = client.search_runs(experiments, "params.p = 'a'", max_results=100)
    assert page and all(run.info.artifact_uri == client.get_run(run.info.run_id).info.artifact_uri
                        and run.info.artifact_uri.startswith(f"{root}/artifacts/")
                        for run in page)
    every = {run.info.run_id for run in client.search_runs(experiments)}
    named = client.search_runs(experiments, f"attributes.artifact_uri LIKE '{root}/artifacts/%'")
    assert {run.info.run_id for run in named} == every
    assert client.search_runs(experiments, "attributes.artifact_uri LIKE 'artifacts/%'") == []
    frame = client.search_runs_frame(experiments, "params.p = 'a'")
    assert sorted(frame["artifact_uri"]) == sorted(run.info.artifact_uri for run in page)
