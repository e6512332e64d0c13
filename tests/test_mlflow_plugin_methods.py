"""Every method of MLflow's two AbstractStores on the plugin's stores: it works, or raises
``MlflowException`` (NOT_IMPLEMENTED for what sparktrack does not keep) -- never a bare
``NotImplementedError`` (HTTP 500 in MLflow's server) and never a silent ``None`` from one of
MLflow's unenforced abstract methods."""

from __future__ import annotations

import inspect

import pytest

pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.store.model_registry.abstract_store import AbstractStore as RegistryBase  # noqa: E402
from mlflow.store.tracking.abstract_store import AbstractStore as TrackingBase  # noqa: E402

from sparktrack.mlflow_plugin import SparkTrackRegistryStore, SparkTrackStore  # noqa: E402
from sparktrack.mlflow_plugin._adapter import store_methods  # noqa: E402

# Methods whose MLflow default returns nothing useful or waits: called with real arguments in
# the other plugin tests, listed here so the generic call below does not block.
_NOT_CALLED_BARE = {"_await_model_version_creation", "_await_model_version_creation_impl"}

# Called by MLflow's server or client but not declared on AbstractStore (duck-typed).
_DUCK_TYPED = {SparkTrackStore: ("delete_tag", "_search_datasets"), SparkTrackRegistryStore: ()}

# What MLflow's UI asks on every page: answered with nothing, never with an error box.
_EMPTY = {
    SparkTrackStore: ("search_logged_models", "search_traces", "query_trace_metrics",
                      "search_datasets", "_search_datasets"),
    SparkTrackRegistryStore: ("list_webhooks", "list_webhooks_by_event", "search_prompts"),
}


@pytest.fixture()
def stores(tmp_path):
    uri = f"sparktrack://{tmp_path / 'store'}"
    return {
        SparkTrackStore: SparkTrackStore(store_uri=uri, artifact_uri="mlflow-artifacts:/"),
        SparkTrackRegistryStore: SparkTrackRegistryStore(store_uri=uri, tracking_uri=uri),
    }


def _bare_arguments(method) -> dict:
    """None for every parameter without a default (the kind of call a bad request makes)."""
    return {name: None for name, p in inspect.signature(method).parameters.items()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@pytest.mark.parametrize("cls, base", [(SparkTrackStore, TrackingBase),
                                       (SparkTrackRegistryStore, RegistryBase)])
def test_every_method_works_or_raises_mlflow_exception(stores, cls, base):
    store = stores[cls]
    names = store_methods(base, private=("_search_runs",)) + list(_DUCK_TYPED[cls])
    assert len(names) > 40
    outcomes = {}
    for name in names:
        if name in _NOT_CALLED_BARE:
            continue
        method = getattr(store, name)
        try:
            outcomes[name] = ("returned", method(**_bare_arguments(method)))
        except MlflowException as error:
            outcomes[name] = ("raised", error.error_code)
        except Exception as error:  # what this test is for: nothing else gets out
            pytest.fail(f"{cls.__name__}.{name} raised {type(error).__name__}: {error}")
    for name in _EMPTY[cls]:
        kind, value = outcomes[name]
        assert kind == "returned" and list(value) in ([], [[], None]), (name, value)
    # A method that returns None must be one that has nothing to return (a write); the
    # reads MLflow left abstract must not answer None silently.
    silent = sorted(n for n, (kind, value) in outcomes.items()
                    if kind == "returned" and value is None and n.startswith(("get_", "search"))
                    and n != "get_experiment_by_name")  # None is its "no such experiment"
    assert silent == [], silent


@pytest.mark.parametrize("cls, base", [(SparkTrackStore, TrackingBase),
                                       (SparkTrackRegistryStore, RegistryBase)])
def test_unsupported_methods_say_not_implemented_and_what(stores, cls, base):
    store = stores[cls]
    unsupported = [n for n in store_methods(base)
                   if getattr(getattr(cls, n), "__sparktrack_unsupported__", False)]
    assert {"start_trace", "create_logged_model", "log_outputs"} <= set(unsupported) or (
        cls is SparkTrackRegistryStore and {"create_prompt", "create_webhook"} <= set(unsupported))
    for name in unsupported:
        with pytest.raises(MlflowException) as caught:
            getattr(store, name)()
        assert caught.value.error_code == "NOT_IMPLEMENTED", name
        assert name in caught.value.message and "sparktrack" in caught.value.message


def test_a_store_method_mlflow_adds_later_is_not_implemented(tmp_path):
    """A method a later MLflow adds to AbstractStore is NOT_IMPLEMENTED, not a silent None."""
    from sparktrack.mlflow_plugin._adapter import complete_store_class

    class Later(TrackingBase):
        def create_span_of_the_future(self, anything):
            """Abstract in a future MLflow (body: pass)."""

    @complete_store_class(Later, inherited=())
    class Plugin(Later):
        pass

    with pytest.raises(MlflowException) as caught:
        Plugin().create_span_of_the_future(1)
    assert caught.value.error_code == "NOT_IMPLEMENTED"
