"""The expression tree a search filter is parsed into, and the vocabulary it is made of.

A filter such as ``metrics.acc > 0.9 AND NOT params.model = 'lr'`` becomes::

    And((Comparison(Identifier("metric", "acc"), ">", 0.9),
         Not(Comparison(Identifier("param", "model"), "=", "lr"))))

Nodes are frozen dataclasses: they hash, compare by value and can be shared between the
pyarrow evaluator and the Spark compiler. Identifiers are already normalised here: aliases
(``metric.``, ``attr.``, ``created``, ``tags."mlflow.runName"``...) never reach a compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "AGGREGATES",
    "And",
    "Comparison",
    "EXPERIMENT_NUMERIC_ATTRIBUTES",
    "EXPERIMENT_STRING_ATTRIBUTES",
    "MODEL_NUMERIC_ATTRIBUTES",
    "MODEL_STRING_ATTRIBUTES",
    "VERSION_NUMERIC_ATTRIBUTES",
    "VERSION_STRING_ATTRIBUTES",
    "Entity",
    "Identifier",
    "NUMERIC_ATTRIBUTES",
    "Node",
    "Not",
    "Or",
    "OrderKey",
    "STRING_ATTRIBUTES",
    "Value",
    "identifiers",
    "valid_comparators",
]

# "alias" is a model version's aliases: a version may have several, and a clause on it
# matches when one of them does (see sparktrack._registry.search).
Kind: TypeAlias = Literal["metric", "param", "tag", "attribute", "alias"]
# What a filter searches: runs (the full grammar), experiments, registered models or model
# versions (attributes and tags only).
Entity: TypeAlias = Literal["run", "experiment", "registered_model", "model_version"]
Aggregate: TypeAlias = Literal["latest", "min", "max"]
Value: TypeAlias = str | int | float | tuple[str, ...] | None

AGGREGATES: tuple[str, ...] = ("latest", "min", "max")

# Attributes are columns of the runs table. start_time/end_time compare as milliseconds since
# the epoch; everything else compares as a string.
NUMERIC_ATTRIBUTES: frozenset[str] = frozenset({"start_time", "end_time"})
STRING_ATTRIBUTES: frozenset[str] = frozenset(
    {"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"}
)

NUMERIC_COMPARATORS: tuple[str, ...] = ("=", "!=", ">", ">=", "<", "<=")
KEY_VALUE_COMPARATORS: tuple[str, ...] = ("=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL")
STRING_ATTRIBUTE_COMPARATORS: tuple[str, ...] = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
ID_COMPARATORS: tuple[str, ...] = ("=", "!=", "IN", "NOT IN")

# Attributes of an experiment (MLflow 3.17's SearchExperimentsUtils): times in milliseconds
# since the epoch; the id is compared as a whole (no LIKE), as MLflow does.
EXPERIMENT_NUMERIC_ATTRIBUTES: frozenset[str] = frozenset({"creation_time", "last_update_time"})
EXPERIMENT_STRING_ATTRIBUTES: frozenset[str] = frozenset({"name", "experiment_id"})
# The model registry (MLflow 3.17's SearchModelUtils and SearchModelVersionUtils, plus the
# timestamps, stage, user and alias that MLflow users ask for: issues #9783, #16734).
MODEL_NUMERIC_ATTRIBUTES: frozenset[str] = frozenset(
    {"creation_timestamp", "last_updated_timestamp"}
)
MODEL_STRING_ATTRIBUTES: frozenset[str] = frozenset({"name"})
VERSION_NUMERIC_ATTRIBUTES: frozenset[str] = MODEL_NUMERIC_ATTRIBUTES | {"version_number"}
VERSION_STRING_ATTRIBUTES: frozenset[str] = frozenset(
    {"name", "run_id", "source_path", "current_stage", "user_id", "alias"}
)
ALIAS_COMPARATORS: tuple[str, ...] = STRING_ATTRIBUTE_COMPARATORS + ("IS NULL", "IS NOT NULL")
_ALL_NUMERIC_ATTRIBUTES = (NUMERIC_ATTRIBUTES | EXPERIMENT_NUMERIC_ATTRIBUTES
                           | VERSION_NUMERIC_ATTRIBUTES)


@dataclass(frozen=True)
class Identifier:
    """What a clause compares: a metric (with its aggregate), a param, a tag or an attribute.

    ``aggregate`` is meaningful for metrics only ("latest" for a plain ``metrics.x``); it is
    always "latest" for the other kinds.
    """

    kind: Kind
    key: str
    aggregate: Aggregate = "latest"

    @property
    def type_name(self) -> str:
        """How error messages name this identifier's type ("metrics", "numeric attributes"...)."""
        if self.kind == "attribute":
            numeric = self.key in _ALL_NUMERIC_ATTRIBUTES
            return "numeric attributes" if numeric else "string attributes"
        return "aliases" if self.kind == "alias" else self.kind + "s"

    def __str__(self) -> str:
        if self.kind == "attribute":
            return f"attributes.{self.key}"
        if self.kind == "alias":
            return self.key
        plain = all(c.isalnum() or c in "_." for c in self.key)
        name = f"{self.kind}s.{self.key}" if plain else f"{self.kind}s.`{self.key}`"
        return name if self.aggregate == "latest" else f"{self.aggregate.upper()}({name})"


@dataclass(frozen=True)
class Comparison:
    """One leaf clause: ``identifier op value``.

    ``op`` is one of ``= != > >= < <= LIKE ILIKE IN NOT IN IS NULL IS NOT NULL``. ``value`` is
    a float for metrics, an int or float (milliseconds) for start_time/end_time, a str for
    params, tags and string attributes, a tuple of str for IN/NOT IN and None for IS [NOT] NULL.
    """

    identifier: Identifier
    op: str
    value: Value = None


@dataclass(frozen=True)
class And:
    """All operands match (two or more)."""

    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one operand matches (two or more)."""

    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The complement of ``operand`` within the candidate runs.

    A run that lacks the key ``operand`` looks at does not match ``operand``, so it does
    match ``Not(operand)``.
    """

    operand: Node


Node: TypeAlias = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` item: sort on ``identifier``, ascending unless ``ascending`` is False."""

    identifier: Identifier
    ascending: bool = True


def identifiers(tree: Node | None) -> set[Identifier]:
    """Every identifier a filter tree compares (none for no filter)."""
    if tree is None:
        return set()
    if isinstance(tree, Comparison):
        return {tree.identifier}
    if isinstance(tree, Not):
        return identifiers(tree.operand)
    return set().union(*(identifiers(operand) for operand in tree.operands))


def valid_comparators(identifier: Identifier, entity: Entity = "run") -> tuple[str, ...]:
    """The comparators a clause on ``identifier`` may use (MLflow's per-type rules, plus IN
    for every string attribute, which MLflow allows for run_id and experiment_id only)."""
    if identifier.kind == "metric":
        return NUMERIC_COMPARATORS
    if identifier.kind in ("param", "tag"):
        return KEY_VALUE_COMPARATORS
    if identifier.kind == "alias":
        return ALIAS_COMPARATORS
    if identifier.key in _ALL_NUMERIC_ATTRIBUTES:
        return NUMERIC_COMPARATORS
    if entity == "experiment" and identifier.key == "experiment_id":
        return ID_COMPARATORS
    return STRING_ATTRIBUTE_COMPARATORS
