"""``sparktrack.exceptions``: MLflow's ``MlflowException`` is the root of sparktrack's error tree,
and every error carries MLflow's ``error_code``."""

from __future__ import annotations

import inspect
import pickle

import pytest

import sparktrack
from sparktrack import TrackingClient, errors
from sparktrack.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidFilterError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    ParamOverwriteError,
    RunNotFoundError,
    SparkTrackError,
    StoreError,
)

EXPECTED_CODES = {
    "SparkTrackError": "INTERNAL_ERROR",
    "InvalidInputError": "INVALID_PARAMETER_VALUE",
    "InvalidKeyError": "INVALID_PARAMETER_VALUE",
    "LimitExceededError": "INVALID_PARAMETER_VALUE",
    "QuotaExceededError": "INVALID_PARAMETER_VALUE",
    "ParamOverwriteError": "INVALID_PARAMETER_VALUE",
    "InvalidFilterError": "INVALID_PARAMETER_VALUE",
    "InvalidArtifactPathError": "INVALID_PARAMETER_VALUE",
    "NotFoundError": "RESOURCE_DOES_NOT_EXIST",
    "ExperimentNotFoundError": "RESOURCE_DOES_NOT_EXIST",
    "RunNotFoundError": "RESOURCE_DOES_NOT_EXIST",
    "ArtifactNotFoundError": "RESOURCE_DOES_NOT_EXIST",
    "AlreadyExistsError": "RESOURCE_ALREADY_EXISTS",
    "InvalidStateError": "INVALID_STATE",
    "StoreError": "INTERNAL_ERROR",
    "MissingRequirementError": "INTERNAL_ERROR",
}


def _error_classes() -> dict[str, type]:
    return {
        name: getattr(errors, name) for name in errors.__all__
        if issubclass(getattr(errors, name), Exception)
        and not issubclass(getattr(errors, name), Warning)
    }


def test_mlflow_exception_is_the_root_of_the_tree():
    assert sparktrack.exceptions.MlflowException is SparkTrackError
    from sparktrack.exceptions import MlflowException

    for name, error in _error_classes().items():
        assert issubclass(error, MlflowException), name


def test_every_error_class_has_mlflows_code_and_the_docstring_shows_it():
    classes = _error_classes()
    assert set(classes) == set(EXPECTED_CODES), "a new class needs its code here and in the tree"
    for name, error in classes.items():
        assert error("message").error_code == EXPECTED_CODES[name], name
        line = next(line for line in errors.__doc__.splitlines() if f" {name}" in line)
        if name in ("SparkTrackError", "InvalidInputError", "NotFoundError",
                    "AlreadyExistsError", "MissingRequirementError"):
            assert f"[{EXPECTED_CODES[name]}]" in line, name


def test_errors_raised_by_the_api_carry_the_code_scripts_check(store_uri):
    from sparktrack.exceptions import MlflowException

    client = TrackingClient(store_uri)
    client.create_experiment("taken")
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "p", "1")
    cases = [
        (lambda: client.get_run("0" * 32), RunNotFoundError, "RESOURCE_DOES_NOT_EXIST", 404),
        (lambda: client.get_experiment("999"), ExperimentNotFoundError,
         "RESOURCE_DOES_NOT_EXIST", 404),
        (lambda: client.create_experiment("taken"), AlreadyExistsError,
         "RESOURCE_ALREADY_EXISTS", 400),
        (lambda: client.log_param(run_id, "p", "2"), ParamOverwriteError,
         "INVALID_PARAMETER_VALUE", 400),
        (lambda: client.search_runs(["0"], "metrics.m >>> 1"), InvalidFilterError,
         "INVALID_PARAMETER_VALUE", 400),
        (lambda: client.set_terminated(run_id, "RUNNING"), InvalidInputError,
         "INVALID_PARAMETER_VALUE", 400),
    ]
    for call, error_type, code, http_status in cases:
        with pytest.raises(MlflowException) as caught:
            call()
        error = caught.value
        assert type(error) is error_type
        assert (error.error_code, error.get_http_status_code()) == (code, http_status)
        assert error.message == str(error) and error.message


def test_constructor_is_mlflows():
    """``MlflowException(message, error_code=...)``, as scripts and plugins raise it."""
    from sparktrack.exceptions import MlflowException

    error = MlflowException("no such model", error_code="RESOURCE_DOES_NOT_EXIST")
    assert (error.message, str(error), error.error_code) == (
        "no such model", "no such model", "RESOURCE_DOES_NOT_EXIST",
    )
    assert error.get_http_status_code() == 404
    assert MlflowException("boom").error_code == "INTERNAL_ERROR"
    assert MlflowException("x", error_code="NOT_IMPLEMENTED").get_http_status_code() == 501
    assert MlflowException("x", error_code="SOME_NEW_CODE").get_http_status_code() == 500
    assert MlflowException(ValueError("wrapped")).message == "wrapped"
    assert StoreError("x", error_code="TEMPORARILY_UNAVAILABLE").error_code == (
        "TEMPORARILY_UNAVAILABLE"
    )
    assert StoreError("y").error_code == "INTERNAL_ERROR"  # the override stays on its instance
    invalid = MlflowException.invalid_parameter_value("bad lr")
    assert isinstance(invalid, InvalidInputError) and invalid.error_code == (
        "INVALID_PARAMETER_VALUE"
    )
    parameters = list(inspect.signature(MlflowException).parameters)
    assert parameters[:2] == ["message", "error_code"]


def test_a_bad_error_code_is_refused_with_a_clear_message():
    with pytest.raises(InvalidInputError, match=r"error_code .*'INVALID_PARAMETER_VALUE'.*1001"):
        SparkTrackError("x", error_code=1001)
    with pytest.raises(InvalidInputError, match="error_code"):
        SparkTrackError("x", error_code="not a code")


def test_errors_survive_pickling_with_their_code():
    """Errors cross process boundaries (spawned workers, Spark tasks)."""
    for error in (RunNotFoundError("Run x not found"),
                  StoreError("commit failed", error_code="TEMPORARILY_UNAVAILABLE"),
                  NotFoundError("gone"), InvalidStateError("busy")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.message, str(copy), copy.error_code) == (
            error.message, str(error), error.error_code,
        )


def test_existing_catch_clauses_still_work():
    """The standard bases stay: ValueError for bad input, LookupError for missing things."""
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(NotFoundError, LookupError)
    with pytest.raises(ValueError, match="bad"):
        raise InvalidFilterError("bad")
