"""Autologging's run management, on a pure-Python estimator (no JVM): runs created and ended,
failures inside fit and inside logging, name conflicts, options, threads."""

from __future__ import annotations

import threading
import warnings

import pytest

pytest.importorskip("pyspark")

from pyspark.ml import Estimator, Model  # noqa: E402
from pyspark.ml.base import Estimator as BaseEstimator  # noqa: E402
from pyspark.ml.param import Param, Params, TypeConverters  # noqa: E402
from pyspark.ml.param.shared import HasMaxIter  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack._autolog import fit as autolog_fit  # noqa: E402
from sparktrack.errors import AutologgingWarning, InvalidInputError  # noqa: E402


class Echo(Estimator, HasMaxIter):
    """Trains nothing; raises ``error`` when given one."""

    note = Param(Params._dummy(), "note", "free text", typeConverter=TypeConverters.toString)

    def __init__(self, maxIter: int = 3, note: str = "x", error: BaseException | None = None):
        super().__init__()
        self._setDefault(maxIter=3, note="x")
        self._set(maxIter=maxIter, note=note)
        self.error = error

    def _fit(self, dataset):
        if self.error is not None:
            raise self.error
        return EchoModel()


class OtherEcho(Echo):
    pass


class EchoModel(Model):
    def _transform(self, dataset):
        return dataset


@pytest.fixture()
def tracked(store_uri):
    sparktrack.set_tracking_uri(store_uri)
    sparktrack.autolog(log_datasets=False, log_models=False)
    yield TrackingClient(store_uri)
    sparktrack.autolog(disable=True)
    while sparktrack.active_run() is not None:
        sparktrack.end_run()


def _runs(client):
    sparktrack.flush()
    return sparktrack.search_runs(search_all_experiments=True)


def test_fit_outside_a_run_creates_and_ends_one(tracked):
    model = Echo(maxIter=7).fit(None)
    assert isinstance(model, EchoModel)
    assert sparktrack.active_run() is None
    run = sparktrack.last_active_run()
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert run.data.params == {"maxIter": "7", "note": "x"}
    assert run.data.tags["estimator_name"] == "Echo"
    assert run.data.tags["estimator_class"].endswith(".Echo")
    assert run.data.tags["mlflow.autologging"] == "pyspark.ml"


def test_fit_inside_an_active_run_logs_into_it_and_leaves_it_open(tracked):
    with sparktrack.start_run() as run:
        Echo().fit(None)
        assert sparktrack.active_run().info.run_id == run.info.run_id
        assert sparktrack.active_run().info.status == "RUNNING"
    assert len(_runs(tracked)) == 1
    data = tracked.get_run(run.info.run_id).data
    assert data.params["maxIter"] == "3"
    # As in MLflow, a run the user started gets the estimator tags, not mlflow.autologging.
    assert {"estimator_name", "estimator_class"} <= set(data.tags)
    assert "mlflow.autologging" not in data.tags


def test_failure_inside_fit_fails_the_run_and_propagates_the_same_exception(tracked):
    error = RuntimeError("boom")
    with pytest.raises(RuntimeError) as raised:
        Echo(error=error).fit(None)
    assert raised.value is error
    run = sparktrack.last_active_run()
    assert run.info.status == "FAILED"
    assert run.data.params["maxIter"] == "3"  # logged before training


def test_failure_inside_fit_in_an_active_run_leaves_the_run_running(tracked):
    with sparktrack.start_run() as run:
        with pytest.raises(ValueError):
            Echo(error=ValueError("bad")).fit(None)
        assert tracked.get_run_info(run.info.run_id).status == "RUNNING"


def test_failure_inside_logging_is_one_warning_and_the_fit_is_unaffected(tracked, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(autolog_fit, "_log", broken)
    with pytest.warns(AutologgingWarning, match="disk full") as caught:
        model = Echo().fit(None)
    assert isinstance(model, EchoModel)
    assert len([w for w in caught if issubclass(w.category, AutologgingWarning)]) == 1
    assert sparktrack.last_active_run().info.status == "FINISHED"  # not FAILED as MLflow does


def test_failure_to_start_a_run_still_trains(tracked, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("store offline")

    monkeypatch.setattr(sparktrack._fluent, "start_run", broken)
    with pytest.warns(AutologgingWarning, match="store offline"):
        model = Echo().fit(None)
    assert isinstance(model, EchoModel)


def test_silent_suppresses_the_warning(tracked, monkeypatch):
    sparktrack.autolog(log_datasets=False, log_models=False, silent=True)
    monkeypatch.setattr(autolog_fit, "_log", lambda *a, **k: 1 / 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(Echo().fit(None), EchoModel)


def test_over_long_param_values_are_truncated_with_a_warning(tracked):
    with pytest.warns(AutologgingWarning, match="truncated"):
        Echo(note="n" * 7000).fit(None)
    run = sparktrack.last_active_run()
    assert run.data.params["note"] == "n" * 6000
    assert run.data.params["maxIter"] == "3"  # the rest of the run is logged


def test_repeated_fit_in_one_run_suffixes_conflicting_names_and_loses_nothing(tracked):
    with sparktrack.start_run() as run:
        sparktrack.log_param("note", "mine")
        Echo(maxIter=3, note="mine").fit(None)
        Echo(maxIter=5, note="mine").fit(None)
        OtherEcho(maxIter=5, note="mine").fit(None)
    data = tracked.get_run(run.info.run_id).data
    assert data.params["maxIter"] == "3" and data.params["note"] == "mine"
    renamed = sorted(k for k in data.params if k.startswith("maxIter-"))
    assert [data.params[k] for k in renamed] == ["5", "5"]  # one suffix per fit() call
    suffixes = {k.split("-", 1)[1] for k in renamed}
    assert len(suffixes) == 2 and all(len(s) == 8 and int(s, 16) >= 0 for s in suffixes)
    records = {k: v for k, v in data.tags.items() if k.startswith("sparktrack.autolog.suffix.")}
    assert set(records) == {f"sparktrack.autolog.suffix.{s}" for s in suffixes}
    assert data.tags["estimator_name"] == "Echo"
    other = [k for k in data.tags if k.startswith("estimator_name-")]
    assert len(other) == 1 and data.tags[other[0]] == "OtherEcho"
    assert "estimator_name" in records[f"sparktrack.autolog.suffix.{other[0].split('-', 1)[1]}"]
    assert len(_runs(tracked)) == 1


def test_disable_restores_the_original_methods(tracked):
    patched = BaseEstimator.fit
    assert patched.__sparktrack_original__ is not None
    sparktrack.autolog(disable=True)
    assert BaseEstimator.fit is patched.__sparktrack_original__
    assert "transform" not in Model.__dict__
    Echo().fit(None)
    assert len(_runs(tracked)) == 0
    sparktrack.autolog(log_datasets=False, log_models=False)
    Echo().fit(None)
    assert len(_runs(tracked)) == 1


def test_calling_autolog_twice_is_harmless(tracked):
    first = BaseEstimator.fit
    sparktrack.autolog(log_datasets=False, log_models=False, extra_tags={"team": "ml"})
    assert BaseEstimator.fit is first  # patched once, new options only
    Echo().fit(None)
    runs = _runs(tracked)
    assert len(runs) == 1 and runs["tags.team"].tolist() == ["ml"]
    from sparktrack.pyspark import ml

    assert ml.autolog is sparktrack.autolog


def test_exclusive_does_not_log_into_user_runs(tracked):
    sparktrack.autolog(log_datasets=False, log_models=False, exclusive=True)
    with sparktrack.start_run() as run:
        Echo().fit(None)
    assert tracked.get_run(run.info.run_id).data.params == {}
    Echo().fit(None)
    assert len(_runs(tracked)) == 2


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_max_tuning_runs_is_checked(tracked, bad):
    with pytest.raises(InvalidInputError, match="max_tuning_runs"):
        sparktrack.autolog(max_tuning_runs=bad)


def test_fits_in_parallel_threads_each_get_their_own_run(tracked):
    barrier = threading.Barrier(3)

    class Slow(Echo):
        def _fit(self, dataset):
            barrier.wait(timeout=30)
            return EchoModel()

    errors = []

    def train(i):
        try:
            Slow(maxIter=i).fit(None)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(i,)) for i in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    runs = _runs(tracked)
    assert sorted(runs["params.maxIter"]) == ["1", "2", "3"]
    assert set(runs["status"]) == {"FINISHED"}
