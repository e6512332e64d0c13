"""autolog() takes every option of MLflow 3.17's mlflow.autolog and mlflow.pyspark.ml.autolog,
with MLflow's defaults and meaning, or a warning where sparktrack cannot honour one yet."""

from __future__ import annotations

import inspect
import logging
import warnings

import pytest

pytest.importorskip("pyspark")

from pyspark.ml import Estimator, Model  # noqa: E402
from pyspark.ml.param.shared import HasMaxIter  # noqa: E402

import sparktrack  # noqa: E402
from sparktrack import TrackingClient  # noqa: E402
from sparktrack._autolog import config  # noqa: E402
from sparktrack.errors import InvalidInputError  # noqa: E402

# sparktrack's own options, which MLflow does not have.
SPARKTRACK_ONLY = {"log_models_in_background", "max_tuning_runs"}


class Echo(Estimator, HasMaxIter):
    """Trains nothing, without the JVM."""

    def _fit(self, dataset):
        return EchoModel()


class EchoModel(Model):
    def _transform(self, dataset):
        return dataset


@pytest.fixture()
def tracked(store_uri):
    sparktrack.set_tracking_uri(store_uri)
    yield TrackingClient(store_uri)
    sparktrack.autolog(disable=True)
    while sparktrack.active_run() is not None:
        sparktrack.end_run()


def _runs():
    sparktrack.flush()
    return sparktrack.search_runs(search_all_experiments=True)


def _mlflow_autolog_functions():
    mlflow = pytest.importorskip("mlflow")
    pyspark_ml = pytest.importorskip("mlflow.pyspark.ml")
    return {"mlflow.autolog": mlflow.autolog, "mlflow.pyspark.ml.autolog": pyspark_ml.autolog}


def test_every_mlflow_option_is_accepted_with_mlflow_default():
    ours = inspect.signature(sparktrack.autolog).parameters
    from sparktrack.pyspark import ml

    assert inspect.signature(ml.autolog) == inspect.signature(sparktrack.autolog)
    names: set[str] = set()
    for label, function in _mlflow_autolog_functions().items():
        for name, parameter in inspect.signature(function).parameters.items():
            assert name in ours, f"{label} option {name!r} is missing"
            assert ours[name].default == parameter.default, f"{label} {name} default"
            assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY
            names.add(name)
    assert set(ours) - names == SPARKTRACK_ONLY  # nothing else of our own crept in


def test_mlflow_defaults_configure_quietly(tracked):
    defaults = {
        name: parameter.default
        for function in _mlflow_autolog_functions().values()
        for name, parameter in inspect.signature(function).parameters.items()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sparktrack.autolog(**{**defaults, "log_datasets": False, "log_models": False})
    Echo().fit(None)
    assert len(_runs()) == 1


def test_options_without_effect_on_spark_ml_are_accepted(tracked):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sparktrack.autolog(
            log_datasets=False, log_models=False, log_traces=False, log_model_signatures=False
        )
    Echo().fit(None)
    assert len(_runs()) == 1


@pytest.mark.parametrize(
    "option", [{"log_input_examples": True}, {"registered_model_name": "churn"}]
)
def test_options_mlflow_has_are_honoured_without_a_warning(tracked, option):
    # They once warned "not honoured"; models are now saved in MLflow's format, with input
    # examples, and registered (tests/test_models_autolog.py checks what they do).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sparktrack.autolog(log_datasets=False, log_models=False, **option)
    Echo().fit(None)
    assert len(_runs()) == 1


def test_registered_model_name_must_be_a_string(tracked):
    with pytest.raises(InvalidInputError, match="registered_model_name"):
        sparktrack.autolog(registered_model_name=["churn"])


def test_exclude_flavors_with_pyspark_ml_changes_nothing(tracked):
    sparktrack.autolog(log_datasets=False, log_models=False, exclude_flavors=["pyspark.ml"])
    Echo().fit(None)
    assert len(_runs()) == 0  # autologging was not turned on
    sparktrack.autolog(log_datasets=False, log_models=False, exclude_flavors=["sklearn"])
    sparktrack.autolog(disable=True, exclude_flavors=["pyspark.ml"])  # nor off
    Echo().fit(None)
    assert len(_runs()) == 1
    with pytest.raises(InvalidInputError, match="exclude_flavors must be a list"):
        sparktrack.autolog(exclude_flavors="pyspark.ml")


@pytest.mark.parametrize(
    ("version", "supported"),
    [("4.2.0", True), ("4.2.3", True), ("4.0.5", True), ("4.3.0", True), ("4.4.0", False),
     ("3.5.1", False), ("4.2.0.dev0", False), ("4.2.0rc1", False)],
)
def test_tested_pyspark_versions(version, supported):
    assert config.pyspark_is_supported(silent=True, version=version) is supported


def test_disable_for_unsupported_versions(tracked, monkeypatch, caplog):
    sparktrack.autolog(log_datasets=False, log_models=False, disable_for_unsupported_versions=True)
    Echo().fit(None)
    assert len(_runs()) == 1  # the installed pyspark is a tested one
    monkeypatch.setattr(config, "TESTED_PYSPARK", ((9, 9),))
    with caplog.at_level(logging.WARNING, logger="sparktrack.autolog"):
        sparktrack.autolog(
            log_datasets=False, log_models=False, disable_for_unsupported_versions=True
        )
    assert "stays off" in caplog.text and "9.9.x" in caplog.text
    Echo().fit(None)
    assert len(_runs()) == 1  # turned off, patches removed
    sparktrack.autolog(log_datasets=False, log_models=False)  # the default ignores the version
    Echo().fit(None)
    assert len(_runs()) == 2


def test_extra_tags_cannot_replace_the_autologging_tag(tracked, caplog):
    with caplog.at_level(logging.WARNING, logger="sparktrack.autolog"):
        sparktrack.autolog(
            log_datasets=False,
            log_models=False,
            extra_tags={"mlflow.autologging": "mine", "team": "ml"},
        )
    assert "reserved" in caplog.text
    Echo().fit(None)
    run = sparktrack.last_active_run()
    assert run.data.tags["mlflow.autologging"] == "pyspark.ml"
    assert run.data.tags["team"] == "ml"
