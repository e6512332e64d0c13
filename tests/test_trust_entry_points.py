"""No untyped exception escapes the public API for bad input.

Every public method of TrackingClient and every function of the module API is called with one
argument at a time replaced by a value of the wrong kind or a bad value (None, an object, a
number, a lone surrogate, a number beyond int64 and double, 100,000 characters, a dict, a list,
bytes, NaN, a bool, "", a path escaping upwards). Whatever happens must be either success or a
``SparkTrackError``, and a message of bounded length; and the store must still work afterwards.
"""

from __future__ import annotations

import inspect

import pytest

import sparktrack
from sparktrack import TrackingClient
from sparktrack.errors import SparkTrackError

BAD_VALUES = [None, object(), -1, 1.5, "\ud800", 10**400, "x" * 100_000, {"a": 1}, ["a"],
              b"bytes", float("nan"), True, "", "../../etc"]

# Calls that act on the whole store or draw figures: exercised by their own tests.
SKIPPED = {"gc", "delete_runs", "restore_runs", "delete_experiment", "restore_experiment",
           "log_figure", "log_input", "log_inputs", "autolog", "set_tracking_uri",
           "set_experiment", "end_run", "start_run", "flush", "set_registry_uri"}


def _defaults(parameters, *, run_id: str, experiment_id: str) -> dict:
    values = {}
    for parameter in parameters:
        name = parameter.name
        if name == "run_id":
            values[name] = run_id
        elif name == "experiment_id":
            values[name] = experiment_id
        elif name == "experiment_ids":
            values[name] = [experiment_id]
        elif name == "key":
            values[name] = "k"
        elif name == "value":
            values[name] = 1.0
        elif name in ("metrics", "params", "tags"):
            values[name] = {"m": 1.0} if name == "metrics" else {"k": "v"}
        elif parameter.default is inspect.Parameter.empty:
            values[name] = "x"
    return values


def _calls(functions, *, run_id: str, experiment_id: str):
    for name, function in functions:
        parameters = [
            p for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        defaults = _defaults(parameters, run_id=run_id, experiment_id=experiment_id)
        for parameter in parameters:
            for bad in BAD_VALUES:
                yield name, function, {**defaults, parameter.name: bad}, parameter.name, bad


def _untyped(functions, *, run_id: str, experiment_id: str) -> list[str]:
    found = []
    for name, function, kwargs, argument, bad in _calls(functions, run_id=run_id,
                                                         experiment_id=experiment_id):
        try:
            function(**kwargs)
        except SparkTrackError as exc:
            if len(str(exc)) > 2_100:
                found.append(f"{name}({argument}=...): a message of {len(str(exc))} characters")
        except Exception as exc:  # noqa: BLE001 - what this test looks for
            found.append(f"{name}({argument}={repr(bad)[:30]}): {type(exc).__name__}: "
                         f"{str(exc)[:120]}")
    return found


@pytest.fixture()
def small_cwd(tmp_path, monkeypatch):
    """A small working directory, with a small folder where "../../etc" leads: "" and that
    path are real folders to log (as the repository and /etc are), without copying a
    checkout's virtual environment (50,000 files) into a run's artifacts for each."""
    cwd = tmp_path / "work" / "here"
    cwd.mkdir(parents=True)
    (cwd / "notes.txt").write_text("a file of the working directory")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("127.0.0.1 localhost")
    monkeypatch.chdir(cwd)


def test_no_untyped_exception_escapes_the_client(store_uri, small_cwd):
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("entry-points")
    run_id = client.create_run(experiment_id, run_name="r").info.run_id
    client.log_param(run_id, "p", "1")
    methods = [(name, method) for name, method in inspect.getmembers(client, inspect.ismethod)
               if not name.startswith("_") and name not in SKIPPED]
    assert len(methods) > 25

    assert _untyped(methods, run_id=run_id, experiment_id=experiment_id) == []

    # Nothing stored was lost, and the store still takes writes and answers.
    client.log_metric(run_id, "after", 1.0)
    client.flush()
    run = client.get_run(run_id)
    assert run.data.params["p"] == "1" and run.data.metrics["after"] == 1.0
    assert client.search_runs([experiment_id], "params.p = '1'")[0].info.run_id == run_id


def test_no_untyped_exception_escapes_the_module_api(tracking, small_cwd):
    experiment_id = sparktrack.create_experiment("entry-points-fluent")
    with sparktrack.start_run(experiment_id=experiment_id) as run:
        run_id = run.info.run_id
        functions = [(name, getattr(sparktrack, name)) for name in sparktrack.__all__
                     if inspect.isfunction(getattr(sparktrack, name))
                     and name not in SKIPPED]
        assert len(functions) > 25
        assert _untyped(functions, run_id=run_id, experiment_id=experiment_id) == []
        assert sparktrack.active_run().info.run_id == run_id
    assert sparktrack.get_run(run_id).info.status == "FINISHED"
