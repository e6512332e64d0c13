"""The Delta layer is the only code that talks to deltalake, and what the engines raise leaves
it as a StoreError naming the table and the cause, even through the Spark data source."""

from __future__ import annotations

import ast
import glob
import os
from pathlib import Path

import pytest

import sparktrack
from sparktrack import TrackingClient
from sparktrack.errors import StoreError

PACKAGE = Path(sparktrack.__file__).parent
DELTA_LAYER = PACKAGE / "_delta"


def _deltalake_imports(source: str) -> list[int]:
    """Line numbers importing deltalake anywhere in ``source`` (functions, branches included):
    ``import deltalake[.x]``, ``from deltalake[.x] import ...``, ``import_module("deltalake")``
    and ``__import__("deltalake")``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            called = getattr(function, "attr", None) or getattr(function, "id", None)
            names = [str(node.args[0].value)] if called in ("import_module", "__import__") else []
        else:
            continue
        if any(name == "deltalake" or name.startswith("deltalake.") for name in names):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_walker_finds_every_form_of_import():
    source = (
        "import os\n"
        "import deltalake\n"
        "def f():\n"
        "    from deltalake.exceptions import DeltaError\n"
        "class C:\n"
        "    def m(self):\n"
        "        if True:\n"
        "            import deltalake.fs as fs\n"
        "import importlib\n"
        "importlib.import_module('deltalake')\n"
        "from .deltalake import x\n"  # a relative module of that name is not the package
        "import deltalakes\n"
    )
    assert _deltalake_imports(source) == [2, 4, 8, 10]


def test_only_the_delta_layer_imports_deltalake():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if DELTA_LAYER in path.parents:
            continue
        for line in _deltalake_imports(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    assert not offenders, (
        "Only sparktrack/_delta may import deltalake (one retry policy, every engine error "
        f"translated to StoreError there); move these into the Delta layer: {offenders}"
    )
    assert _deltalake_imports((DELTA_LAYER / "table.py").read_text(encoding="utf-8"))


def _store_with_metrics(root: str) -> str:
    client = TrackingClient(root)
    experiment = client.create_experiment("broken")
    run_id = client.create_run(experiment, run_name="r").info.run_id
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.flush()
    return experiment


@pytest.mark.spark
def test_a_corrupt_file_read_through_the_data_source_names_the_table_and_cause(spark, tmp_path):
    from sparktrack.spark import register

    root = str(tmp_path / "store")
    _store_with_metrics(root)
    table = os.path.join(root, "metrics")
    data_file = sorted(glob.glob(os.path.join(table, "*", "*.parquet")))[0]
    with open(data_file, "wb") as damaged:
        damaged.write(b"not parquet at all")
    register(spark)
    with pytest.raises(Exception) as raised:
        spark.read.format("sparktrack").option("table", "metrics").load(root).collect()
    message = str(raised.value)
    assert "sparktrack.errors.StoreError: corrupt data file" in message, message[-2000:]
    assert table in message


def test_a_corrupt_file_read_by_the_planner_is_a_store_error(tmp_path):
    """The same damage met without Spark (the executors' read code, in this process)."""
    from sparktrack.spark import _reader as reader

    root = str(tmp_path / "store")
    _store_with_metrics(root)
    table = os.path.join(root, "metrics")
    for data_file in glob.glob(os.path.join(table, "*", "*.parquet")):
        with open(data_file, "wb") as damaged:
            damaged.write(b"not parquet at all")
    opts = reader.parse_options({"path": root, "table": "metrics"})
    with pytest.raises(StoreError, match="^corrupt data file") as raised:
        for task in reader.plan(opts):
            list(reader.read_task(opts, task))
    assert table in str(raised.value)


def test_a_broken_log_met_by_the_planner_is_a_store_error(tmp_path):
    from sparktrack.spark import _reader as reader

    root = str(tmp_path / "store")
    _store_with_metrics(root)
    table = os.path.join(root, "metrics")
    for entry in glob.glob(os.path.join(table, "_delta_log", "*.json")):
        with open(entry, "wb") as damaged:
            damaged.write(b"garbage")
    opts = reader.parse_options({"path": root, "table": "metrics"})
    with pytest.raises(StoreError, match="^broken Delta log of") as raised:
        reader.plan(opts)
    assert table in str(raised.value)
