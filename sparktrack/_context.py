"""What is recorded about where a run comes from: user, source, git.

These become MLflow's system tags (``mlflow.user``, ``mlflow.source.name``,
``mlflow.source.type``, ``mlflow.source.git.*``) and columns of the runs table.
"""

from __future__ import annotations

import functools
import getpass
import os
import subprocess
import sys

from sparktrack import _tags
__all__ = ["SourceInfo", "current_user", "source_info", "system_tags"]

SourceInfo = dict[str, str | None]


def current_user() -> str:
    """The user of the process, as :func:`getpass.getuser` names it (the environment's
    ``LOGNAME``, ``USER``, ``LNAME`` or ``USERNAME``, else the account of the uid)."""
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(variable)
        if user:
            return user
    return _account_name(os.getuid() if hasattr(os, "getuid") else -1)


@functools.lru_cache(maxsize=8)
def _account_name(uid: int) -> str:
    # Looked up once per uid: every registry event names its user, and reading the password
    # database each time was a twentieth of a registry change.
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - containers may have no passwd entry for the uid
        return "unknown"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython() if hasattr(shell, "get_ipython") else None
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


def _source_type() -> str:
    override = os.environ.get("SPARKTRACK_SOURCE_TYPE")
    if override:
        return override.upper()
    if _in_notebook():
        return "NOTEBOOK"
    # spark-submit's PythonRunner hands the driver these to reach the JVM it started.
    if os.environ.get("PYSPARK_GATEWAY_PORT") and os.environ.get("PYSPARK_GATEWAY_SECRET"):
        return "JOB"
    return "LOCAL"


def _source_name() -> str:
    if _in_notebook():
        return os.environ.get("JPY_SESSION_NAME", "notebook")
    main = sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>"
    return os.path.abspath(main) if os.path.exists(main) else main


@functools.lru_cache(maxsize=16)
def _git(folder: str) -> tuple[str | None, str | None, str | None]:
    def ask(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() or None

    commit = ask("rev-parse", "HEAD")
    if commit is None:
        return None, None, None
    return commit, ask("rev-parse", "--abbrev-ref", "HEAD"), ask("remote", "get-url", "origin")


def source_info() -> SourceInfo:
    """The source of the current process: type, name and git state of its folder."""
    name = _source_name()
    folder = os.path.dirname(name) if os.path.isfile(name) else os.getcwd()
    commit, branch, repo_url = _git(folder)
    return {
        "source_type": _source_type(),
        "source_name": name,
        "git_commit": commit,
        "git_branch": branch,
        "git_repo_url": repo_url,
    }


def system_tags(user: str, source: SourceInfo) -> dict[str, str]:
    """MLflow's system tags for a new run."""
    tags = {
        _tags.USER: user,
        _tags.SOURCE_NAME: source["source_name"],
        _tags.SOURCE_TYPE: source["source_type"],
        _tags.GIT_COMMIT: source["git_commit"],
        _tags.GIT_BRANCH: source["git_branch"],
        _tags.GIT_REPO_URL: source["git_repo_url"],
    }
    return {key: value for key, value in tags.items() if value}
