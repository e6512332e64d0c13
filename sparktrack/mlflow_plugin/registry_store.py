"""MLflow's model-registry store over a sparktrack store (entry point
``mlflow.model_registry_store``).

MLflow's registry URI defaults to its tracking URI, and its UI's run page reads a run's model
versions through this store, so the tracking plugin needs it even where the registry is not
used. A thin adapter over the registry methods of :class:`sparktrack.TrackingClient`: names,
rules, search and commits are sparktrack's; errors leave as ``MlflowException``.
"""

from __future__ import annotations

import re
from typing import Any

from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.abstract_store import AbstractStore

from sparktrack._registry import search as registry_search
from sparktrack.client import TrackingClient
from sparktrack.mlflow_plugin import _convert
from sparktrack.mlflow_plugin._adapter import complete_store_class
from sparktrack.mlflow_plugin._errors import not_implemented
from sparktrack.mlflow_plugin.uris import artifact_uri_for_mlflow, store_root_from_uri

__all__ = ["SparkTrackRegistryStore"]

# MLflow's defaults that are built on the methods below and work as they are.
_INHERITED = ("copy_model_version",)
_PRIVATE = ("_await_model_version_creation", "_await_model_version_creation_impl")


# MLflow's rule for its prompt tag: a model or version WITHOUT it matches
# `tags.`mlflow.prompt.is_prompt` != 'true'` and `... = 'false'` (MLflow's client adds the first
# to every registered-model search, to leave prompts out). sparktrack's search, like SQL, does
# not match a missing tag; NOT over the opposite comparison gives MLflow's answer.
_PROMPT_CLAUSE = re.compile(
    r"""\btags?\.(`mlflow\.prompt\.is_prompt`|mlflow\.prompt\.is_prompt)\s*"""
    r"""(!=|=)\s*(['"])(true|false)\3""", re.IGNORECASE)
_OPPOSITE = {("!=", "true"): "=", ("=", "false"): "!="}


def mlflow_prompt_rule(filter_string: str | None) -> str | None:
    """``filter_string`` with MLflow's prompt-tag clauses rewritten to match models without
    the tag, as MLflow does (``!= 'true'`` -> ``NOT ... = 'true'``, ``= 'false'`` ->
    ``NOT ... != 'false'``); other clauses are left as they are."""
    if not isinstance(filter_string, str):
        return filter_string

    def rewrite(match: re.Match) -> str:
        operator, value = match.group(2), match.group(4).lower()
        opposite = _OPPOSITE.get((operator, value))
        if opposite is None:
            return match.group(0)
        return f"NOT tags.`mlflow.prompt.is_prompt` {opposite} '{value}'"

    return _PROMPT_CLAUSE.sub(rewrite, filter_string)


def _refuse_if(value: Any, method: str, argument: str, topic: str) -> None:
    if value is not None:
        raise not_implemented(f"{method}({argument}=...)", topic)


@complete_store_class(AbstractStore, inherited=_INHERITED + _PRIVATE, private=_PRIVATE)
class SparkTrackRegistryStore(AbstractStore):
    """MLflow's registry store for ``sparktrack:`` URIs (the same URIs as the tracking store).

    Args:
        store_uri: the registry URI, a sparktrack store URI.
        tracking_uri: MLflow's tracking URI (not used: the registry lives in the store).
    """

    def __init__(self, store_uri: str | None = None, tracking_uri: str | None = None) -> None:
        super().__init__(store_uri=store_uri, tracking_uri=tracking_uri)
        self.store_uri = store_uri
        self.client = TrackingClient(store_root_from_uri(store_uri))

    # -- registered models ---------------------------------------------------------------------
    def create_registered_model(self, name, tags=None, description=None,
                                deployment_job_id=None):
        _refuse_if(deployment_job_id, "create_registered_model", "deployment_job_id",
                   "deployment jobs")
        return _convert.registered_model(self.client.create_registered_model(
            name, tags=_convert.tag_dict(tags), description=description))

    def update_registered_model(self, name, description, deployment_job_id=None):
        _refuse_if(deployment_job_id, "update_registered_model", "deployment_job_id",
                   "deployment jobs")
        return _convert.registered_model(
            self.client.update_registered_model(name, description=description))

    def rename_registered_model(self, name, new_name):
        return _convert.registered_model(self.client.rename_registered_model(name, new_name))

    def delete_registered_model(self, name):
        self.client.delete_registered_model(name)

    def search_registered_models(self, filter_string=None, max_results=None, order_by=None,
                                 page_token=None):
        page = self.client.search_registered_models(
            filter_string=mlflow_prompt_rule(filter_string),
            max_results=registry_search.MODELS_DEFAULT if max_results is None else max_results,
            order_by=_convert.listed(order_by), page_token=page_token)
        return PagedList([_convert.registered_model(m) for m in page], page.token)

    def get_registered_model(self, name):
        return _convert.registered_model(self.client.get_registered_model(name))

    def get_latest_versions(self, name, stages=None):
        return [_convert.model_version(v)
                for v in self.client.get_latest_versions(name, stages=stages or None)]

    def set_registered_model_tag(self, name, tag):
        self.client.set_registered_model_tag(name, *_convert.tag_pair(tag, "RegisteredModelTag"))

    def delete_registered_model_tag(self, name, key):
        self.client.delete_registered_model_tag(name, key)

    # -- versions ------------------------------------------------------------------------------
    def create_model_version(self, name, source, run_id=None, tags=None, run_link=None,
                             description=None, local_model_path=None, model_id=None):
        _refuse_if(model_id, "create_model_version", "model_id", "logged models")
        return _convert.model_version(self.client.create_model_version(
            name, source, run_id=run_id, tags=_convert.tag_dict(tags), run_link=run_link,
            description=description))

    def update_model_version(self, name, version, description):
        return _convert.model_version(
            self.client.update_model_version(name, version, description=description))

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions):
        return _convert.model_version(self.client.transition_model_version_stage(
            name, version, stage, archive_existing_versions=bool(archive_existing_versions)))

    def delete_model_version(self, name, version):
        self.client.delete_model_version(name, version)

    def get_model_version(self, name, version):
        return _convert.model_version(self.client.get_model_version(name, version))

    def get_model_version_download_uri(self, name, version):
        return artifact_uri_for_mlflow(self.client.get_model_version_download_uri(name, version))

    def search_model_versions(self, filter_string=None, max_results=None, order_by=None,
                              page_token=None):
        page = self.client.search_model_versions(
            filter_string=mlflow_prompt_rule(filter_string),
            max_results=registry_search.VERSIONS_DEFAULT if max_results is None else max_results,
            order_by=_convert.listed(order_by), page_token=page_token)
        return PagedList([_convert.model_version(v) for v in page], page.token)

    def set_model_version_tag(self, name, version, tag):
        key, value = _convert.tag_pair(tag, "ModelVersionTag")
        self.client.set_model_version_tag(name, version, key, value)

    def delete_model_version_tag(self, name, version, key):
        self.client.delete_model_version_tag(name, version, key)

    # -- aliases -------------------------------------------------------------------------------
    def set_registered_model_alias(self, name, alias, version):
        self.client.set_registered_model_alias(name, alias, version)

    def delete_registered_model_alias(self, name, alias):
        self.client.delete_registered_model_alias(name, alias)

    def get_model_version_by_alias(self, name, alias):
        return _convert.model_version(self.client.get_model_version_by_alias(name, alias))

    # -- read by MLflow on every registry write or prompt page: none here, not an error --------
    def list_webhooks(self, max_results=None, page_token=None):
        return PagedList([], None)

    def list_webhooks_by_event(self, event, max_results=None, page_token=None):
        return PagedList([], None)

    def search_prompts(self, filter_string=None, max_results=None, order_by=None,
                       page_token=None):
        return PagedList([], None)
