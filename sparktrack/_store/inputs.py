"""Run inputs: the datasets a run used, as rows of the ``inputs`` table.

MLflow's rules: a dataset input is identified in its run by (name, digest); logging the same
pair again is a no-op (the first input and its tags stay), and duplicates within one call
keep the first. Rows are committed directly (inputs are few and rarely on a hot path); two
processes logging the same pair at once may both commit it, so readers keep the first row by
``logged_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

from sparktrack import _tags
from sparktrack.entities import Dataset, DatasetInput, InputTag, RunInputs
from sparktrack.errors import InvalidInputError, LimitExceededError
from sparktrack._store.schemas import INPUTS

__all__ = [
    "CONTEXT_TAG",
    "as_dataset_input",
    "input_rows",
    "run_inputs_from_rows",
    "validate_dataset_inputs",
]

CONTEXT_TAG = _tags.DATASET_CONTEXT

# MLflow 3.17's limits (mlflow/utils/validation.py and its SQL columns), so what sparktrack
# accepts MLflow does too.
_LIMITS = {
    "name": 500,
    "digest": 36,
    "source_type": 36,
    "source": 65535,
    "schema": 1048575,
    "profile": 16777215,
}
MAX_INPUT_TAG_KEY_LENGTH = 255
MAX_INPUT_TAG_VALUE_LENGTH = 500
_REQUIRED = ("name", "digest", "source_type", "source")


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def as_dataset_input(item: object) -> DatasetInput:
    """A :class:`DatasetInput` from ours or any object of the same shape (MLflow's own
    ``mlflow.entities.DatasetInput``), so MLflow code can pass what it builds."""
    if isinstance(item, DatasetInput):
        return item
    dataset = getattr(item, "dataset", None)
    if dataset is None or not hasattr(dataset, "digest"):
        raise InvalidInputError(
            f"Each dataset input must be a sparktrack.entities.DatasetInput (a dataset and its "
            f"tags), got {_quote(item)}."
        )
    tags = [InputTag(str(tag.key), str(tag.value)) for tag in getattr(item, "tags", None) or []]
    return DatasetInput(dataset=as_dataset(dataset), tags=tags)


def as_dataset(dataset: object) -> Dataset:
    """A :class:`Dataset` from ours, MLflow's entity, or an MLflow ``mlflow.data`` dataset."""
    if isinstance(dataset, Dataset):
        return dataset
    to_entity = getattr(dataset, "_to_mlflow_entity", None)
    if callable(to_entity):  # mlflow.data.Dataset: its entity holds the JSON fields
        dataset = to_entity()
    values = {}
    for field in ("name", "digest", "source_type", "source", "schema", "profile"):
        value = getattr(dataset, field, None)
        values[field] = None if value is None else str(value)
    return Dataset(**values)


def validate_dataset_inputs(inputs: Sequence[DatasetInput]) -> list[DatasetInput]:
    """Check every input against MLflow's rules; returns them with duplicates dropped."""
    kept: dict[tuple[str, str], DatasetInput] = {}
    for item in inputs:
        _validate_dataset(item.dataset)
        for tag in item.tags:
            _validate_input_tag(tag, item.dataset.name)
        kept.setdefault((item.dataset.name, item.dataset.digest), item)
    return list(kept.values())


def _validate_dataset(dataset: Dataset) -> None:
    for field in _REQUIRED:
        if not isinstance(getattr(dataset, field), str) or not getattr(dataset, field):
            raise InvalidInputError(
                f"Dataset {field} must be a non-empty string, got "
                f"{_quote(getattr(dataset, field))} (dataset {_quote(dataset.name)})."
            )
    for field, limit in _LIMITS.items():
        value = getattr(dataset, field)
        if value is not None and not isinstance(value, str):
            raise InvalidInputError(
                f"Dataset {field} of {_quote(dataset.name)} must be a JSON string or None, got "
                f"{_quote(value)}."
            )
        if value is not None and len(value) > limit:
            raise LimitExceededError(
                f"Dataset {field} of {_quote(dataset.name)} is {len(value)} characters long; "
                f"the limit is {limit}. Shorten it (e.g. leave the schema or profile out)."
            )


def _validate_input_tag(tag: InputTag, dataset_name: str) -> None:
    if not isinstance(tag.key, str) or not tag.key:
        raise InvalidInputError(
            f"Input tag keys must be non-empty strings, got {_quote(tag.key)} "
            f"(dataset {_quote(dataset_name)})."
        )
    if len(tag.key) > MAX_INPUT_TAG_KEY_LENGTH:
        raise LimitExceededError(
            f"Input tag key {_quote(tag.key)} is {len(tag.key)} characters long; the limit is "
            f"{MAX_INPUT_TAG_KEY_LENGTH}."
        )
    if not isinstance(tag.value, str):
        raise InvalidInputError(
            f"Input tag {tag.key!r} of dataset {_quote(dataset_name)} must have a string value, "
            f"got {_quote(tag.value)}."
        )
    if len(tag.value) > MAX_INPUT_TAG_VALUE_LENGTH:
        raise LimitExceededError(
            f"Input tag {tag.key!r} of dataset {_quote(dataset_name)} has a value "
            f"{len(tag.value)} characters long; the limit is {MAX_INPUT_TAG_VALUE_LENGTH}."
        )


def input_rows(
    run_id: str, experiment_id: str, inputs: Iterable[DatasetInput], logged_at: int
) -> pa.Table:
    """Rows of the ``inputs`` table for a run's new inputs."""
    rows = []
    for item in inputs:
        dataset = item.dataset
        tags = [(tag.key, tag.value) for tag in item.tags]
        context = next((value for key, value in tags if key == CONTEXT_TAG), None)
        rows.append({
            "run_id": run_id,
            "experiment_id": experiment_id,
            "name": dataset.name,
            "digest": dataset.digest,
            "source_type": dataset.source_type,
            "source": dataset.source,
            "schema": dataset.schema,
            "profile": dataset.profile,
            "context": context,
            "tags": tags,
            "logged_at": logged_at,
        })
    return pa.Table.from_pylist(rows, schema=INPUTS.schema)


def run_inputs_from_rows(rows: pa.Table) -> RunInputs:
    """One run's inputs from its rows: the first row per (name, digest), oldest first."""
    ordered = sorted(enumerate(rows.to_pylist()), key=lambda pair: (pair[1]["logged_at"], pair[0]))
    seen: set[tuple[str, str]] = set()
    inputs = []
    for _, row in ordered:
        key = (row["name"], row["digest"])
        if key in seen:
            continue
        seen.add(key)
        dataset = Dataset(
            name=row["name"],
            digest=row["digest"],
            source_type=row["source_type"],
            source=row["source"],
            schema=row["schema"],
            profile=row["profile"],
        )
        tags = [InputTag(key, value) for key, value in row["tags"] or []]
        inputs.append(DatasetInput(dataset=dataset, tags=tags))
    return RunInputs(dataset_inputs=inputs)
