"""Schedule: training ids -> stream indices, segments, replacement, serialisation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from infinite_mnist import Schedule, draw_seed, sample_indices
from infinite_mnist import sampling
from infinite_mnist import schedule as S
from infinite_mnist.schedule import Sample


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


# ----------------------------------------------------------------------------------------------
# Sampled segments (issue 10): resampling gives other digits, in another order
# ----------------------------------------------------------------------------------------------

def _splitmix_step(z):
    """SplitMix64 (Steele, Lea & Flood 2014) on Python ints, written out independently."""
    z = (z + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return z ^ (z >> 31)


def _sample_index_scalar(seed, t, split):
    """The documented sampling rule, version 1, one position at a time."""
    key = _splitmix_step(seed ^ sampling._SAMPLE_TAG)
    digit = _splitmix_step((key + 2 * t * 0x9E3779B97F4A7C15) % 2**64) % (50_000 if split == "protocol"
                                                                           else 60_000)
    cycle = _splitmix_step((key + (2 * t + 1) * 0x9E3779B97F4A7C15) % 2**64) >> 17
    return 70_000 + 60_000 * cycle + digit


def all_distinct(*arrays):
    s = np.sort(np.concatenate(arrays))
    return not (s[1:] == s[:-1]).any()


def base_digit(indices):
    return (np.asarray(indices) - 10_000) % 60_000


@pytest.mark.parametrize("split", ["protocol", "all"])
def test_sample_follows_the_documented_rule_at_any_position(split):
    for seed, first in [(0, 0), (2**64 - 1, 65_530), (12345, 2**62 - 20)]:
        got = sample_indices(seed, first, 20, split)
        assert got.dtype == np.int64
        assert got.tolist() == [_sample_index_scalar(seed, first + t, split) for t in range(20)]
    assert S.SAMPLING_VERSION == 1  # a change of the rule above must come with a new version


@pytest.mark.parametrize("split, n_digits", [("protocol", 50_000), ("all", 60_000)])
def test_sample_is_uniform_over_the_split_and_stays_in_int64(split, n_digits):
    idx = sample_indices(draw_seed(1, 0, 0), 0, 10**6, split)
    assert idx.dtype == np.int64 and idx.min() >= 70_000  # deformations only
    digits = base_digit(idx)
    assert digits.max() < n_digits  # protocol: never a validation digit 50,000-59,999
    counts = np.bincount(digits, minlength=n_digits)
    expected = 10**6 / n_digits
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert abs(chi2 - (n_digits - 1)) < 6 * np.sqrt(2 * (n_digits - 1))  # a bias shows as a huge chi2
    cycles = (idx - 70_000) // 60_000  # the deformation number: spread over 2**47 values
    assert cycles.max() > 0.99 * 2**47 and cycles.min() < 0.01 * 2**47
    assert all_distinct(idx)


def test_two_draws_of_a_segment_share_almost_no_digit_and_no_example():
    n = 10**6
    base = Schedule.contiguous(3 * n)
    a = base.resample(n, n, draw_seed(7, 1, 0)).indices(n, n)
    b = base.resample(n, n, draw_seed(7, 1, 1)).indices(n, n)
    same_digit = int((base_digit(a) == base_digit(b)).sum())
    # Expected n / 50,000 = 20 positions with the same base digit by chance (sd ~4.5); the fixed
    # ranges of before shared all n of them.
    assert same_digit < 50
    assert all_distinct(a, b)  # not one example in common
    assert all_distinct(a, base.indices(0, 3 * n))


def test_resample_keeps_the_rest_of_the_sequence_and_reruns_identically():
    base = Schedule.contiguous(300_000, start=10)
    (pos, length) = base.segment_bounds(3)[1]
    seed = draw_seed(0, 1, 4)
    r = base.resample(pos, length, seed)
    assert r == base.resample(pos, length, seed) and r.total == base.total
    assert r.segments == ((10, 100_000), Sample(seed, 0, 100_000), (200_010, 100_000))
    a, b = base.indices(0, base.total), r.indices(0, r.total)
    np.testing.assert_array_equal(b[:pos], a[:pos])
    np.testing.assert_array_equal(b[pos + length:], a[pos + length:])
    np.testing.assert_array_equal(b[pos:pos + length], sample_indices(seed, 0, length))
    # Index-addressable: any window, across segments and sampling chunks, gives the same indices.
    for start, count in [(99_990, 20), (150_000, 70_000), (199_999, 2), (0, 300_000)]:
        np.testing.assert_array_equal(r.indices(start, count), b[start:start + count])
    # Replacing inside a sample keeps the rest of the sample where it was.
    rr = r.replace(pos + 10, 5, 0)
    assert rr.segments[1:4] == (Sample(seed, 0, 10), (0, 5), Sample(seed, 15, length - 15))
    np.testing.assert_array_equal(rr.indices(pos + 15, 100), b[pos + 15:pos + 115])
    assert r.resample(pos, 10, seed) == r  # the same sample over itself: same sequence, same form


def test_head_compares_prefixes():
    base = Schedule.contiguous(1000)
    r = base.resample(600, 100, 3)
    assert r.head(600) == base.head(600) == Schedule.contiguous(600)
    assert r.head(650) != base.head(650)
    assert r.head(650) == Schedule(((0, 600), Sample(3, 0, 50)))
    assert Schedule(((0, 5), (5, 5))).head(10) == Schedule.contiguous(10)
    with pytest.raises(IndexError):
        r.head(1001)


def test_sampled_schedule_to_dict_from_dict():
    s = Schedule.contiguous(500, split="all").resample(100, 200, 2**64 - 1).resample(400, 50, 9)
    d = json.loads(json.dumps(s.to_dict()))
    assert d == {"split": "all", "sampling_version": 1, "segments": [
        [0, 100], {"kind": "sample", "seed": 2**64 - 1, "first": 0, "length": 200}, [300, 100],
        {"kind": "sample", "seed": 9, "first": 0, "length": 50}, [450, 50]]}
    back = Schedule.from_dict(d)
    assert back == s and back.sampling_version == 1
    np.testing.assert_array_equal(back.indices(0, 500), s.indices(0, 500))
    assert Schedule.sampled(10, 5).to_dict()["segments"] == [
        {"kind": "sample", "seed": 5, "first": 0, "length": 10}]
    # Dicts written before samples existed read as before, and write back unchanged.
    old = {"split": "protocol", "segments": [[0, 10], [50, 5]]}
    assert Schedule.from_dict(old).to_dict() == old and Schedule.from_dict(old).sampling_version is None
    # A sample of another (or of no) sampling version is refused, not silently re-interpreted.
    for version in (2, None):
        bad = dict(d, sampling_version=version) if version else {k: v for k, v in d.items()
                                                                 if k != "sampling_version"}
        with pytest.raises(ValueError, match=f"sampling_version: expected 1 .* found {version}"):
            Schedule.from_dict(bad)
    with pytest.raises(ValueError, match=r"segments\[0\]: expected \[start, length\] or"):
        Schedule.from_dict({"split": "all", "segments": [{"kind": "range", "start": 0}]})


def test_draw_seed_is_pure_and_distinct():
    seeds = {draw_seed(3, segment, draw) for segment in range(100) for draw in range(100)}
    assert len(seeds) == 10_000 and all(0 <= s < 2**64 for s in seeds)
    assert draw_seed(3, 5, 7) == draw_seed(3, 5, 7) != draw_seed(4, 5, 7)
    assert draw_seed(0, 1, 2) != draw_seed(0, 2, 1)
    for args in [(-1, 0, 0), (0, 2**64, 0), (0, 0, 1.5), (True, 0, 0)]:
        with pytest.raises(ValueError, match="expected an integer in"):
            draw_seed(*args)


def test_sample_errors():
    with pytest.raises(ValueError, match="first \\+ count <= 2\\*\\*62"):
        sample_indices(0, 2**62 - 5, 10)
    with pytest.raises(ValueError, match="split"):
        sample_indices(0, 0, 10, split="train")
    with pytest.raises(ValueError, match="seed"):
        Schedule.contiguous(10).resample(0, 5, -1)
    with pytest.raises(IndexError, match=r"resample: positions \[8, 13\)"):
        Schedule.contiguous(10).resample(8, 5, 1)
    with pytest.raises(ValueError, match=r"segments\[1\]: expected a sample"):
        Schedule(((0, 5), Sample(1, -1, 5)))
