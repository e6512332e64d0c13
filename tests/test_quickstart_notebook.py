"""The quickstart notebook runs end to end and shows what it promises."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKTRACK_TRACKING_URI", str(tmp_path / "store"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    # Run the notebook on this interpreter, whatever kernels are installed on the machine.
    client.kernel_manager_class = "jupyter_client.manager.KernelManager"
    client.extra_arguments = []
    client.km = client.create_kernel_manager()
    client.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client.execute()

    outputs = {i: "".join(o.get("text", "") or str(o.get("data", {}).get("text/plain", ""))
                          for o in cell.get("outputs", []))
               for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "'FINISHED'" in text
    assert "'regParam': '0.1'" in text and "'loss': 0.05" in text
    assert "Changing param values is not allowed" in text
    assert (tmp_path / "store" / "metrics" / "_delta_log").is_dir()
