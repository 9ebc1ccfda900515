"""Thread counts: ``RunConfig.threads`` reaches the kernel, and never changes the weights.

The numba kernel's arithmetic does not depend on its thread count (tests/test_kernels_numba.py), so
``threads`` is resume-mutable: a run interrupted with one count and resumed with another ends with
the bits of an uninterrupted run. Networks are tiny, so two threads stay fast on a loaded machine.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from onlinedeep import phases
from onlinedeep import kernels
from onlinedeep.config import RunConfig
from onlinedeep.training import Trainer, resume

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.skipif("numba" not in kernels.available("cpu"), reason="numba kernel not installed"),
]


def _config(pretrain, **kw):
    base = dict(layers=2, n_hidden=16, pretrain=pretrain, unsup_updates=300, sup_updates=300,
                chunk_size=100, snapshot_every=200, window=100, log_every=100, learning_rate=0.1,
                unsup_learning_rate=0.01, kernel="numba", device="cpu", threads=1)
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.parametrize("pretrain, extra", [("dae", {}),
                                             ("rbm", {"cd_k": 2, "sample_reconstruction": True})])
def test_resumed_with_two_threads_equals_uninterrupted_one_thread_run(tmp_path, fake_stream,
                                                                      pretrain, extra):
    cfg = _config(pretrain, **extra)
    whole = Trainer(cfg, stream=fake_stream())
    assert whole.kernel.name == "numba" and whole.kernel.n_threads == 1
    whole.run(progress=False)

    part = Trainer(cfg, stream=fake_stream(), run_dir=tmp_path / "run")
    part.run(stop=200, progress=False)  # inside the pre-training of layer 1 ([150, 300))
    resumed = resume(tmp_path / "run", stream=fake_stream(), threads=2)
    assert resumed.config.threads == 2 and resumed.kernel.n_threads == 2
    assert resumed.position == 200
    resumed.run(progress=False)

    assert resumed.position == whole.position == cfg.total_updates
    for key in whole.params:
        assert torch.equal(resumed.params[key], whole.params[key]), f"{key} differs"
    a, b = whole.metrics.series(), resumed.metrics.series()
    for field in ("position", "online_error", "nll", "reconstruction"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_threads_reach_the_kernel_and_torch_threads_are_restored(fake_stream):
    cfg = _config("none", layers=1, unsup_updates=0, sup_updates=100, threads=2)
    trainer = Trainer(cfg, stream=fake_stream())
    assert trainer.kernel.n_threads == 2
    before = torch.get_num_threads()
    trainer.run(progress=False)
    assert torch.get_num_threads() == 2  # threads > 0 also sets PyTorch's (outside the loop)
    torch.set_num_threads(before)
    # auto: at most the cores available, at most 2, and here the fixture's numba limit of 1
    assert Trainer(_config("none", layers=1, unsup_updates=0, sup_updates=100, threads=0),
                   stream=fake_stream()).kernel.n_threads == 1


def test_reference_kernel_threads_are_torch_threads():
    before = torch.get_num_threads()
    try:
        kernels.get("reference", "cpu", threads=2)
        assert torch.get_num_threads() == 2
        kernels.get("reference", "cpu", threads=0)  # 0 leaves PyTorch's setting
        assert torch.get_num_threads() == 2
        assert kernels.get("auto", "cpu", threads=1).n_threads == 1  # numba: its own threads
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_draws_in_the_producer_thread_and_one_torch_thread_in_the_loop(fake_stream, monkeypatch):
    """Issue 5: the noise draws are computed in the producer thread, ahead of the kernel; with the
    numba kernel the PyTorch ops of the loop (forward through fixed layers) use one thread."""
    import threading

    from onlinedeep.training import draws as trainer_module

    draw_threads, torch_threads = [], []
    from onlinedeep import model

    masking_keep, hidden_forward = trainer_module.noise.masking_keep, model.hidden_forward

    def recording_keep(*args, **kw):
        draw_threads.append(threading.current_thread().name)
        return masking_keep(*args, **kw)

    def recording_forward(*args, **kw):
        torch_threads.append(torch.get_num_threads())
        return hidden_forward(*args, **kw)

    monkeypatch.setattr(trainer_module.noise, "masking_keep", recording_keep)
    monkeypatch.setattr(model, "hidden_forward", recording_forward)
    before = torch.get_num_threads()
    try:
        cfg = _config("dae", threads=2, sup_updates=100)
        trainer = Trainer(cfg, stream=fake_stream())
        trainer.run(progress=False)
        assert torch.get_num_threads() == 2  # restored after the loop to the configured count
    finally:
        torch.set_num_threads(before)
    # one draw per pre-training chunk, all in the producer thread
    assert draw_threads == ["onlinedeep-producer"] * len(phases.chunk_ranges(cfg, 0, cfg.unsup_updates))
    assert torch_threads and set(torch_threads) == {1}
