"""The argument checks of the public API apply however a call passes its arguments.

Calls that pass each argument once go straight to the function (binding them costs more than a
buffered ``log_metric``); the others are bound as before. Both ways must check the same
arguments, and a call of the wrong shape must still get Python's own ``TypeError``.
"""

from __future__ import annotations

import pytest

import sparktrack
from sparktrack.errors import InvalidInputError


def test_a_bad_kind_is_refused_positionally_and_by_keyword(tracking):
    with sparktrack.start_run() as run:
        run_id = run.info.run_id
        calls = [
            (lambda: sparktrack.set_tag(5, "v"), "set_tag: key 5 must be a string"),
            (lambda: sparktrack.set_tag(key=5, value="v"), "set_tag: key 5 must be a string"),
            (lambda: sparktrack.set_tag(5, value="v", synchronous=True),
             "set_tag: key 5 must be a string"),
            (lambda: sparktrack.delete_run(7, delete_descendants=False), "Invalid run id 7"),
            (lambda: sparktrack.set_tags(["not a mapping"]), "set_tags: tags must be"),
        ]
        for call, message in calls:
            with pytest.raises(InvalidInputError, match=message):
                call()
        sparktrack.set_tag("a", "1", True)  # good calls go through, however passed
        sparktrack.set_tag(key="b", value="2")
        sparktrack.set_tag("c", value="3")
        sparktrack.set_tags({"d": 4})
    tags = sparktrack.get_run(run_id).data.tags
    assert {key: tags[key] for key in "abcd"} == {"a": "1", "b": "2", "c": "3", "d": "4"}


def test_a_call_of_the_wrong_shape_gets_pythons_type_error(tracking):
    with sparktrack.start_run():
        with pytest.raises(TypeError, match="missing a required argument: 'value'"):
            sparktrack.set_tag("k")
        with pytest.raises(TypeError, match="multiple values for argument 'key'"):
            sparktrack.set_tag("k", "v", key="n")
        with pytest.raises(TypeError, match="unexpected keyword argument 'valu'"):
            sparktrack.set_tag("k", "v", valu="v")
        with pytest.raises(TypeError, match="too many positional arguments"):
            sparktrack.set_tag("k", "v", True, "extra")
        with pytest.raises(TypeError, match="too many positional arguments"):
            sparktrack.delete_run("0" * 32, False)  # delete_descendants is keyword-only
