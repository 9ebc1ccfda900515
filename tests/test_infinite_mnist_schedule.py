"""Schedule: training ids -> stream indices, segments, replacement, serialisation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from infinite_mnist import Schedule


def naive(schedule):
    """The sequence of training ids, written out one by one."""
    return [start + k for start, length in schedule.segments for k in range(length)]


def to_index(k, split):
    return 70_000 + (60_000 * (k // 50_000) + k % 50_000 if split == "protocol" else k)


@pytest.mark.parametrize("split", ["protocol", "all"])
def test_contiguous_mapping(split):
    s = Schedule.contiguous(200_000, start=10, split=split)
    assert s.total == 200_000
    idx = s.indices(0, 200_000)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, [to_index(k, split) for k in range(10, 200_010)])


def test_protocol_split_uses_training_digits_0_to_49999_only():
    s = Schedule.contiguous(10**6, start=2**40)
    idx = s.indices(0, 10**6)
    assert ((idx - 10_000) % 60_000 < 50_000).all()
    assert len(np.unique(idx)) == 10**6 and (idx >= 70_000).all()
    assert idx[0] == 70_000 + 60_000 * (2**40 // 50_000) + 2**40 % 50_000


def test_indices_across_segments_and_replace():
    s = Schedule(((0, 1000), (5_000_000, 300), (7, 50)), split="protocol")
    ids = naive(s)
    for position, count in [(0, 1350), (990, 20), (1000, 300), (1290, 60), (1349, 1), (5, 0)]:
        np.testing.assert_array_equal(s.indices(position, count),
                                      [to_index(k, "protocol") for k in ids[position:position + count]])
    r = s.replace(900, 200, 9_000_000)
    expected = ids[:900] + list(range(9_000_000, 9_000_200)) + ids[1100:]
    assert naive(r) == expected and r.total == s.total
    np.testing.assert_array_equal(r.indices(0, r.total), [to_index(k, "protocol") for k in expected])
    assert r.segments == ((0, 900), (9_000_000, 200), (5_000_100, 200), (7, 50))
    # Replacing a range by itself gives back the same sequence, in the shortest form.
    assert Schedule.contiguous(1000).replace(300, 100, 300) == Schedule.contiguous(1000)


def test_ordering_variance_style_swaps_cover_exactly_the_segment():
    base = Schedule.contiguous(10_000)
    bounds = base.segment_bounds(10)
    assert bounds == [(k * 1000, 1000) for k in range(10)]
    assert Schedule.contiguous(10).segment_bounds(3) == [(0, 3), (3, 3), (6, 4)]
    pos, length = bounds[3]
    swapped = base.replace(pos, length, 1_000_000)
    a, b = base.indices(0, base.total), swapped.indices(0, swapped.total)
    differs = np.flatnonzero(a != b)
    assert differs.min() == 3000 and differs.max() == 3999 and len(differs) == 1000
    assert not set(b[3000:4000]) & set(a)


def test_to_dict_from_dict_roundtrip():
    s = Schedule(((3, 10), (100, 5)), split="all")
    d = json.loads(json.dumps(s.to_dict()))
    assert d == {"split": "all", "segments": [[3, 10], [100, 5]]}
    assert Schedule.from_dict(d) == s


def test_errors():
    s = Schedule.contiguous(100)
    with pytest.raises(IndexError, match=r"positions \[90, 111\) outside the schedule \[0, 100\)"):
        s.indices(90, 21)
    with pytest.raises(IndexError):
        s.replace(95, 10, 0)
    with pytest.raises(ValueError, match="split"):
        Schedule.contiguous(10, split="train")
    with pytest.raises(ValueError, match=r"segments\[1\]"):
        Schedule(((0, 5), (3, 0)))
    with pytest.raises(ValueError, match=r"segments\[0\]"):
        Schedule(((-1, 5),))
    with pytest.raises(ValueError, match="n_segments"):
        s.segment_bounds(0)
    with pytest.raises(ValueError, match="'split' and 'segments'"):
        Schedule.from_dict({"segments": [[0, 1]]})
    with pytest.raises(ValueError, match="ids <="):
        Schedule.contiguous(10, start=2**63 - 100)
