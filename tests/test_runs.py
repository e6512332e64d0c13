"""The run lifecycle through the fluent API: start/end, nesting, resuming, threads, system tags."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

import sparktrack
from sparktrack import RunStatus, TrackingClient
from sparktrack.errors import (
    InvalidInputError,
    InvalidStateError,
    LimitExceededError,
    RunNotFoundError,
)
from sparktrack._store import open_store


def test_start_run_as_context_manager_finishes_the_run(tracking):
    with sparktrack.start_run(run_name="ok") as run:
        assert sparktrack.active_run().info.run_id == run.info.run_id
        assert run.info.status == "RUNNING"
        assert run.info.end_time is None
    assert sparktrack.active_run() is None
    info = sparktrack.get_run(run.info.run_id).info
    assert info.status == RunStatus.FINISHED
    assert info.start_time <= info.end_time
    assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)


def test_exception_inside_the_block_fails_the_run_and_propagates(tracking):
    with pytest.raises(ZeroDivisionError):
        with sparktrack.start_run() as run:
            1 / 0  # noqa: B018
    assert sparktrack.get_run(run.info.run_id).info.status == "FAILED"
    assert sparktrack.active_run() is None


def test_keyboard_interrupt_kills_the_run_and_propagates(tracking):
    with pytest.raises(KeyboardInterrupt):
        with sparktrack.start_run() as run:
            raise KeyboardInterrupt
    assert sparktrack.get_run(run.info.run_id).info.status == "KILLED"


def test_end_run_with_a_status(tracking):
    run = sparktrack.start_run()
    sparktrack.end_run(status="KILLED")
    assert sparktrack.active_run() is None
    info = sparktrack.get_run(run.info.run_id).info
    assert (info.status, info.end_time is not None) == ("KILLED", True)
    sparktrack.end_run()  # nothing active: a no-op, as in MLflow


def test_end_run_with_an_invalid_status_keeps_the_run_active(tracking):
    run = sparktrack.start_run()
    with pytest.raises(InvalidInputError, match="'RUNNING'"):
        sparktrack.end_run(status="RUNNING")
    assert sparktrack.active_run().info.run_id == run.info.run_id
    assert sparktrack.get_run(run.info.run_id).info.status == "RUNNING"
    sparktrack.end_run()
    assert sparktrack.get_run(run.info.run_id).info.status == "FINISHED"


def test_ending_the_run_inside_its_block_is_kept(tracking):
    with sparktrack.start_run() as run:
        sparktrack.end_run(status="FAILED")
    assert sparktrack.get_run(run.info.run_id).info.status == "FAILED"


def test_active_run_and_last_active_run(tracking):
    assert sparktrack.active_run() is None
    with sparktrack.start_run() as run:
        sparktrack.log_param("p", "1")
        assert sparktrack.last_active_run().info.run_id == run.info.run_id
    last = sparktrack.last_active_run()
    assert last.info.run_id == run.info.run_id
    assert last.info.status == "FINISHED"
    assert last.data.params == {"p": "1"}


def test_last_active_run_is_none_in_a_thread_that_ran_nothing(tracking):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(sparktrack.last_active_run()))
    thread.start()
    thread.join()
    assert seen == [None]


def test_get_run_returns_info_params_latest_metrics_and_tags(tracking):
    experiment = sparktrack.set_experiment("contents")
    with sparktrack.start_run(run_name="full", tags={"team": "ml"}) as run:
        sparktrack.log_params({"lr": 0.1, "depth": 3})
        sparktrack.log_metric("loss", 0.9, step=0)
        sparktrack.log_metric("loss", 0.5, step=1)
        sparktrack.log_metric("acc", 0.7)
        sparktrack.set_tag("stage", "dev")
    result = sparktrack.get_run(run.info.run_id)
    info = result.info
    assert (info.run_name, info.experiment_id, info.status) == (
        "full", experiment.experiment_id, "FINISHED"
    )
    assert info.user_id == getpass.getuser()
    assert info.lifecycle_stage == "active"
    assert info.artifact_uri.endswith(f"/artifacts/{experiment.experiment_id}/{info.run_id}")
    assert info.run_uuid == info.run_id
    assert result.data.params == {"lr": "0.1", "depth": "3"}
    assert result.data.metrics == {"loss": 0.5, "acc": 0.7}
    tags = result.data.tags
    assert tags["team"] == "ml" and tags["stage"] == "dev"
    assert tags["mlflow.runName"] == "full"
    # the same through ActiveRun.data
    assert run.data.metrics == {"loss": 0.5, "acc": 0.7}


def test_get_run_of_unknown_or_malformed_id(tracking):
    with pytest.raises(RunNotFoundError, match="0" * 32):
        sparktrack.get_run("0" * 32)
    with pytest.raises(InvalidInputError, match="Invalid run id"):
        sparktrack.get_run("../../etc")


def test_runs_get_random_readable_names(tracking):
    names = []
    for _ in range(10):
        with sparktrack.start_run() as run:
            pass
        names.append(sparktrack.get_run(run.info.run_id).info.run_name)
    assert all(re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", name) for name in names), names
    assert len(set(names)) > 1
    assert sparktrack.get_run(run.info.run_id).data.tags["mlflow.runName"] == names[-1]


def test_run_name_from_the_run_name_tag(tracking):
    with sparktrack.start_run(tags={"mlflow.runName": "tagged-name"}) as run:
        pass
    assert sparktrack.get_run(run.info.run_id).info.run_name == "tagged-name"


def test_run_name_length_limit(tracking):
    with sparktrack.start_run(run_name="n" * 250):
        pass
    with pytest.raises(LimitExceededError, match="250"):
        sparktrack.start_run(run_name="n" * 251)
    assert sparktrack.active_run() is None


def test_nested_runs_record_their_parent(tracking):
    with sparktrack.start_run() as parent:
        with sparktrack.start_run(nested=True) as child:
            with sparktrack.start_run(nested=True) as grandchild:
                assert sparktrack.active_run().info.run_id == grandchild.info.run_id
            assert sparktrack.active_run().info.run_id == child.info.run_id
        assert sparktrack.active_run().info.run_id == parent.info.run_id
    child_run = sparktrack.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child_run.info.parent_run_id == parent.info.run_id
    grandchild_run = sparktrack.get_run(grandchild.info.run_id)
    assert grandchild_run.data.tags["mlflow.parentRunId"] == child.info.run_id
    assert "mlflow.parentRunId" not in sparktrack.get_run(parent.info.run_id).data.tags
    assert {sparktrack.get_run(r.info.run_id).info.status for r in (parent, child)} == {
        "FINISHED"
    }


def test_ending_a_parent_ends_its_open_children(tracking):
    parent = sparktrack.start_run()
    child = sparktrack.start_run(nested=True)
    parent.__exit__(None, None, None)
    assert sparktrack.active_run() is None
    assert sparktrack.get_run(child.info.run_id).info.status == "FINISHED"
    assert sparktrack.get_run(parent.info.run_id).info.status == "FINISHED"


def test_start_run_while_active_without_nested_is_mlflows_error(tracking):
    with sparktrack.start_run() as run:
        with pytest.raises(InvalidStateError) as caught:
            sparktrack.start_run()
        message = str(caught.value)
        assert f"Run with UUID {run.info.run_id} is already active." in message
        assert "end_run()" in message and "nested=True" in message
        assert sparktrack.active_run().info.run_id == run.info.run_id
    runs = open_store(tracking).list_run_infos(None)
    assert [r.run_id for r in runs] == [run.info.run_id]  # the refused run was not created


def test_resume_a_run_by_id(tracking):
    with sparktrack.start_run(run_name="first") as run:
        sparktrack.log_param("p", "1")
        sparktrack.log_metric("m", 1.0, step=0)
    with sparktrack.start_run(run_id=run.info.run_id) as resumed:
        assert resumed.info.run_id == run.info.run_id
        assert sparktrack.get_run(run.info.run_id).info.status == "RUNNING"
        sparktrack.log_metric("m", 2.0, step=1)
        sparktrack.log_param("p", "1")  # same value: still allowed
    result = sparktrack.get_run(run.info.run_id)
    assert result.info.status == "FINISHED"
    assert result.info.run_name == "first"
    assert result.data.metrics == {"m": 2.0}
    assert [m.value for m in sparktrack.get_metric_history("m", run_id=run.info.run_id)] == [
        1.0, 2.0,
    ]


def test_resume_checks_the_run(tracking):
    with pytest.raises(RunNotFoundError):
        sparktrack.start_run(run_id="a" * 32)
    with sparktrack.start_run() as run:
        pass
    other = sparktrack.create_experiment("other")
    with pytest.raises(InvalidInputError, match=run.info.experiment_id):
        sparktrack.start_run(run_id=run.info.run_id, experiment_id=other)
    sparktrack.delete_run(run.info.run_id)
    with pytest.raises(InvalidStateError, match="restore_run"):
        sparktrack.start_run(run_id=run.info.run_id)
    assert sparktrack.active_run() is None


def test_description_becomes_the_note_tag(tracking):
    with sparktrack.start_run(description="tuned **with** CV") as run:
        pass
    assert sparktrack.get_run(run.info.run_id).data.tags["mlflow.note.content"] == (
        "tuned **with** CV"
    )


def test_delete_and_restore_run(tracking):
    with sparktrack.start_run() as run:
        pass
    sparktrack.delete_run(run.info.run_id)
    info = sparktrack.get_run(run.info.run_id).info
    assert info.lifecycle_stage == "deleted" and info.deleted_time is not None
    client = TrackingClient(tracking)
    with pytest.raises(InvalidStateError, match="restore_run"):
        client.log_metric(run.info.run_id, "m", 1.0)
    sparktrack.restore_run(run.info.run_id)
    info = sparktrack.get_run(run.info.run_id).info
    assert info.lifecycle_stage == "active" and info.deleted_time is None
    client.log_metric(run.info.run_id, "m", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}


def test_active_runs_are_per_thread(tracking):
    barrier = threading.Barrier(2)
    results: dict[str, tuple] = {}
    errors = []

    def train(name: str) -> None:
        try:
            with sparktrack.start_run(run_name=name) as run:
                barrier.wait(timeout=10)  # both runs are active at the same time
                for step in range(20):
                    sparktrack.log_metric("loss", step, step=step)
                sparktrack.log_param("worker", name)
                results[name] = (run.info.run_id, sparktrack.active_run().info.run_id)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sparktrack.active_run() is None
    (run_a, active_a), (run_b, active_b) = results["a"], results["b"]
    assert run_a != run_b and active_a == run_a and active_b == run_b
    for name, run_id in (("a", run_a), ("b", run_b)):
        run = sparktrack.get_run(run_id)
        assert run.data.params == {"worker": name}
        assert run.info.status == "FINISHED"
        assert len(sparktrack.get_metric_history("loss", run_id=run_id)) == 20
        assert "mlflow.parentRunId" not in run.data.tags


def test_system_tags_name_user_and_source(tracking):
    with sparktrack.start_run() as run:
        pass
    result = sparktrack.get_run(run.info.run_id)
    tags = result.data.tags
    assert tags["mlflow.user"] == getpass.getuser() == result.info.user_id
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == os.path.abspath(sys.argv[0])


def test_user_tag_overrides_the_recorded_user(tracking):
    with sparktrack.start_run(tags={"mlflow.user": "svc-train"}) as run:
        pass
    result = sparktrack.get_run(run.info.run_id)
    assert (result.info.user_id, result.data.tags["mlflow.user"]) == ("svc-train", "svc-train")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_git_commit_and_branch_are_recorded_inside_a_checkout(tmp_path, store_uri):
    repo = tmp_path / "repo"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text(textwrap.dedent(
        """
        import sparktrack
        with sparktrack.start_run() as run:
            sparktrack.log_metric("m", 1.0)
        print(run.info.run_id)
        """
    ))

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo, check=True, capture_output=True, text=True,
        ).stdout.strip()

    git("init", "-q", "-b", "feature-x")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    git("remote", "add", "origin", "https://example.com/team/repo.git")
    commit = git("rev-parse", "HEAD")

    env = {**os.environ, "SPARKTRACK_TRACKING_URI": store_uri}
    out = subprocess.run(
        [sys.executable, str(script)], cwd=repo, env=env, check=True, capture_output=True,
        text=True, timeout=60,
    )
    run = TrackingClient(store_uri).get_run(out.stdout.strip())
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["mlflow.source.git.branch"] == "feature-x"
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/team/repo.git"
    assert tags["mlflow.source.name"] == str(script)
    assert tags["mlflow.source.type"] == "LOCAL"
    row = open_store(store_uri).run_rows(None).to_pylist()[0]
    assert (row["git_commit"], row["git_branch"]) == (commit, "feature-x")


@pytest.mark.slow
def test_no_git_tags_outside_a_checkout(tmp_path, store_uri):
    script = tmp_path / "train.py"
    script.write_text(
        "import sparktrack\n"
        "with sparktrack.start_run() as run:\n"
        "    pass\n"
        "print(run.info.run_id)\n"
    )
    env = {
        **os.environ, "SPARKTRACK_TRACKING_URI": store_uri, "GIT_CEILING_DIRECTORIES": str(tmp_path)
    }
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, check=True, capture_output=True,
        text=True, timeout=60,
    )
    tags = TrackingClient(store_uri).get_run(out.stdout.strip()).data.tags
    assert not [key for key in tags if key.startswith("mlflow.source.git")]
    assert tags["mlflow.source.name"] == str(script)


def test_client_runs_need_no_active_run(store_uri):
    client = TrackingClient(store_uri)
    experiment_id = client.create_experiment("client-only")
    run = client.create_run(experiment_id, run_name="explicit", tags={"k": 1})
    assert run.info.status == "RUNNING"
    assert sparktrack.active_run() is None
    client.log_param(run.info.run_id, "a", 1)
    client.set_terminated(run.info.run_id, status="FAILED")
    result = client.get_run(run.info.run_id)
    assert (result.info.status, result.info.run_name) == ("FAILED", "explicit")
    assert result.data.params == {"a": "1"} and result.data.tags["k"] == "1"
    with pytest.raises(InvalidInputError, match="'DONE'"):
        client.set_terminated(run.info.run_id, status="DONE")
    with pytest.raises(RunNotFoundError):
        client.create_run(experiment_id, parent_run_id="f" * 32)


def test_nested_without_an_active_run_starts_a_top_level_run(tracking):
    with sparktrack.start_run(nested=True) as run:
        pass
    result = sparktrack.get_run(run.info.run_id)
    assert result.info.parent_run_id is None
    assert "mlflow.parentRunId" not in result.data.tags


def test_resuming_with_a_run_name_renames_the_run(tracking):
    with sparktrack.start_run(run_name="before") as run:
        pass
    with sparktrack.start_run(run_id=run.info.run_id, run_name="after"):
        pass
    result = sparktrack.get_run(run.info.run_id)
    assert (result.info.run_name, result.data.tags["mlflow.runName"]) == ("after", "after")
