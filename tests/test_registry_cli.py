"""`sparktrack models ...`: the registry from a shell."""

from __future__ import annotations

import pytest

from sparktrack import TrackingClient
from sparktrack.cli import main


@pytest.fixture()
def cli(store_uri, capsys):
    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--store", store_uri, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_register_alias_transition_list_versions_history_delete(cli, store_uri):
    run = TrackingClient(store_uri).create_run("0")
    code, out, _ = cli("models", "register", f"runs:/{run.info.run_id}/model", "churn",
                       "--tag", "team=ml", "--description", "first")
    assert (code, out.strip()) == (0, "Registered churn version 1.")
    assert cli("models", "register", "/elsewhere", "churn")[1].strip() == \
        "Registered churn version 2."
    assert cli("models", "alias", "churn", "champion", "1")[1].strip() == \
        "churn@champion -> version 1."
    code, out, _ = cli("models", "transition", "churn", "2", "production", "--archive-existing")
    assert (code, out.strip()) == (0, "churn version 2 is now in stage Production.")
    code, out, _ = cli("models", "list")
    assert code == 0 and "churn" in out and "champion=v1" in out and "(1 model)" in out
    code, out, _ = cli("models", "versions", "churn", "--filter", "alias = 'champion'")
    assert code == 0 and "(1 version)" in out and "champion" in out
    code, out, _ = cli("models", "versions")
    lines = out.splitlines()
    assert "Production" in lines[1] and lines[1].split()[1] == "2" and "(2 versions)" in out
    assert cli("models", "alias", "churn", "champion", "--delete")[0] == 0
    assert cli("models", "delete", "churn", "1")[1].strip() == "churn version 1 deleted."
    code, out, _ = cli("models", "history", "churn")
    events = [line.split()[3] for line in out.splitlines()[1:-1]]
    assert events[0] == "CREATE_REGISTERED_MODEL"
    assert {"CREATE_MODEL_VERSION", "UPDATE_MODEL_VERSION", "SET_ALIAS", "TRANSITION_STAGE",
            "DELETE_ALIAS", "DELETE_MODEL_VERSION"} <= set(events)
    assert "stage=Production" in out
    assert cli("models", "delete", "churn")[1].strip() == \
        "Registered model churn and its versions deleted."
    assert "(0 models)" in cli("models", "list")[1]


def test_history_since_a_time_and_of_a_renamed_model(cli, store_uri):
    client = TrackingClient(store_uri)
    client.create_registered_model("old")
    client.rename_registered_model("old", "new")
    code, out, _ = cli("models", "history", "new")
    assert "CREATE_REGISTERED_MODEL" in out and "RENAME_REGISTERED_MODEL" in out
    code, out, _ = cli("models", "history", "--since", "2999-01-01")
    assert (code, out.splitlines()[-1]) == (0, "(0 events)")


@pytest.mark.parametrize(("args", "code", "message"), [
    (("models", "transition", "nope", "1", "Production"), 1, "Registered Model with name=nope"),
    (("models", "alias", "m", "latest", "1"), 1, "reserved"),
    (("models", "transition", "m", "1", "Live"), 1, "Invalid Model Version stage"),
    (("models", "register", "/x", "a/b"), 1, "cannot contain '/'"),
    (("models", "alias", "m", "champion"), 2, "needs NAME ALIAS VERSION"),
    (("models", "versions", "--filter", "metrics.x > 1"), 1, "unknown prefix"),
    (("models", "frobnicate"), 2, "invalid choice"),
])
def test_errors_are_one_line_with_a_status(cli, store_uri, args, code, message):
    client = TrackingClient(store_uri)
    client.create_registered_model("m")
    client.create_model_version("m", "/m")
    got, out, err = cli(*args)
    assert got == code
    assert message in err and len(err.strip().splitlines()) == 1
