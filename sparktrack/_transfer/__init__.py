"""Moving data between MLflow and sparktrack: ``sparktrack import`` and ``sparktrack export``.

- :mod:`.source` — what an MLflow store holds, and which reader opens a URI;
- :mod:`.sql_source` — an MLflow database (SQLite or any SQLAlchemy URI), read table by table;
- :mod:`.mlruns_source` — the folder of MLflow's old file store;
- :mod:`.importer` — the import: experiments, runs (ids kept), artifacts; resumable;
- :mod:`.registry_import` — the import of the model registry;
- :mod:`.exporter` — one experiment back into MLflow through MLflow's own client;
- :mod:`.progress` — the progress bar on stderr.

Private: the public face is the command line (``sparktrack import`` / ``export``).
"""

from __future__ import annotations

from sparktrack._transfer.importer import ImportSummary, import_mlflow

__all__ = ["ImportSummary", "import_mlflow"]
