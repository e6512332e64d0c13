"""Model files across pyspark versions: what differs in the values Spark hands back."""

from __future__ import annotations

import json

import pandas as pd

from sparktrack._models.example import Example


def test_binary_values_of_an_input_example_are_base64_whatever_their_python_type():
    # pyspark 4.0's toPandas gives binary columns as bytearray, later ones as bytes.
    files = [
        Example(pd.DataFrame({"blob": [kind(b"\x00\x01")], "n": [1]})).files()
        for kind in (bytes, bytearray, memoryview)
    ]
    assert files[0] == files[1] == files[2]
    split = json.loads(files[1]["input_example.json"])
    assert split == {"columns": ["blob", "n"], "data": [["AAE=", 1]]}
