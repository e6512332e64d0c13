"""What makes a store class a safe MLflow plugin: every method of MLflow's ``AbstractStore``
either is sparktrack's, or is one of MLflow's defaults built on sparktrack's, or raises
MLflow's NOT_IMPLEMENTED; and no method lets a sparktrack error or a bare
``NotImplementedError`` out.

MLflow does not enforce its ``@abstractmethod`` s (its stores declare the Python 2
``__metaclass__``): a method left out silently returns None, and its server answers a bare
``NotImplementedError`` with HTTP 500. :func:`complete_store_class` closes both holes for every
method MLflow has, including the ones a later MLflow adds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sparktrack.mlflow_plugin._errors import not_implemented, translated

__all__ = ["complete_store_class", "store_methods", "unsupported_method"]

C = TypeVar("C", bound=type)

# What a family of unsupported methods is about, by a word in the method's name (first match).
_TOPICS = (
    ("logged_model", "logged models (MLflow 3's model records; Spark models are logged as run "
                     "artifacts)"),
    ("log_outputs", "logged models (MLflow 3's model records)"),
    ("trace", "tracing"),
    ("span", "tracing"),
    ("assessment", "tracing assessments"),
    ("session", "tracing sessions"),
    ("dataset", "evaluation datasets"),
    ("prompt", "prompts (GenAI)"),
    ("scorer", "GenAI scorers"),
    ("scoring", "GenAI online scoring"),
    ("label_schema", "GenAI labeling"),
    ("review_queue", "GenAI review queues"),
    ("issue", "GenAI issues"),
    ("gateway", "the AI gateway"),
    ("endpoint", "the AI gateway"),
    ("guardrail", "the AI gateway"),
    ("secret", "the AI gateway"),
    ("budget", "the AI gateway"),
    ("mcp", "MCP servers"),
    ("webhook", "webhooks"),
    ("deployment_job", "deployment jobs"),
)


def _topic(name: str) -> str:
    return next((topic for word, topic in _TOPICS if word in name), "this method")


def unsupported_method(name: str) -> Callable[..., Any]:
    """A method that raises MLflow's NOT_IMPLEMENTED, naming what it is about."""

    def unsupported(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise not_implemented(name, _topic(name))

    unsupported.__name__ = unsupported.__qualname__ = name
    unsupported.__doc__ = f"Not supported: raises MlflowException(NOT_IMPLEMENTED) ({_topic(name)})."
    unsupported.__sparktrack_unsupported__ = True
    return unsupported


def store_methods(base: type, *, private: Iterable[str] = ()) -> list[str]:
    """The public methods of an MLflow ``AbstractStore`` (plus the named private ones MLflow
    calls from outside), excluding static and class methods."""
    names = []
    for name in sorted(set(dir(base))):
        if name.startswith("_") and name not in private:
            continue
        raw = inspect.getattr_static(base, name)
        if isinstance(raw, (staticmethod, classmethod)) or not callable(raw):
            continue
        names.append(name)
    return names


def complete_store_class(
    base: type, *, inherited: Iterable[str], private: Iterable[str] = ()
) -> Callable[[C], C]:
    """A class decorator: for each method of ``base`` (:func:`store_methods`), keep the
    class's own (wrapped with :func:`translated`), else keep MLflow's default if its name is
    in ``inherited`` (also wrapped), else install :func:`unsupported_method`. Methods the class
    defines beyond ``base`` (MLflow's duck-typed ones) are wrapped too, and so is ``__init__``:
    building a store opens it (a bad URI, a missing bucket, refused credentials), and MLflow
    hands that error to whoever asked for the store."""
    inherited = frozenset(inherited)
    private = tuple(private)

    def decorate(cls: C) -> C:
        for name, value in list(vars(cls).items()):
            if callable(value) and (name == "__init__" or not name.startswith("__")) and (
                    not isinstance(value, (staticmethod, classmethod, type))):
                setattr(cls, name, translated(value))
        for name in store_methods(base, private=private):
            if name in vars(cls):
                continue
            if name in inherited:
                setattr(cls, name, translated(getattr(base, name)))
            else:
                setattr(cls, name, unsupported_method(name))
        return cls

    return decorate
