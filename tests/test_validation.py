"""Key rules, value limits and quotas: typed errors that name the key and the limit, raised
before anything is written."""

from __future__ import annotations

import pytest

import sparktrack
from sparktrack import Metric, Param, RunTag, TrackingClient
from sparktrack.config import Settings, settings_from_env
from sparktrack.errors import (
    InvalidInputError,
    InvalidKeyError,
    LimitExceededError,
    ParamOverwriteError,
    QuotaExceededError,
    SparkTrackError,
)
from sparktrack._store import TrackingStore, open_store

LOGGERS = {
    "param": lambda key: sparktrack.log_param(key, "v"),
    "metric": lambda key: sparktrack.log_metric(key, 1.0),
    "tag": lambda key: sparktrack.set_tag(key, "v"),
}

BAD_KEYS = [
    "a!b", "a,b", "a*b", "a=b", "a\tb", "a\nb", "trailing-newline\n", "a\\b", "a'b",  # characters
    "..", "../x", "a/../b", "a/..", "..hidden",  # climbing out
    "/lead", "//lead",  # leading slash
    ".", "a//b", "a/", "./a", "a/./b",  # would resolve to another name
]
GOOD_KEYS = ["a", "a.b", "a-b", "a b", "a:b", "a/b", "a_1", "ünïcode", "a..b", "x" * 250]


@pytest.mark.parametrize("kind", LOGGERS)
def test_bad_keys_are_refused_naming_the_key(tracking, kind):
    accepted, unnamed = [], []
    with sparktrack.start_run() as run:
        for key in BAD_KEYS:
            try:
                LOGGERS[kind](key)
            except InvalidKeyError as error:
                if repr(key) not in str(error):
                    unnamed.append(key)
            else:
                accepted.append(key)
    assert accepted == [] and unnamed == []
    data = sparktrack.get_run(run.info.run_id).data
    assert not set(BAD_KEYS) & ({*data.params} | {*data.metrics} | {*data.tags})


@pytest.mark.parametrize("kind", LOGGERS)
def test_empty_and_non_string_keys_are_refused(tracking, kind):
    with sparktrack.start_run():
        with pytest.raises(InvalidKeyError, match="must not be empty"):
            LOGGERS[kind]("")
        with pytest.raises(InvalidKeyError, match="must be a string"):
            LOGGERS[kind](42)


@pytest.mark.parametrize("kind", LOGGERS)
def test_key_length_limit_is_250(tracking, kind):
    with sparktrack.start_run() as run:
        LOGGERS[kind]("k" * 250)
        with pytest.raises(LimitExceededError) as caught:
            LOGGERS[kind]("k" * 251)
    message = str(caught.value)
    assert "'kkkk" in message and "251 characters" in message and "limit is 250" in message
    data = sparktrack.get_run(run.info.run_id).data
    assert "k" * 251 not in {**data.params, **data.metrics, **data.tags}


def test_good_keys_are_accepted(tracking):
    with sparktrack.start_run() as run:
        for key in GOOD_KEYS:
            sparktrack.log_param(key, "v")
            sparktrack.log_metric(key, 1.0)
            sparktrack.set_tag(key, "v")
    data = sparktrack.get_run(run.info.run_id).data
    assert set(GOOD_KEYS) <= set(data.params) & set(data.metrics) & set(data.tags)


def test_param_value_limit_is_6000(tracking):
    with sparktrack.start_run() as run:
        sparktrack.log_param("fits", "v" * 6000)
        with pytest.raises(LimitExceededError) as caught:
            sparktrack.log_param("too_long", "v" * 6001)
    assert "'too_long'" in str(caught.value) and "limit is 6000" in str(caught.value)
    assert set(sparktrack.get_run(run.info.run_id).data.params) == {"fits"}


def test_tag_value_limit_is_8000(tracking):
    with sparktrack.start_run() as run:
        sparktrack.set_tag("fits", "v" * 8000)
        with pytest.raises(LimitExceededError) as caught:
            sparktrack.set_tag("too_long", "v" * 8001)
        with pytest.raises(LimitExceededError, match="'start_tag'"):
            sparktrack.start_run(nested=True, tags={"start_tag": "v" * 8001})
    assert "'too_long'" in str(caught.value) and "limit is 8000" in str(caught.value)
    tags = sparktrack.get_run(run.info.run_id).data.tags
    assert len(tags["fits"]) == 8000 and "too_long" not in tags


def test_validation_errors_are_value_errors_of_one_tree():
    for error in (InvalidKeyError, LimitExceededError, QuotaExceededError, ParamOverwriteError):
        assert issubclass(error, InvalidInputError)
        assert issubclass(error, ValueError)
        assert issubclass(error, SparkTrackError)


# -- quotas (Settings of the store) --------------------------------------------------------------
def _store(store_uri: str, **overrides) -> TrackingStore:
    return open_store(store_uri, settings=Settings(**overrides))


def test_params_per_run_quota(tracking):
    _store(tracking, max_params_per_run=3)
    with sparktrack.start_run() as run:
        sparktrack.log_params({"a": 1, "b": 2, "c": 3})
        sparktrack.log_param("a", 1)  # re-logging the same value does not count
        with pytest.raises(QuotaExceededError) as caught:
            sparktrack.log_param("d", 4)
        with pytest.raises(QuotaExceededError):
            sparktrack.log_batch(params=[Param("e", "5"), Param("f", "6")])
    message = str(caught.value)
    assert "'d'" in message and "limit is 3" in message and "max_params_per_run" in message
    assert sparktrack.get_run(run.info.run_id).data.params == {"a": "1", "b": "2", "c": "3"}


def test_tags_per_run_quota_counts_system_tags(tracking):
    _store(tracking, max_tags_per_run=20)
    with sparktrack.start_run() as run:
        system = len(sparktrack.get_run(run.info.run_id).data.tags)
        sparktrack.set_tags({f"t{i}": i for i in range(20 - system)})
        sparktrack.set_tag("t0", "overwrite")  # an existing key does not count
        with pytest.raises(QuotaExceededError) as caught:
            sparktrack.set_tag("one_more", "x")
    message = str(caught.value)
    assert "'one_more'" in message and "limit is 20" in message
    tags = sparktrack.get_run(run.info.run_id).data.tags
    assert len(tags) == 20 and "one_more" not in tags


def test_a_run_whose_tags_exceed_the_quota_is_not_created(tracking):
    store = _store(tracking, max_tags_per_run=3)
    with pytest.raises(QuotaExceededError, match="max_tags_per_run"):
        sparktrack.start_run(tags={"a": 1, "b": 2, "c": 3})
    assert sparktrack.active_run() is None
    assert store.list_run_infos(None) == []


def test_metric_points_per_run_quota(tracking):
    _store(tracking, max_metric_points_per_run=5)
    with sparktrack.start_run() as run:
        for step in range(4):
            sparktrack.log_metric("loss", 1.0, step=step)
        with pytest.raises(QuotaExceededError, match="'acc'.*limit is 5"):
            sparktrack.log_batch(metrics=[Metric("acc", 1.0, 0, s) for s in range(2)])
        sparktrack.log_metric("loss", 1.0, step=4)
        with pytest.raises(QuotaExceededError) as caught:
            sparktrack.log_metric("loss", 1.0, step=5)
    message = str(caught.value)
    assert "'loss'" in message and "limit is 5" in message and "max_metric_points_per_run" in message
    assert len(sparktrack.get_metric_history("loss", run_id=run.info.run_id)) == 5
    assert sparktrack.get_metric_history("acc", run_id=run.info.run_id) == []


def test_metric_quota_counts_points_already_on_disk(tracking):
    """A new process (fresh store object) must count what earlier processes logged."""
    with sparktrack.start_run() as run:
        sparktrack.log_metrics({"a": 1.0, "b": 2.0, "c": 3.0})
    sparktrack.flush()
    later = TrackingStore(tracking, settings=Settings(max_metric_points_per_run=4))
    later.log_metric(run.info.run_id, "d", 4.0, 0, 0)
    with pytest.raises(QuotaExceededError, match="limit is 4"):
        later.log_metric(run.info.run_id, "e", 5.0, 0, 0)


def test_runs_per_experiment_quota(tracking):
    store = _store(tracking, max_runs_per_experiment=2)
    full = sparktrack.set_experiment("full")
    for _ in range(2):
        with sparktrack.start_run():
            pass
    with pytest.raises(QuotaExceededError) as caught:
        sparktrack.start_run()
    message = str(caught.value)
    assert full.experiment_id in message and "limit is 2" in message
    assert "max_runs_per_experiment" in message
    assert sparktrack.active_run() is None
    assert len(store.list_run_infos([full.experiment_id])) == 2
    with sparktrack.start_run(experiment_id=sparktrack.create_experiment("other")):
        pass  # the quota is per experiment
    # Another process (a fresh store object) counts the runs on disk.
    fresh = TrackingStore(tracking, settings=Settings(max_runs_per_experiment=2))
    with pytest.raises(QuotaExceededError):
        fresh.create_run(full.experiment_id, run_name="x", user_id="u")


def test_quotas_from_environment(tracking, monkeypatch):
    monkeypatch.setenv("SPARKTRACK_MAX_PARAMS_PER_RUN", "2")
    client = TrackingClient(tracking)  # first use of this store in the process: reads the env
    assert client.settings.max_params_per_run == 2
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "a", 1)
    client.log_param(run_id, "b", 2)
    with pytest.raises(QuotaExceededError, match="limit is 2"):
        client.log_param(run_id, "c", 3)


def test_settings_from_environment_parses_and_rejects():
    settings = settings_from_env(
        {"SPARKTRACK_FLUSH_INTERVAL_SECONDS": "0.25", "SPARKTRACK_MAX_TAGS_PER_RUN": "7"}
    )
    assert (settings.flush_interval_seconds, settings.max_tags_per_run) == (0.25, 7)
    assert settings_from_env({}) == Settings()
    assert Settings().max_params_per_run == 1600 and Settings().max_tags_per_run == 1600
    assert Settings().max_metric_points_per_run == 1_000_000
    assert Settings().max_runs_per_experiment == 500_000
    with pytest.raises(InvalidInputError, match="SPARKTRACK_MAX_PARAMS_PER_RUN='lots'"):
        settings_from_env({"SPARKTRACK_MAX_PARAMS_PER_RUN": "lots"})


def test_tags_of_a_batch_are_checked_before_anything_is_written(tracking):
    _store(tracking, max_tags_per_run=20)
    client = TrackingClient(tracking)
    run_id = client.create_run("0").info.run_id
    present = len(client.get_run(run_id).data.tags)
    too_many = [RunTag(f"t{i}", "v") for i in range(21 - present)]
    with pytest.raises(QuotaExceededError):
        client.log_batch(run_id, metrics=[Metric("m", 1.0, 0, 0)], params=[Param("p", "1")],
                         tags=too_many)
    data = client.get_run(run_id).data
    assert (data.metrics, data.params, len(data.tags)) == ({}, {}, present)
