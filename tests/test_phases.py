"""Phases and chunks of a run (onlinedeep.phases)."""
from __future__ import annotations

import pytest

from onlinedeep import phases
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.phases import Phase


def test_equal_split_and_phases():
    cfg = RunConfig(layers=3, unsup_updates="2.5M", sup_updates="7.5M")
    assert phases.layer_updates(cfg) == [833_333, 833_333, 833_334]
    found = phases.phases(cfg)
    assert [p.kind for p in found] == ["pretrain"] * 3 + ["supervised"]
    assert found[0] == Phase("pretrain", 0, 0, 833_333)
    assert found[-1] == Phase("supervised", -1, 2_500_000, 10_000_000)
    assert phases.phase_at(cfg, 0).layer == 0
    assert phases.phase_at(cfg, 833_332).layer == 0
    assert phases.phase_at(cfg, 833_333).layer == 1
    assert phases.phase_at(cfg, 2_499_999).layer == 2
    assert phases.phase_at(cfg, 2_500_000).kind == "supervised"
    assert phases.phase_at(cfg, 10_000_000).kind == "supervised"  # the end maps to the last phase
    with pytest.raises(ConfigError, match="position"):
        phases.phase_at(cfg, 10_000_001)


def test_weighted_split_and_partial_pretraining():
    cfg = RunConfig(layers=3, pretrain="dae", pretrain_layers=2, unsup_split="3,1",
                    unsup_updates=1000, sup_updates=500, chunk_size=100, snapshot_every=100)
    assert phases.layer_updates(cfg) == [750, 250]
    assert [(p.layer, p.start, p.stop) for p in phases.phases(cfg)] == [
        (0, 0, 750), (1, 750, 1000), (-1, 1000, 1500)]
    assert cfg.default_name() == "dae2-3x1000-s0"


def test_chunk_ranges_are_aligned_and_cut_at_phase_boundaries():
    cfg = RunConfig(layers=3, unsup_updates=1000, sup_updates=1050, chunk_size=300,
                    snapshot_every=300)
    ranges = phases.chunk_ranges(cfg, 0, cfg.total_updates)
    assert ranges[0] == (0, 300)
    assert all(a < b for a, b in ranges)
    assert [a for a, _ in ranges[1:]] == [b for _, b in ranges[:-1]]
    assert ranges[-1][1] == cfg.total_updates
    bounds = set(phases.phase_boundaries(cfg))
    for a, b in ranges:
        assert phases.phase_at(cfg, a) == phases.phase_at(cfg, b - 1), "a chunk crosses a phase boundary"
        assert b % 300 == 0 or b in bounds
    # resuming at any chunk boundary gives the same remaining chunks
    for i, (a, _) in enumerate(ranges):
        assert phases.chunk_ranges(cfg, a, cfg.total_updates) == ranges[i:]
    with pytest.raises(ConfigError, match="chunk boundary"):
        phases.chunk_ranges(cfg, 150, cfg.total_updates)
    with pytest.raises(ConfigError, match="stop"):
        phases.chunk_ranges(cfg, 600, 300)
