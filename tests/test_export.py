"""CSV export: header, values, formula-injection guard, quoting, numeric metrics."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

import sparktrack
from sparktrack.entities import Run, RunData, RunInfo
from sparktrack.errors import InvalidInputError
from sparktrack.export import FIXED_COLUMNS, format_duration, runs_to_csv, runs_to_csv_string

HEADER = [
    "Start Time", "Duration", "Run ID", "Name", "Source Type", "Source Name", "User", "Status"
]
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z


def make_run(
    run_id: str = "a" * 32,
    *,
    name: str = "run",
    start: int | None = T0,
    end: int | None = T0 + 1_500,
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    user: str = "alice",
    status: str = "FINISHED",
) -> Run:
    info = RunInfo(
        run_id=run_id,
        experiment_id="0",
        run_name=name,
        status=status,
        user_id=user,
        start_time=start,
        end_time=end,
        lifecycle_stage="active",
        artifact_uri=f"/store/artifacts/0/{run_id}",
    )
    return Run(info, RunData(metrics=metrics or {}, params=params or {}, tags=tags or {}))


def read_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_fixed_columns_are_mlflows():
    assert list(FIXED_COLUMNS) == HEADER
    assert read_rows(runs_to_csv_string([])) == [HEADER]


def test_header_and_values_of_real_runs(tracking):
    with sparktrack.start_run(run_name="first") as r1:
        sparktrack.log_params({"maxIter": "10", "regParam": "0.1"})
        sparktrack.log_metrics({"rmse": 0.25, "r2": 0.9})
        sparktrack.set_tag("team", "ml")
    with sparktrack.start_run(run_name="second") as r2:
        sparktrack.log_params({"regParam": "0.01", "alpha": "1"})
        sparktrack.log_metrics({"rmse": 0.5})
    sparktrack.flush()
    client = sparktrack.TrackingClient(tracking)
    runs = [client.get_run(r1.info.run_id), client.get_run(r2.info.run_id)]

    rows = read_rows(runs_to_csv_string(runs))

    assert rows[0] == [*HEADER, "alpha", "maxIter", "regParam", "r2", "rmse", "team"]
    first, second = (dict(zip(rows[0], row, strict=True)) for row in rows[1:])
    assert first["Run ID"] == r1.info.run_id
    assert first["Name"] == "first"
    assert first["Status"] == "FINISHED"
    assert first["Source Type"] == runs[0].data.tags["mlflow.source.type"]
    assert first["User"] == runs[0].info.user_id
    assert first["Start Time"].endswith("Z") and first["Start Time"][10] == "T"
    assert first["Duration"].endswith(("ms", "s"))
    assert (first["maxIter"], first["regParam"], first["alpha"]) == ("10", "0.1", "")
    assert (first["rmse"], first["r2"], first["team"]) == ("0.25", "0.9", "ml")
    assert (second["alpha"], second["regParam"], second["rmse"], second["r2"]) == (
        "1", "0.01", "0.5", ""
    )
    assert second["team"] == ""
    # System tags fill the fixed columns; they get no column of their own by default.
    assert not any(h.startswith("mlflow.") for h in rows[0])


def test_start_time_is_iso_utc_and_missing_values_are_empty():
    running = make_run(end=None, name="", user="")
    rows = read_rows(runs_to_csv_string([running]))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Start Time"] == "2023-11-14T22:13:20.000Z"
    assert row["Duration"] == ""
    assert row["Name"] == "" and row["User"] == "" and row["Source Type"] == ""

    from_tags = make_run(name="", user="", tags={"mlflow.runName": "n", "mlflow.user": "u"})
    row = dict(zip(*read_rows(runs_to_csv_string([from_tags])), strict=True))
    assert (row["Name"], row["User"]) == ("n", "u")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (499, "499ms"),
        (500, "0.5s"),
        (1_050, "1.1s"),
        (12_340, "12.3s"),
        (60_000, "1.0min"),
        (270_000, "4.5min"),
        (7_200_000, "2.0h"),
        (129_600_000, "1.5d"),
    ],
)
def test_duration_is_human_readable_like_mlflow_ui(ms, text):
    assert format_duration(T0, T0 + ms) == text
    assert format_duration(T0, None) == ""


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_every_dangerous_prefix_is_guarded_everywhere(prefix):
    bad = f"{prefix}HYPERLINK(1)"
    run = make_run(
        name=bad,
        user=bad,
        params={bad: bad},
        tags={bad: bad, "mlflow.source.name": bad, "mlflow.source.type": bad},
    )
    header, row = read_rows(runs_to_csv_string([run]))
    guarded = "'" + bad
    assert header[len(HEADER):] == [guarded, guarded]  # the param, then the tag
    cells = dict(zip(HEADER, row, strict=False))
    for column in ("Name", "Source Type", "Source Name", "User"):
        assert cells[column] == guarded
    assert row[len(HEADER):] == [guarded, guarded]
    # Nothing a spreadsheet would evaluate is left anywhere.
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in header + row)


def test_safe_values_are_not_prefixed():
    run = make_run(params={"p": "a=b", "q": " =1", "r": "0.5"}, tags={"t": "x-y"})
    header, row = read_rows(runs_to_csv_string([run]))
    assert row[len(HEADER):] == ["a=b", " =1", "0.5", "x-y"]


def test_numeric_metrics_stay_numeric_but_text_params_are_guarded():
    run = make_run(
        params={"shift": "-0.5"},
        metrics={"loss": -0.5, "tiny": 1e-5, "count": 3, "bad": float("nan"), "low": -1e308},
        tags={"delta": "-0.5"},
    )
    header, row = read_rows(runs_to_csv_string([run]))
    cells = dict(zip(header, row, strict=True))
    assert cells["shift"] == "'-0.5"  # a param is text
    assert cells["delta"] == "'-0.5"  # so is a tag
    assert cells["loss"] == "-0.5"  # a metric is a number
    assert (cells["tiny"], cells["count"], cells["bad"], cells["low"]) == (
        "1e-05", "3", "nan", "-1e+308"
    )
    frame = pd.read_csv(io.StringIO(runs_to_csv_string([run])))
    assert frame["loss"].dtype == "float64" and frame["loss"][0] == -0.5
    assert frame["shift"][0] == "'-0.5"


def test_commas_quotes_and_newlines_round_trip():
    tricky = 'a,b "quoted"\nnext line\r\nlast'
    run = make_run(name=tricky, params={"k,1": tricky}, tags={'t"q': "x\ny"})
    text = runs_to_csv_string([run])
    header, row = read_rows(text)
    assert header[len(HEADER):] == ["k,1", 't"q']
    assert row[3] == tricky
    assert row[len(HEADER):] == [tricky, "x\ny"]


def test_shared_key_keeps_one_column_per_group_in_order():
    run = make_run(params={"k": "p"}, metrics={"k": 1.5}, tags={"k": "t"})
    header, row = read_rows(runs_to_csv_string([run]))
    assert header[len(HEADER):] == ["k", "k", "k"]
    assert row[len(HEADER):] == ["p", "1.5", "t"]

    header, row = read_rows(runs_to_csv_string([run], prefix_keys=True))
    assert header[len(HEADER):] == ["params.k", "metrics.k", "tags.k"]
    assert row[len(HEADER):] == ["p", "1.5", "t"]


def test_system_tags_on_request():
    run = make_run(tags={"mlflow.source.type": "LOCAL", "team": "ml"})
    header, row = read_rows(runs_to_csv_string([run], include_system_tags=True))
    assert header[len(HEADER):] == ["mlflow.source.type", "team"]
    assert row[len(HEADER):] == ["LOCAL", "ml"]


def test_rows_follow_the_given_order():
    runs = [make_run("b" * 32), make_run("a" * 32)]
    rows = read_rows(runs_to_csv_string(runs))
    assert [row[2] for row in rows[1:]] == ["b" * 32, "a" * 32]


def test_writes_to_path_text_and_binary_buffers(tmp_path):
    runs = [make_run(name="é", params={"p": "1"})]
    expected = runs_to_csv_string(runs)
    assert expected.endswith("\r\n")

    path = tmp_path / "runs.csv"
    runs_to_csv(runs, path)
    assert path.read_bytes() == expected.encode("utf-8")
    runs_to_csv(runs, str(path), encoding="utf-8-sig")
    assert path.read_bytes() == b"\xef\xbb\xbf" + expected.encode("utf-8")

    text_buffer = io.StringIO()
    runs_to_csv(runs, text_buffer)
    assert text_buffer.getvalue() == expected

    binary_buffer = io.BytesIO()
    runs_to_csv(runs, binary_buffer)
    assert binary_buffer.getvalue() == expected.encode("utf-8")


def test_bad_arguments():
    run = make_run()
    with pytest.raises(InvalidInputError, match=r"runs\[1\] is a str"):
        runs_to_csv_string([run, "abc"])
    with pytest.raises(InvalidInputError, match="sequence of Run"):
        runs_to_csv_string(run)
    with pytest.raises(InvalidInputError, match="write"):
        runs_to_csv([run], 42)
