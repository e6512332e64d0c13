"""run_ids: positions and membership of run ids give exactly the answers of Arrow's string
joins, for the ids it reads as integers (32 bytes), for every other id, and when two different
ids share a number."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sparktrack._store import run_ids
from sparktrack._store.run_ids import bucket_codes, members, positions


def _hex_ids(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [uuid.UUID(bytes=rng.bytes(16)).hex for _ in range(count)]


def _expected_positions(column, wanted) -> list[int]:
    return [-1 if p is None else p
            for p in pc.index_in(column, value_set=wanted).to_pylist()]


def _expected_members(column, wanted) -> list[bool]:
    return pc.is_in(column, value_set=wanted).to_pylist()


RUNS = _hex_ids(300, seed=1)
OTHERS = _hex_ids(50, seed=2)  # ids of no run


def _columns() -> dict[str, pa.ChunkedArray]:
    """Columns of ids in the shapes a state has in memory."""
    rows = [RUNS[i % 300] for i in range(0, 900, 7)] + OTHERS
    whole = pa.array(rows)
    return {
        "one chunk": pa.chunked_array([whole]),
        "slices of chunks": pa.chunked_array([whole.slice(3, 40), whole.slice(60), whole[:2]]),
        "empty chunks": pa.chunked_array([whole[:0], whole, whole[:0]]),
        "other lengths": pa.chunked_array([pa.array(rows + ["short", "a" * 40, ""])]),
        "no rows": pa.chunked_array([], type=pa.string()),
    }


@pytest.mark.parametrize("shape", list(_columns()))
def test_positions_are_those_of_a_string_join(shape):
    column = _columns()[shape]
    wanted = pa.array(RUNS)
    assert positions(column, wanted).tolist() == _expected_positions(column, wanted)
    wanted_mixed = pa.array(RUNS[:10] + ["short"])  # other lengths: the string path
    assert positions(column, wanted_mixed).tolist() == _expected_positions(column, wanted_mixed)


@pytest.mark.parametrize("shape", list(_columns()))
def test_members_are_those_of_a_string_join(shape):
    column = _columns()[shape]
    for wanted in (pa.array(RUNS[:5]), pa.array(OTHERS[-3:] + RUNS[100:101]),
                   pa.array([], pa.string()), pa.array(["short", RUNS[0]])):
        assert members(column, wanted).tolist() == _expected_members(column, wanted)


def test_members_check_every_id_that_shares_a_bucket():
    """200,000 ids against 1,000: about 190 ids of other runs share a bucket of a wanted one."""
    many = pa.array(_hex_ids(200_000, seed=3))
    wanted = many.take(pa.array(np.arange(0, 200_000, 200)))
    codes = bucket_codes(many)
    shared = np.isin(codes, bucket_codes(wanted)).sum()
    assert shared > len(wanted)  # the check below has ids to turn away
    assert members(many, wanted, codes=codes).tolist() == _expected_members(many, wanted)


def _id_sharing_a_code_with(target: str) -> str:
    """A different 32-character id whose 64-bit code equals ``target``'s."""
    words = np.frombuffer(target.encode(), dtype=np.uint64, count=2)
    code = (words[:1] * run_ids._MIX) ^ words[1:]  # arrays: uint64 products wrap silently
    rng = np.random.default_rng(7)
    while True:
        # Any first word gives the second word that keeps the code; look for one printable.
        firsts = rng.integers(0, 2**63, size=200_000, dtype=np.uint64)
        seconds = (firsts * run_ids._MIX) ^ code
        text = seconds.view(np.uint8).reshape(-1, 8)
        printable = np.all((text >= 0x21) & (text <= 0x7E), axis=1)
        first_text = firsts.view(np.uint8).reshape(-1, 8)
        printable &= np.all((first_text >= 0x21) & (first_text <= 0x7E), axis=1)
        if printable.any():
            i = int(np.flatnonzero(printable)[0])
            head = firsts[i:i + 1].tobytes() + seconds[i:i + 1].tobytes()
            return (head + target.encode()[16:]).decode()


def test_two_ids_with_one_code_are_still_told_apart():
    twin = _id_sharing_a_code_with(RUNS[0])
    assert twin != RUNS[0] and len(twin) == 32
    assert (run_ids._codes(pa.array([twin])) == run_ids._codes(pa.array([RUNS[0]]))).all()

    rows = pa.chunked_array([pa.array([twin, RUNS[1], RUNS[0], twin])])
    # A row of another run with a run's code: found by its string, not its code.
    wanted = pa.array(RUNS[:5])
    assert positions(rows, wanted).tolist() == [-1, 1, 0, -1]
    # Both ids among the runs: the codes do not tell them apart, the strings do.
    wanted = pa.array([RUNS[0], twin, RUNS[1]])
    assert positions(rows, wanted).tolist() == [1, 2, 0, 1]
    assert members(rows, pa.array([twin])).tolist() == [True, False, False, True]
