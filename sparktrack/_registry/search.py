"""search_registered_models / search_model_versions: MLflow's grammars and more.

Filters are parsed by :mod:`sparktrack._search` with the registry's vocabularies
(``entity="registered_model"`` / ``"model_version"``) and evaluated by the same pyarrow
evaluator as run filters over one row per model or version. Beyond MLflow: OR, NOT and
parentheses; models by ``creation_timestamp``/``last_updated_timestamp``; versions by
``alias`` (any of the version's aliases; ``alias IS NULL``: none), ``current_stage``,
``user_id`` and the timestamps. Results carry their aliases.

Order: MLflow's defaults (models by name; versions by last_updated_timestamp descending) and
tie-breakers (name ascending, then version number descending). Models also order by
``timestamp`` (MLflow's name for last_updated_timestamp) and creation_timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from sparktrack.entities import ModelVersion, RegisteredModel
from sparktrack._paging import check_max_results, offset_from_token, token_for
from sparktrack._search import (
    Comparison,
    Identifier,
    Node,
    Not,
    OrderKey,
    filter_runs,
    parse_filter,
    parse_order_by,
)
from sparktrack._registry.registry import Registry

__all__ = [
    "MODELS_DEFAULT",
    "MODELS_LIMIT",
    "VERSIONS_DEFAULT",
    "VERSIONS_LIMIT",
    "search_models",
    "search_versions",
]

# MLflow's page sizes (mlflow/store/model_registry/__init__.py).
MODELS_DEFAULT, MODELS_LIMIT = 100, 1000
VERSIONS_DEFAULT, VERSIONS_LIMIT = 10_000, 200_000


class _Source:
    """The evaluator's view: one row per item, keyed by a ``run_id`` column (the row index)."""

    def __init__(self, table: pa.Table, tags: list[dict], aliases: list[list[str]]) -> None:
        self.table = table
        self._tags = tags
        self._aliases = aliases

    def runs(self) -> pa.Table:
        return self.table

    def tag(self, key: str) -> pa.Table:
        having = [(str(i), tags[key]) for i, tags in enumerate(self._tags) if key in tags]
        return pa.table({"run_id": pa.array([i for i, _ in having], pa.string()),
                         "value": pa.array([v for _, v in having], pa.string())})

    def alias(self) -> pa.Table:
        pairs = [(str(i), a) for i, names in enumerate(self._aliases) for a in names]
        return pa.table({"run_id": pa.array([i for i, _ in pairs], pa.string()),
                         "value": pa.array([a for _, a in pairs], pa.string())})

    def metric(self, key: str, aggregate: str) -> pa.Table:
        raise AssertionError("the registry grammars have no metrics")

    def param(self, key: str) -> pa.Table:
        raise AssertionError("the registry grammars have no params")


def _page(items: list, *, max_results: int, page_token: str | None
          ) -> tuple[list, str | None]:
    offset = offset_from_token(page_token)
    end = offset + max_results
    return items[offset:end], (token_for(end) if end < len(items) else None)


# The evaluator keys rows by a run_id column: a version's own run_id goes by another name.
_RUN_ID_COLUMN = "version_run_id"


def _renamed(node: Node | None) -> Node | None:
    """``node`` with clauses on the ``run_id`` attribute reading :data:`_RUN_ID_COLUMN`."""
    if node is None:
        return None
    if isinstance(node, Comparison):
        if node.identifier == Identifier("attribute", "run_id"):
            return Comparison(Identifier("attribute", _RUN_ID_COLUMN), node.op, node.value)
        return node
    if isinstance(node, Not):
        return Not(_renamed(node.operand))
    return type(node)(tuple(_renamed(child) for child in node.operands))  # And or Or


def _matching(entity: str, filter_string: str | None, columns: dict[str, pa.Array],
              tags: list[dict], aliases: list[list[str]]) -> list[int]:
    tree = _renamed(parse_filter(filter_string, entity=entity))
    count = len(tags)
    columns = {(_RUN_ID_COLUMN if key == "run_id" else key): value
               for key, value in columns.items()}
    table = pa.table({"run_id": pa.array([str(i) for i in range(count)], pa.string()),
                      **columns})
    kept = filter_runs(tree, _Source(table, tags, aliases)).column("run_id").to_pylist()
    return [int(i) for i in kept]


def _ordered(items: list, order: Sequence[OrderKey], defaults: Sequence[OrderKey],
             tie_breakers: Sequence[OrderKey], value: Callable[[object, str], object]) -> list:
    keys = list(order) or list(defaults)
    named = {key.identifier for key in keys}
    keys += [key for key in tie_breakers if key.identifier not in named]
    ordered = list(items)
    for key in reversed(keys):  # stable sorts, least significant first; None sorts last
        present = [i for i in ordered if value(i, key.identifier.key) is not None]
        missing = [i for i in ordered if value(i, key.identifier.key) is None]
        present.sort(key=lambda i, k=key.identifier.key: value(i, k), reverse=not key.ascending)
        ordered = present + missing
    return ordered


def _attribute(name: str) -> Identifier:
    return Identifier("attribute", name)


# MLflow's SQL store: models by name; versions most recently updated first; ties by name,
# then by version number descending.
_MODEL_ORDER = (OrderKey(_attribute("name")),)
_VERSION_TIE_BREAKERS = (OrderKey(_attribute("name")),
                         OrderKey(_attribute("version_number"), ascending=False))
_VERSION_DEFAULT_ORDER = (OrderKey(_attribute("last_updated_timestamp"), ascending=False),
                          *_VERSION_TIE_BREAKERS)


def search_models(registry: Registry, *, filter_string: str | None, max_results: int,
                  order_by: Sequence[str] | None, page_token: str | None
                  ) -> tuple[list[RegisteredModel], str | None]:
    """One page of matching registered models and the next page's token (None: the last)."""
    check_max_results(max_results, MODELS_LIMIT)
    order = parse_order_by(_order_list(order_by), entity="registered_model")
    parse_filter(filter_string, entity="registered_model")  # refuse a bad filter before reading
    with registry.current_state() as tables:
        rows = tables.model_rows()
        ids = [r["model_id"] for r in rows]
        versions = tables.version_rows(ids)
        aliases = tables.alias_rows(ids)
    models = [
        registry.model_entity(
            row, [v for v in versions if v["model_id"] == row["model_id"] and not v["deleted"]],
            {a["alias"]: a["version"] for a in aliases if a["model_id"] == row["model_id"]})
        for row in rows
    ]
    kept = _matching("registered_model", filter_string, {
        "name": pa.array([m.name for m in models], pa.string()),
        "creation_timestamp": pa.array([m.creation_timestamp for m in models], pa.int64()),
        "last_updated_timestamp": pa.array([m.last_updated_timestamp for m in models],
                                           pa.int64()),
    }, [m.tags for m in models], [[] for _ in models])
    matching = _ordered([models[i] for i in kept], order, _MODEL_ORDER, _MODEL_ORDER,
                        lambda m, k: getattr(m, k))
    return _page(matching, max_results=max_results, page_token=page_token)


def _version_value(version: ModelVersion, key: str) -> object:
    return version.version if key == "version_number" else (
        version.source if key == "source_path" else getattr(version, key))


def search_versions(registry: Registry, *, filter_string: str | None, max_results: int,
                    order_by: Sequence[str] | None, page_token: str | None
                    ) -> tuple[list[ModelVersion], str | None]:
    """One page of matching (live) model versions and the next page's token."""
    check_max_results(max_results, VERSIONS_LIMIT)
    order = parse_order_by(_order_list(order_by), entity="model_version")
    parse_filter(filter_string, entity="model_version")
    with registry.current_state() as tables:
        live = {r["model_id"] for r in tables.model_rows()}
        rows = [r for r in tables.version_rows(sorted(live)) if not r["deleted"]]
        by_version = registry.aliases_by_version(sorted(live))
    versions = [registry.version_entity(r, by_version.get((r["model_id"], r["version"]), []))
                for r in rows]

    def column(key: str, kind: pa.DataType) -> pa.Array:
        return pa.array([_version_value(v, key) for v in versions], kind)

    kept = _matching("model_version", filter_string, {
        **{key: column(key, pa.string())
           for key in ("name", "run_id", "source_path", "current_stage", "user_id")},
        **{key: column(key, pa.int64())
           for key in ("version_number", "creation_timestamp", "last_updated_timestamp")},
    }, [v.tags for v in versions], [v.aliases for v in versions])
    matching = _ordered([versions[i] for i in kept], order, _VERSION_DEFAULT_ORDER,
                        _VERSION_TIE_BREAKERS, _version_value)
    return _page(matching, max_results=max_results, page_token=page_token)


def _order_list(order_by: Sequence[str] | None) -> list[str] | None:
    if order_by is not None and not isinstance(order_by, str):
        return list(order_by)
    return order_by
