"""RunConfig: paper defaults, presets, count parsing, validation errors, phases, aligned chunks, JSON."""
from __future__ import annotations

import json

import pytest

from onlinedeep.config import PRESETS, ConfigError, RunConfig, format_count, parse_count


# ------------------------------------------------------------------------------------ counts
@pytest.mark.parametrize("text, expected", [
    ("2.5M", 2_500_000), ("100k", 100_000), ("100K", 100_000), ("7_500_000", 7_500_000),
    ("1e6", 1_000_000), ("10", 10), (" 3k ", 3000), ("1.5G", 1_500_000_000), (0, 0), (42, 42),
    ("0.5k", 500),
])
def test_parse_count(text, expected):
    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["abc", "-5", "1.2345k", "2.5", "", "5 M M", "k", "1e-3", -1, True])
def test_parse_count_rejects(text):
    with pytest.raises(ConfigError) as err:
        parse_count(text, name="--sup-updates")
    assert "--sup-updates" in str(err.value)


def test_format_count_round_trips():
    for n in (2_500_000, 7_500_000, 100_000, 1234, 7, 1_000_000_000):
        assert parse_count(format_count(n)) == n
    assert format_count(2_500_000) == "2.5M"


def test_count_fields_accept_suffixes():
    cfg = RunConfig(unsup_updates="100k", sup_updates="1.5M", window="10k", chunk_size=500,
                    snapshot_every="50k")
    assert (cfg.unsup_updates, cfg.sup_updates, cfg.window, cfg.snapshot_every) == (
        100_000, 1_500_000, 10_000, 50_000)


# ------------------------------------------------------------------------------------ defaults
def test_paper_defaults():
    one = RunConfig(layers=1)
    three = RunConfig(layers=3)
    assert one.n_hidden == 2000 and three.n_hidden == 1000  # footnote 14
    assert (three.unsup_updates, three.sup_updates) == (2_500_000, 7_500_000)  # section 5.3
    assert three.pretrain_layers == 3
    plain = RunConfig(layers=3, pretrain="none")
    assert (plain.unsup_updates, plain.sup_updates, plain.pretrain_layers) == (0, 10_000_000, 0)
    assert plain.total_updates == three.total_updates == 10_000_000
    assert RunConfig.preset("paper", layers=3) == three


def test_smoke_preset_and_overrides():
    smoke = RunConfig.preset("smoke", layers=3, pretrain="rbm")
    for k, v in PRESETS["smoke"].items():
        assert getattr(smoke, k) == v
    assert smoke.layers == 3 and smoke.pretrain == "rbm"
    # explicit values win; None means "not given"
    assert RunConfig.preset("smoke", n_hidden=64, window=None).n_hidden == 64
    # without pre-training the same number of examples, all supervised (as the paper's 10M)
    plain = RunConfig.preset("smoke", pretrain="none")
    assert plain.unsup_updates == 0
    assert plain.sup_updates == PRESETS["smoke"]["unsup_updates"] + PRESETS["smoke"]["sup_updates"]
    assert RunConfig.preset("smoke", pretrain="none", sup_updates=1000).sup_updates == 1000
    with pytest.raises(ConfigError, match="preset"):
        RunConfig.preset("huge")
    with pytest.raises(ConfigError, match="unknown field"):
        RunConfig.preset("smoke", n_hiden=3)


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("field, value", [
    ("layers", 0), ("layers", 6), ("layers", 1.5), ("n_hidden", 0), ("pretrain", "sdae"),
    ("pretrain_layers", 4), ("learning_rate", 0.0), ("learning_rate", float("nan")),
    ("unsup_learning_rate", -1.0), ("corruption_level", 1.0), ("corruption_level", -0.1),
    ("noise", "gaussian"), ("cd_k", 0), ("l1", -1e-4), ("l2", float("inf")), ("seed", -1),
    ("split", "train"), ("window", 0), ("log_every", 0), ("chunk_size", 0), ("device", "tpu"),
    ("kernel", ""), ("name", "a/b"), ("name", ".."), ("name", "..."), ("name", "-x"),
    ("name", ".hidden"), ("keep_snapshots", -1), ("threads", -2),
    ("sample_reconstruction", "yes"), ("unsup_split", "1,x,1"), ("unsup_split", "1,1"),
    ("unsup_split", "1,0,1"), ("sup_updates", -1), ("queue_size", 0),
    # values that overflow or vanish in the kernels' float32
    ("learning_rate", 1e300), ("learning_rate", 1e39), ("learning_rate", 1e-50),
    ("unsup_learning_rate", 1e39), ("l1", 1e39), ("l2", 1e39),
    ("l2", 10.0),  # learning_rate·l2 = 0.5: the decay alone flips the weights
    ("kernel", "foo"), ("deformation", "foo"), ("stream_seed", 2**64), ("stream_seed", -1),
])
def test_invalid_field_is_named(field, value):
    with pytest.raises(ConfigError) as err:
        RunConfig(**{"layers": 3, field: value})
    assert field in str(err.value)
    assert repr(value) in str(err.value) or str(value) in str(err.value)


def test_l2_error_names_l2_and_the_bound():
    with pytest.raises(ConfigError, match=r"^l2: expected learning_rate·l2 < 0\.5 \(learning_rate=0\.1, "
                                          r"so l2 < 5\), found 1e\+30$"):
        RunConfig(learning_rate=0.1, l2=1e30)
    RunConfig(learning_rate=0.1, l2=4.9)


def test_deformations_are_the_stream_modes():
    from infinite_mnist.stream import MODES

    from onlinedeep.config import DEFORMATIONS

    assert DEFORMATIONS == MODES
    with pytest.raises(ConfigError, match="mnist_dir: expected infimnist's data directory"):
        RunConfig(deformation="infimnist")
    RunConfig(deformation="infimnist", mnist_dir="/some/infimnist/data")


def test_cross_field_errors():
    with pytest.raises(ConfigError, match="multiple of chunk_size=1000"):
        RunConfig(snapshot_every=1500)
    with pytest.raises(ConfigError, match="pretrain='none'"):
        RunConfig(pretrain="none", unsup_updates=100)
    with pytest.raises(ConfigError, match="at least one update per pre-trained layer"):
        RunConfig(layers=3, unsup_updates=2, sup_updates=10)
    with pytest.raises(ConfigError, match="positive total"):
        RunConfig(pretrain="none", sup_updates=0)
    with pytest.raises(ConfigError, match="train_error_blocks"):
        RunConfig(pretrain="none", sup_updates=10, train_error_blocks=11, chunk_size=10,
                  snapshot_every=10)


# ------------------------------------------------------------------------------------ JSON
def test_json_round_trip_and_errors():
    cfg = RunConfig.preset("smoke", layers=2, pretrain="rbm", cd_k=2, name="x", l2=1e-5)
    again = RunConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["cd_k"] == 2
    assert again.diff(cfg) == {}
    assert RunConfig.from_json(cfg.to_json()).diff(RunConfig.preset("smoke", layers=3)) != {}
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{nope", where="file.h5")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['bogus'\]"):
        RunConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ConfigError, match="somewhere: layers"):
        RunConfig.from_dict({**cfg.to_dict(), "layers": 9}, where="somewhere")


def test_kernel_choices_are_the_registry_names():
    from onlinedeep import kernels
    from onlinedeep.config import KERNELS

    assert KERNELS == kernels.KERNEL_NAMES


def test_network_widths_default_to_mnist_and_old_configurations_still_load():
    cfg = RunConfig(pretrain="none", sup_updates=100)
    assert (cfg.n_inputs, cfg.n_classes) == (784, 10)
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("n_inputs", "n_classes")}
    assert RunConfig.from_dict(old) == cfg  # a config.json written before the fields existed
    with pytest.raises(ConfigError, match="n_classes: expected an integer >= 2"):
        RunConfig(pretrain="none", sup_updates=100, n_classes=1)
