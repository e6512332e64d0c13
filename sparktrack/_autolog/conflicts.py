"""Fitting again in the same run: keys that already hold another value get a UUID suffix.

One suffix per ``fit()`` call, applied to every param, tag, metric and artifact name of that
call that would overwrite what the run already holds; a tag
``sparktrack.autolog.suffix.<suffix>`` records which keys were renamed, so nothing logged
earlier is lost or overwritten. Keys that hold the same value are left alone (re-logging a
param with its value is a no-op).
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterable, Mapping

from sparktrack import _tags
__all__ = ["ConflictResolver", "SUFFIX_TAG_PREFIX"]

SUFFIX_TAG_PREFIX = _tags.AUTOLOG_SUFFIX_PREFIX


class ConflictResolver:
    """Names for one ``fit()``'s keys in a run that may already hold some of them."""

    def __init__(
        self,
        *,
        params: Mapping[str, str] = (),
        tags: Mapping[str, str] = (),
        metrics: Iterable[str] = (),
        artifacts: Iterable[str] = (),
        what: str = "fit()",
    ) -> None:
        self._params = dict(params)
        self._tags = dict(tags)
        self._metrics = set(metrics)
        self._artifacts = set(artifacts)
        self._what = what
        self.suffix: str | None = None
        self.renamed: list[str] = []

    def _rename(self, key: str) -> str:
        if self.suffix is None:
            self.suffix = uuid.uuid4().hex[:8]
        self.renamed.append(key)
        return f"{key}-{self.suffix}"

    def _resolve(self, held: dict[str, str], items: Mapping[str, str]) -> dict[str, str]:
        resolved = {}
        for key, value in items.items():
            old = held.get(key)
            if old is not None and old != value:
                key = self._rename(key)
            held[key] = value
            resolved[key] = value
        return resolved

    def params(self, params: Mapping[str, str]) -> dict[str, str]:
        return self._resolve(self._params, params)

    def tags(self, tags: Mapping[str, str]) -> dict[str, str]:
        return self._resolve(self._tags, tags)

    def metric(self, key: str) -> str:
        """A metric key this fit may use (the run's earlier points of ``key`` stay as they are)."""
        if key in self._metrics:
            key = self._rename(key)
        self._metrics.add(key)
        return key

    def artifact(self, name: str) -> str:
        """An artifact file or folder name at the run's root that is not taken yet."""
        if name in self._artifacts:
            stem, extension = posixpath.splitext(name)
            if self.suffix is None:
                self.suffix = uuid.uuid4().hex[:8]
            self.renamed.append(name)
            name = f"{stem}-{self.suffix}{extension}"
        self._artifacts.add(name)
        return name

    def record(self) -> dict[str, str]:
        """The tag recording this fit's renames (empty when nothing was renamed)."""
        if self.suffix is None:
            return {}
        text = f"{self._what} renamed: {', '.join(self.renamed)}"
        return {SUFFIX_TAG_PREFIX + self.suffix: text[:8000]}
