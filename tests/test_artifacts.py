"""Artifacts: files under <store>/artifacts/<experiment_id>/<run_id>/, never outside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import sparktrack
from sparktrack import FileInfo, TrackingClient
from sparktrack.errors import ArtifactNotFoundError, InvalidArtifactPathError

ESCAPING = ["../x", "/abs", "a/../../b", "..", "./../x", "C:/x", "a\\..\\..\\b"]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def run(tracking):
    with sparktrack.start_run() as active:
        yield active


def _run_folder(run) -> Path:
    return Path(run.info.artifact_uri)


def test_artifacts_live_in_the_runs_folder_of_the_store(tracking, run):
    expected = Path(tracking).resolve() / "artifacts" / run.info.experiment_id / run.info.run_id
    assert _run_folder(run) == expected
    assert sparktrack.get_artifact_uri() == str(expected)
    assert sparktrack.get_artifact_uri("plots/a.png") == f"{expected}/plots/a.png"


def test_log_artifact_copies_a_file(run, tmp_path):
    source = tmp_path / "model.txt"
    source.write_bytes(b"weights\x00\x01")
    sparktrack.log_artifact(source)
    sparktrack.log_artifact(str(source), artifact_path="models/v1")
    folder = _run_folder(run)
    assert (folder / "model.txt").read_bytes() == b"weights\x00\x01"
    assert (folder / "models" / "v1" / "model.txt").read_bytes() == b"weights\x00\x01"
    assert sparktrack.list_artifacts() == [
        FileInfo("model.txt", False, 9), FileInfo("models", True, None),
    ]
    assert sparktrack.list_artifacts("models/v1") == [FileInfo("models/v1/model.txt", False, 9)]


def test_log_artifact_of_a_missing_file(run, tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="nothing.txt"):
        sparktrack.log_artifact(tmp_path / "nothing.txt")


def test_log_artifacts_copies_a_folder_tree(run, tmp_path):
    source = tmp_path / "out"
    (source / "sub" / "deeper").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "sub" / "b.txt").write_text("bb")
    (source / "sub" / "deeper" / "c.txt").write_text("ccc")
    sparktrack.log_artifacts(source)
    sparktrack.log_artifacts(source, artifact_path="copy")
    folder = _run_folder(run)
    tree = {"a.txt", "sub/b.txt", "sub/deeper/c.txt"}
    assert _files(folder) == tree | {f"copy/{name}" for name in tree}
    assert (folder / "copy" / "sub" / "deeper" / "c.txt").read_text() == "ccc"
    assert [f.path for f in sparktrack.list_artifacts("sub")] == ["sub/b.txt", "sub/deeper"]
    with pytest.raises(ArtifactNotFoundError):
        sparktrack.log_artifacts(tmp_path / "no-such-folder")


def test_log_text_and_log_dict(run):
    sparktrack.log_text("héllo\nworld", "notes/readme.md")
    sparktrack.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
    sparktrack.log_dict({"b": 1, "a": [1, 2]}, "config.yaml")
    folder = _run_folder(run)
    assert (folder / "notes" / "readme.md").read_text(encoding="utf-8") == "héllo\nworld"
    assert json.loads((folder / "config.json").read_text()) == {"lr": 0.1, "layers": [1, 2]}
    import yaml

    assert yaml.safe_load((folder / "config.yaml").read_text()) == {"b": 1, "a": [1, 2]}
    # Logging the same file again replaces it.
    sparktrack.log_text("v2", "notes/readme.md")
    assert (folder / "notes" / "readme.md").read_text() == "v2"
    assert _files(folder) == {"notes/readme.md", "config.json", "config.yaml"}


def test_log_figure(run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.plot([0, 1, 2], [2, 1, 0])
    try:
        sparktrack.log_figure(figure, "plots/loss.png")
        sparktrack.log_figure(figure, "plots/loss.svg")
    finally:
        plt.close(figure)
    folder = _run_folder(run)
    assert (folder / "plots" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (folder / "plots" / "loss.svg").read_bytes()


def test_download_artifacts(tracking, run, tmp_path):
    sparktrack.log_text("1", "a.txt")
    sparktrack.log_text("2", "dir/b.txt")
    sparktrack.log_text("3", "dir/sub/c.txt")
    run_id = run.info.run_id

    one = sparktrack.download_artifacts(run_id=run_id, artifact_path="a.txt",
                                        dst_path=tmp_path / "d1")
    assert Path(one) == tmp_path / "d1" / "a.txt" and Path(one).read_text() == "1"

    folder = Path(sparktrack.download_artifacts(run_id=run_id, artifact_path="dir",
                                                dst_path=tmp_path / "d2"))
    assert folder == tmp_path / "d2" / "dir"
    assert _files(folder) == {"b.txt", "sub/c.txt"}

    everything = Path(TrackingClient(tracking).download_artifacts(run_id))  # a new temp folder
    assert _files(everything) == {"a.txt", "dir/b.txt", "dir/sub/c.txt"}

    with pytest.raises(ArtifactNotFoundError, match="missing.txt"):
        sparktrack.download_artifacts(run_id=run_id, artifact_path="missing.txt",
                                      dst_path=tmp_path / "d3")


def test_list_artifacts_of_an_empty_run_and_missing_path(run):
    assert sparktrack.list_artifacts() == []
    assert sparktrack.list_artifacts("nothing/here") == []


def test_artifacts_of_another_run_by_id(tracking, tmp_path):
    with sparktrack.start_run() as first:
        sparktrack.log_text("first", "who.txt")
    with sparktrack.start_run():
        sparktrack.log_text("second", "who.txt")
        assert [f.path for f in sparktrack.list_artifacts(run_id=first.info.run_id)] == ["who.txt"]
        path = sparktrack.download_artifacts(run_id=first.info.run_id, artifact_path="who.txt",
                                             dst_path=tmp_path)
    assert Path(path).read_text() == "first"


@pytest.mark.parametrize("path", ESCAPING)
def test_paths_that_escape_the_run_folder_are_rejected(tracking, tmp_path, path):
    source_dir = tmp_path / "src"
    source_dir.mkdir()
    source = source_dir / "f.txt"
    source.write_text("x")
    before = _files(tmp_path)
    figure = _tiny_figure()
    with sparktrack.start_run():
        attempts = {
            "log_text": lambda: sparktrack.log_text("x", path),
            "log_dict": lambda: sparktrack.log_dict({"a": 1}, path),
            "log_figure": lambda: sparktrack.log_figure(figure, path),
            "log_artifact": lambda: sparktrack.log_artifact(source, artifact_path=path),
            "log_artifacts": lambda: sparktrack.log_artifacts(source_dir, artifact_path=path),
            "list_artifacts": lambda: sparktrack.list_artifacts(path),
            "download_artifacts": lambda: sparktrack.download_artifacts(
                artifact_path=path, dst_path=tmp_path / "dst"
            ),
            "get_artifact_uri": lambda: sparktrack.get_artifact_uri(path),
        }
        let_through = []
        for name, attempt in attempts.items():
            try:
                attempt()
            except InvalidArtifactPathError as error:
                assert repr(path) in str(error), name
            else:
                let_through.append(name)
    _close(figure)
    assert let_through == []
    # Nothing was written anywhere: no artifact file in the store, nothing next to it.
    after = _files(tmp_path)
    assert {f for f in after - before if "/artifacts/" in f or not f.startswith("store/")} == set()
    assert not (tmp_path / "abs").exists() and not Path("/abs").exists()


def test_artifact_file_name_is_required(run):
    with pytest.raises(InvalidArtifactPathError, match="file name is required"):
        sparktrack.log_text("x", "")
    with pytest.raises(InvalidArtifactPathError):
        sparktrack.log_text("x", ".")


def test_a_dotted_but_contained_path_is_normalised(run):
    sparktrack.log_text("x", "a/./b/../c.txt")
    assert _files(_run_folder(run)) == {"a/c.txt"}


def _tiny_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, _ = plt.subplots(figsize=(1, 1))
    return figure


def _close(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_artifact_folder_is_under_a_custom_experiment_location(tracking, tmp_path):
    location = tmp_path / "elsewhere"
    experiment_id = sparktrack.create_experiment("custom", artifact_location=str(location))
    with sparktrack.start_run(experiment_id=experiment_id) as active:
        sparktrack.log_text("x", "f.txt")
    assert (location / active.info.run_id / "f.txt").read_text() == "x"
    assert os.listdir(location) == [active.info.run_id]
