"""What is recorded about the training DataFrame: source, format, Delta version, rows, hashes.

The description comes from :func:`sparktrack.repro.describe_input` (one Spark job for the
fingerprint; the DataFrame is read, never persisted or unpersisted) and is logged as tags
``input.training.<field>``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["training_input_tags"]


def training_input_tags(df: Any) -> dict[str, str]:
    from sparktrack.repro import describe_input

    return describe_input(df, name="training")
