"""The model registry's methods of :class:`sparktrack.TrackingClient` (MLflow's names,
arguments and rules), kept apart from the tracking methods: each is a thin call into
:mod:`sparktrack._registry`, whose state lives in Delta tables beside the runs.
"""

from __future__ import annotations

from typing import Any

from sparktrack._arguments import checked
from sparktrack._paging import PagedList
from sparktrack._registry import Registry, registry_for
from sparktrack._registry import search as registry_search
from sparktrack.entities import ModelVersion, RegisteredModel
from sparktrack.errors import InvalidInputError

__all__ = ["RegistryMethods"]


class RegistryMethods:
    """Registry methods for a client that has a ``_store`` (a :class:`TrackingStore`)."""

    # -- model registry ----------------------------------------------------------------------
    # MLflow's registry API, names and rules (see sparktrack._registry); state in Delta tables
    # beside the runs, every change also a row of the registry_events table.
    @property
    def _registry(self) -> Registry:
        return registry_for(self._store)

    @checked
    def create_registered_model(
        self, name: str, tags: dict[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        """Create an empty registered model.

        Raises:
            AlreadyExistsError: a model of that name exists.
            InvalidInputError: the name is empty or holds '/' or ':', or a tag is invalid.
        """
        return self._registry.create_registered_model(name, tags, description)

    @checked
    def register_model(
        self, model_uri: str, name: str, await_registration_for: int = 300, *,
        tags: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Register the model at ``model_uri`` as a new version of ``name`` (the model is
        created first if missing), as ``mlflow.register_model`` does.

        ``runs:/<run_id>/<path>`` is resolved to the run's artifact location (and the version
        records the run id); any other URI or path is the version's source as given.
        ``await_registration_for`` is accepted for MLflow's signature: registration is
        synchronous, the version is READY on return.
        """
        from sparktrack.errors import AlreadyExistsError

        try:
            self._registry.create_registered_model(name)
        except AlreadyExistsError:
            pass
        return self._registry.create_model_version(name, model_uri, tags=tags)

    @checked
    def get_registered_model(self, name: str) -> RegisteredModel:
        """A registered model with its tags, aliases and latest version per stage."""
        return self._registry.get_registered_model(name)

    @checked
    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Rename a model; its versions and aliases follow it."""
        return self._registry.rename_registered_model(name, new_name)

    @checked
    def update_registered_model(
        self, name: str, description: str | None = None
    ) -> RegisteredModel:
        """Set a registered model's description."""
        return self._registry.update_registered_model(name, description)

    @checked
    def delete_registered_model(self, name: str) -> None:
        """Delete a model with its versions and aliases (its history stays in registry_events)."""
        self._registry.delete_registered_model(name)

    @checked
    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = registry_search.MODELS_DEFAULT,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """Registered models matching ``filter_string`` (MLflow's grammar: ``name`` and
        ``tags.<key>``, plus OR, NOT, parentheses and the timestamps), one page at a time."""
        items, token = registry_search.search_models(
            self._registry, filter_string=filter_string, max_results=max_results,
            order_by=order_by, page_token=page_token)
        return PagedList(items, token)

    @checked
    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        self._registry.set_registered_model_tag(name, key, value)

    @checked
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._registry.delete_registered_model_tag(name, key)

    @checked
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        await_creation_for: int = 300,
    ) -> ModelVersion:
        """Add a version (the next number, never reused) to an existing registered model."""
        return self._registry.create_model_version(name, source, run_id, tags, run_link,
                                                   description)

    @checked
    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        return self._registry.get_model_version(name, version)

    @checked
    def update_model_version(
        self, name: str, version: str | int, description: str | None = None
    ) -> ModelVersion:
        return self._registry.update_model_version(name, version, description)

    @checked
    def delete_model_version(self, name: str, version: str | int) -> None:
        """Delete a version and its aliases; its number is not given to another version."""
        self._registry.delete_model_version(name, version)

    @checked
    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = registry_search.VERSIONS_DEFAULT,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        """Model versions matching ``filter_string``: MLflow's grammar (``name``,
        ``version_number``, ``run_id``, ``source_path``, ``tags.<key>``) plus ``alias``,
        ``current_stage``, ``user_id``, ``creation_timestamp`` and
        ``last_updated_timestamp``, with OR, NOT and parentheses. Results carry aliases."""
        items, token = registry_search.search_versions(
            self._registry, filter_string=filter_string, max_results=max_results,
            order_by=order_by, page_token=page_token)
        return PagedList(items, token)

    @checked
    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        """Where the version's files are (the run's artifact folder for runs:/ sources)."""
        return self._registry.get_model_version_download_uri(name, version)

    def _version_or_stage(self, name: str, version: str | int | None, stage: str | None) -> int:
        if (version is None) == (stage is None):
            raise InvalidInputError(
                f"Give exactly one of version and stage for model {name!r} (got version="
                f"{version!r}, stage={stage!r})."
            )
        if version is not None:
            return version
        latest = self._registry.get_latest_versions(name, [stage])
        if not latest:
            from sparktrack.errors import NotFoundError

            raise NotFoundError(f"Model {name!r} has no version in stage {stage!r}.")
        return latest[0].version

    @checked
    def set_model_version_tag(
        self,
        name: str,
        version: str | int | None = None,
        key: str | None = None,
        value: Any = None,
        stage: str | None = None,
    ) -> None:
        """Tag a version (given by number, or as the latest version in ``stage``)."""
        number = self._version_or_stage(name, version, stage)
        self._registry.set_model_version_tag(name, number, key, value)

    @checked
    def delete_model_version_tag(
        self,
        name: str,
        version: str | int | None = None,
        key: str | None = None,
        stage: str | None = None,
    ) -> None:
        number = self._version_or_stage(name, version, stage)
        self._registry.delete_model_version_tag(name, number, key)

    @checked
    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` at a version (moving it if it pointed elsewhere). ``latest`` and
        ``v<digits>`` are reserved."""
        self._registry.set_registered_model_alias(name, alias, version)

    @checked
    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._registry.delete_registered_model_alias(name, alias)

    @checked
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version ``alias`` points to (``latest``: the highest version).

        Raises:
            InvalidInputError: no such alias (INVALID_PARAMETER_VALUE, as in MLflow).
        """
        return self._registry.get_model_version_by_alias(name, alias)

    @checked
    def transition_model_version_stage(
        self, name: str, version: str | int, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        """Move a version to None, Staging, Production or Archived (any case); with
        ``archive_existing_versions`` (Staging/Production only) the others in that stage
        become Archived."""
        return self._registry.transition_model_version_stage(name, version, stage,
                                                             archive_existing_versions)

    @checked
    def get_latest_versions(
        self, name: str, stages: list[str] | None = None
    ) -> list[ModelVersion]:
        """The highest version in each of ``stages`` (every stage when None)."""
        return self._registry.get_latest_versions(name, stages)

    @checked
    def get_registry_history(
        self, name: str | None = None, *, since: int | None = None
    ) -> list[dict[str, Any]]:
        """The registry's changes, oldest first, as rows of the ``registry_events`` table
        (event, timestamp in ms, user_id, name, version, stage, previous_stage, alias,
        previous_version, key, value): of the model ``name`` (across its renames) or of all
        models, from ``since`` (ms) on. sparktrack only; Spark reads the same table."""
        return self._registry.history(name, since=since)
