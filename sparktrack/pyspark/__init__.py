"""MLflow-style integration namespaces: ``sparktrack.pyspark.ml.autolog()``."""
