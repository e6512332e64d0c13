"""``sparktrack:`` URIs to store roots, and the plugin's entry points (no server here)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from sparktrack.errors import InvalidInputError
from sparktrack.mlflow_plugin import artifact_uri_for_mlflow, store_root_from_uri


@pytest.mark.parametrize("uri, root", [
    ("sparktrack:///data/store", "/data/store"),
    ("sparktrack:/data/store/", "/data/store"),
    ("sparktrack:///data/with%20space", "/data/with space"),
    ("SparkTrack:///data/store", "/data/store"),
    ("sparktrack+s3://bucket/prefix/store", "s3://bucket/prefix/store"),
    ("sparktrack+s3://bucket", "s3://bucket"),
    ("sparktrack+gs://bucket/p/", "gs://bucket/p"),
])
def test_store_roots(uri, root):
    assert store_root_from_uri(uri) == root


def test_relative_uris_resolve_against_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store_root_from_uri("sparktrack:./store") == str(tmp_path / "store")
    assert store_root_from_uri("sparktrack:store/sub") == str(tmp_path / "store" / "sub")


@pytest.mark.parametrize("uri, words", [
    ("sparktrack://data/store", "three slashes"),
    ("file:///data/store", "scheme"),
    ("/data/store", "scheme"),
    ("sparktrack:", "empty"),
    ("sparktrack:///a?x=1", "query"),
    ("sparktrack+s3:///prefix", "bucket"),
])
def test_bad_uris_say_how_to_write_them(uri, words):
    with pytest.raises(InvalidInputError) as caught:
        store_root_from_uri(uri)
    assert words in str(caught.value) and "sparktrack:///abs/path" in str(caught.value)


def test_artifact_uris_are_file_uris_for_local_folders():
    assert artifact_uri_for_mlflow("/a/b c") == "file:///a/b%20c"
    assert artifact_uri_for_mlflow("s3://bucket/a") == "s3://bucket/a"


def test_pyproject_entry_points_resolve():
    from mlflow_server import pyproject_entry_points

    points = pyproject_entry_points()
    assert set(points["mlflow.tracking_store"]) == {"sparktrack", "sparktrack+s3"}
    assert set(points["mlflow.model_registry_store"]) == {"sparktrack", "sparktrack+s3"}
    pytest.importorskip("mlflow")
    for group in points.values():
        for value in group.values():
            module, _, name = value.partition(":")
            assert callable(getattr(importlib.import_module(module), name)), value


@pytest.mark.slow
def test_mlflow_finds_both_stores_by_scheme(tmp_path):
    """In a fresh process, MLflow's own entry-point discovery builds both stores from the URI."""
    pytest.importorskip("mlflow")
    from mlflow_server import entry_point_folder, plugin_env

    code = textwrap.dedent(f"""
        import mlflow
        from mlflow.tracking._model_registry.utils import _get_store as registry_store
        from mlflow.tracking._tracking_service.utils import _get_store as tracking_store
        uri = "sparktrack://{tmp_path / 'store'}"
        print(type(tracking_store(uri)).__name__, type(registry_store(uri)).__name__)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=plugin_env(entry_point_folder(tmp_path / "ep")),
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[:2] == ["SparkTrackStore", "SparkTrackRegistryStore"]


def test_the_package_imports_without_mlflow(tmp_path):
    """``import sparktrack.mlflow_plugin`` and its URI helpers need no mlflow; the stores say
    how to install it."""
    blocker = tmp_path / "mlflow.py"
    blocker.write_text("raise ModuleNotFoundError(\"No module named 'mlflow'\", name='mlflow')\n")
    code = textwrap.dedent("""
        import sparktrack.mlflow_plugin as plugin
        print(plugin.store_root_from_uri("sparktrack:///x"))
        try:
            plugin.SparkTrackStore
        except Exception as error:
            print(type(error).__name__, "pip install sparktrack[mlflow]" in str(error))
    """)
    from mlflow_server import REPO

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.stdout.split() == ["/x", "MissingRequirementError", "True"], done.stderr
