"""Every registry change is a row of the append-only registry_events table (who, when, what),
so that "which version was Production at time T" is a query."""

from __future__ import annotations

import time

import pytest

from sparktrack import TrackingClient
from sparktrack.errors import InvalidInputError


@pytest.fixture()
def client(store_uri):
    return TrackingClient(store_uri)


def _events(client) -> list[dict]:
    rows = client._registry.tables.events.read().to_pylist()
    return sorted(rows, key=lambda r: (r["timestamp"], r["event_id"]))


def test_every_change_appends_an_event_with_who_and_when(client):
    start = int(time.time() * 1000)
    client.create_registered_model("churn", description="d")
    client.create_model_version("churn", "/m/1")
    client.create_model_version("churn", "/m/2")
    client.set_registered_model_tag("churn", "team", "ml")
    client.delete_registered_model_tag("churn", "team")
    client.set_model_version_tag("churn", 1, "k", "v")
    client.delete_model_version_tag("churn", 1, "k")
    client.update_registered_model("churn", "new")
    client.update_model_version("churn", 1, "first")
    client.transition_model_version_stage("churn", 1, "Production")
    client.transition_model_version_stage("churn", 2, "Production", True)
    client.set_registered_model_alias("churn", "champion", 1)
    client.set_registered_model_alias("churn", "champion", 2)
    client.delete_registered_model_alias("churn", "champion")
    client.set_registered_model_alias("churn", "old", 1)
    client.delete_model_version("churn", 1)
    client.rename_registered_model("churn", "churn2")
    client.delete_registered_model("churn2")
    events = _events(client)
    kinds = [e["event"] for e in events]
    assert kinds == [
        "CREATE_REGISTERED_MODEL", "CREATE_MODEL_VERSION", "CREATE_MODEL_VERSION",
        "SET_REGISTERED_MODEL_TAG", "DELETE_REGISTERED_MODEL_TAG", "SET_MODEL_VERSION_TAG",
        "DELETE_MODEL_VERSION_TAG", "UPDATE_REGISTERED_MODEL", "UPDATE_MODEL_VERSION",
        "TRANSITION_STAGE", "TRANSITION_STAGE", "TRANSITION_STAGE", "SET_ALIAS", "MOVE_ALIAS",
        "DELETE_ALIAS", "SET_ALIAS", "DELETE_ALIAS", "DELETE_MODEL_VERSION",
        "RENAME_REGISTERED_MODEL", "DELETE_REGISTERED_MODEL",
    ]
    assert all(e["user_id"] and e["timestamp"] >= start for e in events)
    assert len({e["model_id"] for e in events}) == 1
    transitions = [(e["version"], e["previous_stage"], e["stage"])
                   for e in events if e["event"] == "TRANSITION_STAGE"]
    # The archived version 1 is a transition of its own.
    assert sorted(transitions) == [(1, "None", "Production"), (1, "Production", "Archived"),
                                   (2, "None", "Production")]
    move = next(e for e in events if e["event"] == "MOVE_ALIAS")
    assert (move["alias"], move["previous_version"], move["version"]) == ("champion", 1, 2)
    rename = next(e for e in events if e["event"] == "RENAME_REGISTERED_MODEL")
    assert (rename["name"], rename["value"]) == ("churn", "churn2")


def test_a_refused_change_records_no_event(client):
    client.create_registered_model("churn")
    client.create_model_version("churn", "/m")
    before = len(_events(client))
    with pytest.raises(InvalidInputError):
        client.set_registered_model_alias("churn", "latest", 1)
    with pytest.raises(InvalidInputError):
        client.transition_model_version_stage("churn", 1, "Live")
    assert len(_events(client)) == before


def _production_at(events: list[dict], name: str, when: int) -> list[int]:
    """Versions of ``name`` in Production at ``when``: replay the transitions up to then."""
    stage: dict[int, str] = {}
    for event in events:
        if event["timestamp"] > when or event["name"] != name:
            continue
        if event["event"] == "TRANSITION_STAGE":
            stage[event["version"]] = event["stage"]
        elif event["event"] == "DELETE_MODEL_VERSION":
            stage.pop(event["version"], None)
    return sorted(v for v, s in stage.items() if s == "Production")


def test_which_version_was_production_at_a_given_time(client):
    client.create_registered_model("churn")
    for i in range(3):
        client.create_model_version("churn", f"/m/{i}")
    client.transition_model_version_stage("churn", 1, "Production")
    time.sleep(0.01)
    t1 = int(time.time() * 1000)
    time.sleep(0.01)
    client.transition_model_version_stage("churn", 2, "Production", True)
    time.sleep(0.01)
    t2 = int(time.time() * 1000)
    time.sleep(0.01)
    client.transition_model_version_stage("churn", 3, "Production", True)
    events = _events(client)
    assert _production_at(events, "churn", t1) == [1]
    assert _production_at(events, "churn", t2) == [2]
    assert _production_at(events, "churn", int(time.time() * 1000)) == [3]
    # The versioned model_versions rows give the same answer ("as of" time travel by row).
    rows = client._registry.tables.versions.read().to_pylist()

    def as_of(when: int) -> list[int]:
        newest: dict[int, dict] = {}
        for row in rows:
            if row["last_updated_timestamp"] <= when and (
                    row["version"] not in newest
                    or newest[row["version"]]["updated_at"] < row["updated_at"]):
                newest[row["version"]] = row
        return sorted(v for v, r in newest.items() if r["current_stage"] == "Production")

    assert (as_of(t1), as_of(t2)) == ([1], [2])
