"""What goes wrong with an object store leaves as a StoreError naming the URI and the cause:
wrong credentials, a missing bucket, the endpoint going away mid-commit. After an outage the
rows buffered in the process are committed by the next flush, once."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from sparktrack import TrackingClient
from sparktrack.errors import StoreError
from s3_server import s3, s3_store  # noqa: F401  (fixtures)


def _fast_failing(s3, **extra: str) -> dict[str, str]:
    # deltalake retries a refused connection itself (10 times, up to 3 minutes, by default).
    return s3.storage_options(max_retries="1", retry_timeout="3s", **extra)


def test_wrong_credentials(s3, s3_store):
    with s3.enforce_credentials() as good:
        client = TrackingClient(s3_store, storage_options=s3.storage_options(
            AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG0", AWS_SECRET_ACCESS_KEY="nope"))
        with pytest.raises(StoreError) as caught:
            client.create_experiment("refused")
        message = str(caught.value)
        assert message.startswith("access denied by the object store (InvalidAccessKeyId)")
        assert s3_store in message and "AWS_ACCESS_KEY_ID" in message
        assert "nope" not in message  # the secret is not repeated

        # The same store with the right key works.
        allowed = TrackingClient(s3_store + "-allowed", storage_options=s3.storage_options(**good))
        assert allowed.get_experiment(allowed.create_experiment("allowed")).name == "allowed"


def test_missing_bucket(s3):
    store = "s3://no-such-bucket-sparktrack/store"
    client = TrackingClient(store, storage_options=s3.storage_options())
    for action in (lambda: client.create_experiment("x"), client.search_experiments):
        with pytest.raises(StoreError) as caught:
            action()
        message = str(caught.value)
        assert message.startswith("missing bucket s3://no-such-bucket-sparktrack")
        assert store in message and "Create the bucket" in message


def test_artifact_errors_name_the_uri_and_cause(s3, s3_store, tmp_path):
    client = TrackingClient(s3_store, storage_options=_fast_failing(s3))
    run = client.create_run(client.create_experiment("artifacts-down"))
    note = tmp_path / "note.txt"
    note.write_text("hi")
    with s3.down():
        with pytest.raises(StoreError) as caught:
            client.log_artifact(run.info.run_id, note, "docs")
    message = str(caught.value)
    assert message.startswith(f"cannot reach the object store at {s3.url}")
    assert f"{run.info.artifact_uri}/docs/note.txt" in message
    client.log_artifact(run.info.run_id, note, "docs")  # back: the same call works
    assert [f.path for f in client.list_artifacts(run.info.run_id, "docs")] == ["docs/note.txt"]


def test_outage_mid_commit_then_retry_commits_once(s3, s3_store, monkeypatch):
    monkeypatch.setenv("SPARKTRACK_COMMIT_RETRIES", "1")
    monkeypatch.setenv("SPARKTRACK_FLUSH_INTERVAL_SECONDS", "3600")  # flushes are explicit
    client = TrackingClient(s3_store, storage_options=_fast_failing(s3))
    experiment_id = client.create_experiment("outage")
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    client.log_param(run_id, "before", "1")
    client.flush()

    with s3.down():
        client.log_param(run_id, "during", "2")
        for step in range(5):
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
        client.set_tag(run_id, "phase", "outage")
        with pytest.raises(StoreError) as caught:
            client.flush()
        message = str(caught.value)
        assert message.startswith(f"cannot reach the object store at {s3.url}")
        assert s3_store in message

    client.flush()  # the endpoint is back: the buffered rows are committed
    data = client.get_run(run_id).data
    assert data.params == {"before": "1", "during": "2"}
    assert data.tags["phase"] == "outage"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1, 2, 3, 4]
    assert data.metrics == {"loss": 0.2}

    # Nothing twice: each row is in its table once.
    store = client._store
    params = store.tables["params"].read()
    assert pc.sum(pc.equal(params["key"], "during")).as_py() == 1
    metrics = store.tables["metrics"].read()
    assert metrics.num_rows == 5
    tags = store.tables["tags"].read()
    assert pc.sum(pc.equal(tags["key"], "phase")).as_py() == 1


_EXIT_SCRIPT = """
import sys
from sparktrack import TrackingClient
client = TrackingClient(sys.argv[1], storage_options=dict(arg.split("=", 1) for arg in sys.argv[2:]))
run = client.create_run(client.create_experiment("exit"))
client.log_param(run.info.run_id, "p", "1")
client.flush()
print("committed", flush=True)
sys.stdin.readline()  # the test takes the endpoint down, then lets the process end
"""


def test_an_exit_with_everything_committed_is_not_reported_as_lost(s3, s3_store):
    """The exit hook re-checks the committed params; with the endpoint gone that check fails,
    but nothing was lost: a warning, and the script's own exit status."""
    import subprocess
    import sys
    import time

    from sparktrack._store.write_checks import RECHECK_SECONDS

    options = [f"{k}={v}" for k, v in _fast_failing(s3).items()]
    child = subprocess.Popen([sys.executable, "-c", _EXIT_SCRIPT, s3_store, *options],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "committed"
    with s3.down():
        time.sleep(RECHECK_SECONDS + 0.2)  # the param is due for its re-check at exit
        _, stderr = child.communicate("\n", timeout=180)
    assert child.returncode == 0, stderr
    assert "lost" not in stderr
    assert "sparktrack: warning: every logged row was committed" in stderr
