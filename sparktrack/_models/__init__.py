"""Spark ML models in MLflow's model format: writing, reading, URIs, scoring.

- :mod:`.uris` — ``runs:/``, ``models:/`` and plain locations, parsed and resolved to a folder.
- :mod:`.mlmodel` — the ``MLmodel`` file and the environment files beside it.
- :mod:`.signature` — MLflow's signature JSON from Spark schemas; the model's feature columns.
- :mod:`.example` — input examples as MLflow stores them (``input_example.json``).
- :mod:`.writer` — ``save_model``/``log_model``: Spark's writer plus the small files.
- :mod:`.loader` — ``load_model``: only pyspark.ml classes, never an arbitrary import.
- :mod:`.predict` — scoring a Spark or pandas DataFrame with a model.

The public face is :mod:`sparktrack.spark` (``log_model``, ``save_model``, ``load_model``,
``predict``). Nothing here imports pyspark at import time.
"""
