"""sparktrack.artifacts: MLflow's mlflow.artifacts functions (download, list, load_*)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import sparktrack
from sparktrack import TrackingClient, artifacts
from sparktrack.errors import (
    ArtifactNotFoundError,
    InvalidArtifactPathError,
    InvalidInputError,
    MissingRequirementError,
    RunNotFoundError,
)


@pytest.fixture()
def logged(tracking, tmp_path):
    """A finished run of the current store with text, JSON, YAML, binary and image files."""
    from PIL import Image

    image = tmp_path / "pixel.png"
    Image.new("RGB", (3, 2), (255, 0, 0)).save(image)
    with sparktrack.start_run() as run:
        sparktrack.log_text("héllo", "notes/readme.txt")
        sparktrack.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
        sparktrack.log_dict({"b": 1, "a": [1, 2]}, "config.yaml")
        sparktrack.log_text("not json", "broken.json")
        sparktrack.log_artifact(image, "images")
        TrackingClient(tracking).log_artifact(run.info.run_id, _binary(tmp_path), "bin")
    return run


def _binary(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(b"\xff\xfe\x00binary")
    return path


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_signatures_match_mlflow():
    """MLflow 3.17's parameters (registry_uri aside: the registry lives in the tracking store)."""
    assert list(inspect.signature(artifacts.download_artifacts).parameters) == [
        "artifact_uri", "run_id", "artifact_path", "dst_path", "tracking_uri"]
    assert list(inspect.signature(artifacts.list_artifacts).parameters) == [
        "artifact_uri", "run_id", "artifact_path", "tracking_uri"]
    for name in ("load_text", "load_dict", "load_image"):
        assert list(inspect.signature(getattr(artifacts, name)).parameters) == ["artifact_uri"]


def test_reachable_as_an_attribute_of_the_package(tmp_path):
    code = ("import sparktrack as mlflow; "
            "print(mlflow.artifacts.load_dict.__module__, mlflow.download_artifacts.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sparktrack.artifacts", "sparktrack._fluent"]


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def test_download_by_runs_uri_run_id_and_location(logged, tmp_path):
    run_id = logged.info.run_id
    one = artifacts.download_artifacts(f"runs:/{run_id}/notes/readme.txt", dst_path=tmp_path / "a")
    assert Path(one) == tmp_path / "a" / "readme.txt"
    assert Path(one).read_text(encoding="utf-8") == "héllo"
    folder = artifacts.download_artifacts(f"runs:/{run_id}/notes", dst_path=tmp_path / "b")
    assert _files(Path(folder)) == {"readme.txt"}
    everything = Path(artifacts.download_artifacts(f"runs:/{run_id}"))  # a new temp folder
    assert _files(everything) == {"notes/readme.txt", "config.json", "config.yaml",
                                  "broken.json", "images/pixel.png", "bin/data.bin"}
    by_id = artifacts.download_artifacts(run_id=run_id, artifact_path="config.json",
                                         dst_path=tmp_path / "c")
    assert Path(by_id).name == "config.json"
    # A location: the run's artifact URI plus a path, as a path or a file:// URI.
    location = f"{logged.info.artifact_uri}/notes/readme.txt"
    for index, uri in enumerate((location, f"file://{location}")):
        copied = artifacts.download_artifacts(uri, dst_path=tmp_path / f"loc{index}")
        assert Path(copied).read_text(encoding="utf-8") == "héllo"
    # The store's own file is never handed out.
    assert not artifacts.download_artifacts(location).startswith(logged.info.artifact_uri)


def test_tracking_uri_selects_another_store(logged, tmp_path):
    other = tmp_path / "other-store"
    client = TrackingClient(str(other))
    run_id = client.create_run("0", run_name="elsewhere").info.run_id
    client.log_text(run_id, "from the other store", "who.txt")
    with pytest.raises(RunNotFoundError):
        artifacts.load_text(f"runs:/{run_id}/who.txt")  # not in the current store
    copied = artifacts.download_artifacts(f"runs:/{run_id}/who.txt", dst_path=tmp_path / "o",
                                          tracking_uri=str(other))
    assert Path(copied).read_text() == "from the other store"
    listed = artifacts.list_artifacts(run_id=run_id, tracking_uri=str(other))
    assert [f.path for f in listed] == ["who.txt"]


def test_list_artifacts(logged):
    run_id = logged.info.run_id
    assert [f.path for f in artifacts.list_artifacts(f"runs:/{run_id}/images")] == [
        "images/pixel.png"]
    assert [f.path for f in artifacts.list_artifacts(run_id=run_id, artifact_path="notes")] == [
        "notes/readme.txt"]
    top = artifacts.list_artifacts(run_id=run_id)
    assert {f.path for f in top} == {"bin", "broken.json", "config.json", "config.yaml",
                                     "images", "notes"}
    assert [f.path for f in artifacts.list_artifacts(f"{logged.info.artifact_uri}/notes")] == [
        "notes/readme.txt"]


def test_load_text_dict_and_image(logged):
    base = f"runs:/{logged.info.run_id}"
    assert artifacts.load_text(f"{base}/notes/readme.txt") == "héllo"
    assert sparktrack.artifacts.load_dict(f"{base}/config.json") == {"lr": 0.1, "layers": [1, 2]}
    assert artifacts.load_dict(f"{base}/config.yaml") == {"b": 1, "a": [1, 2]}
    assert artifacts.load_dict(f"{logged.info.artifact_uri}/config.json")["lr"] == 0.1
    image = artifacts.load_image(f"{base}/images/pixel.png")
    assert image.size == (3, 2) and image.getpixel((0, 0)) == (255, 0, 0)


def test_load_errors_name_the_artifact(logged):
    base = f"runs:/{logged.info.run_id}"
    cases = [
        (lambda: artifacts.load_dict(f"{base}/broken.json"), InvalidInputError, "not valid JSON"),
        (lambda: artifacts.load_text(f"{base}/bin/data.bin"), InvalidInputError, "UTF-8"),
        (lambda: artifacts.load_text(f"{base}/notes"), InvalidInputError, "is a folder"),
        (lambda: artifacts.load_image(f"{base}/config.json"), InvalidInputError, "not an image"),
        (lambda: artifacts.load_text(f"{base}/missing.txt"), ArtifactNotFoundError,
         "missing.txt"),
        (lambda: artifacts.load_text(f"{base}/../escape.txt"), InvalidArtifactPathError,
         "escape"),
    ]
    for call, kind, words in cases:
        with pytest.raises(kind, match=words):
            call()


def test_argument_errors():
    bad = [
        (lambda: artifacts.download_artifacts(), "exactly one of artifact_uri"),
        (lambda: artifacts.download_artifacts("runs:/abc/x", run_id="abc"), "exactly one"),
        (lambda: artifacts.download_artifacts("runs:/abc", artifact_path="x"), "artifact_path"),
        (lambda: artifacts.list_artifacts(), "exactly one"),
        (lambda: artifacts.load_text("runs:/"), "no run id"),
        (lambda: artifacts.load_text("runs://"), "no run id"),
        (lambda: artifacts.load_text("models:/"), "models:/"),
        (lambda: artifacts.load_text(""), "non-empty string"),
        (lambda: artifacts.load_text(42), "non-empty string"),
    ]
    for call, words in bad:
        with pytest.raises(InvalidInputError, match=f"(?i){words}"):
            call()


def test_load_image_without_pillow_says_how_to_install(logged, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # what an environment without Pillow has
    with pytest.raises(MissingRequirementError, match="pip install Pillow"):
        artifacts.load_image(f"runs:/{logged.info.run_id}/images/pixel.png")


def test_models_uris_download_and_list_the_registered_version_folder(logged):
    client = TrackingClient()
    client.register_model(f"runs:/{logged.info.run_id}/notes", "notes-model")
    client.set_registered_model_alias("notes-model", "champion", 1)
    for uri in ("models:/notes-model/1", "models:/notes-model@champion",
                "models:/notes-model/latest"):
        folder = Path(artifacts.download_artifacts(uri))
        assert (folder / "readme.txt").read_text(encoding="utf-8") == "héllo"
        assert [f.path for f in artifacts.list_artifacts(uri)] == ["readme.txt"]
        assert artifacts.load_text(f"{uri}/readme.txt") == "héllo"
    with pytest.raises(sparktrack.errors.NotFoundError, match="no-such-model"):
        artifacts.download_artifacts("models:/no-such-model/1")
    with pytest.raises(InvalidInputError, match="alias"):
        artifacts.list_artifacts("models:/notes-model@missing")
