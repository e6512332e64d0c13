"""sparktrack as an MLflow backend: MLflow's UI, server and clients on a sparktrack store.

Installed with ``pip install sparktrack[mlflow]``, the package registers two MLflow plugins
under the URI scheme ``sparktrack`` (and ``sparktrack+s3``): a tracking store
(:class:`~sparktrack.mlflow_plugin.tracking_store.SparkTrackStore`, entry point group
``mlflow.tracking_store``) and a model-registry store
(:class:`~sparktrack.mlflow_plugin.registry_store.SparkTrackRegistryStore`,
``mlflow.model_registry_store``)::

    mlflow ui --backend-store-uri sparktrack:///data/sparktrack-store
    mlflow.set_tracking_uri("sparktrack:///data/sparktrack-store")

Importing this package does not import mlflow; the two store classes do (they are MLflow
``AbstractStore`` subclasses), on first access.
"""

from __future__ import annotations

from typing import Any

from sparktrack.mlflow_plugin.uris import artifact_uri_for_mlflow, store_root_from_uri

__all__ = [
    "SparkTrackRegistryStore",
    "SparkTrackStore",
    "artifact_uri_for_mlflow",
    "store_root_from_uri",
]

_LAZY = {
    "SparkTrackStore": "sparktrack.mlflow_plugin.tracking_store",
    "SparkTrackRegistryStore": "sparktrack.mlflow_plugin.registry_store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        try:
            module = importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as error:
            if error.name is None or not error.name.startswith("mlflow"):
                raise
            from sparktrack.errors import MissingRequirementError

            raise MissingRequirementError(
                f"sparktrack.mlflow_plugin.{name} needs MLflow: `pip install sparktrack[mlflow]`."
            ) from None
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
