"""The InfiniteMNIST stream: index layout, labels, determinism, large indices, the NumPy twins, the
PyTorch adapters. On the embedded sample in the MNIST layout (``digits``), except where noted."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numba
import numpy as np
import pytest
import torch

from infinite_mnist import InfiniteMNIST, Schedule, to_float
from infinite_mnist import reference as R
from infinite_mnist.torch_data import InfiniteMNISTDataset, ScheduleIterable

pytestmark = pytest.mark.filterwarnings("ignore:.*checksum is not the official one")

BIG = np.array([2**32 - 1, 2**32, 2**32 + 70_001, 2**40 + 12_345, 2**62 + 7, 2**63 - 1], np.int64)


@pytest.fixture(scope="module")
def digits(sample_mnist):
    return sample_mnist


@pytest.fixture(scope="module")
def digits_dir(sample_mnist_dir):
    return sample_mnist_dir


@pytest.fixture(scope="module")
def stream(digits):
    return InfiniteMNIST(digits)


@pytest.fixture(scope="module")
def elastic(digits):
    return InfiniteMNIST(digits, mode="elastic")


def test_index_layout_and_labels(stream, digits):
    idx = np.array([0, 1, 9_999, 10_000, 10_001, 69_999], np.int64)
    images, labels = stream.examples(idx)
    expected = np.stack([digits.test_images[0], digits.test_images[1], digits.test_images[9_999],
                         digits.train_images[0], digits.train_images[1], digits.train_images[59_999]])
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, [digits.test_labels[0], digits.test_labels[1],
                                           digits.test_labels[9_999], digits.train_labels[0],
                                           digits.train_labels[1], digits.train_labels[59_999]])
    assert images.shape == (6, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.uint8


@pytest.mark.parametrize("mode", ["first-order", "elastic"])
def test_deformations_carry_the_label_of_their_training_digit(digits, mode):
    s = InfiniteMNIST(digits, mode=mode)
    idx = np.concatenate([np.arange(70_000, 72_000), BIG])
    a = (idx - 10_000) % 60_000
    np.testing.assert_array_equal(s.labels(idx), digits.train_labels[a])
    images = s.images(idx)
    changed = (images != digits.train_images[a]).any(axis=(1, 2))
    assert changed.mean() > 0.99
    # Still the same digit: closer to its own base digit than to the others on average.
    base = digits.train_images[a].astype(np.float32)
    own = np.abs(images.astype(np.float32) - base).mean()
    other = np.abs(images.astype(np.float32) - np.roll(base, 1, axis=0)).mean()
    assert own < 0.8 * other


def test_same_digit_gets_different_deformations(stream):
    idx = 70_000 + 60_000 * np.arange(50)  # fifty deformations of training digit 0
    images = stream.images(idx).reshape(50, -1)
    assert len({img.tobytes() for img in images}) == 50


@pytest.mark.parametrize("mode", ["first-order", "elastic"])
def test_kernel_equals_numpy_twin_bit_for_bit(digits, mode):
    for translate in (True, False):
        s = InfiniteMNIST(digits, mode=mode, translate=translate, alpha=40.0)
        idx = np.concatenate([np.arange(70_000, 73_000), BIG])
        fn = R.first_order_numpy if mode == "first-order" else R.elastic_numpy
        expected = fn(idx, digits.train_images, 10_000, s._fields, s.alpha, translate, s._key)
        np.testing.assert_array_equal(s.images(idx), expected)


def test_translation_cases_shift_by_one_pixel_with_zeros(digits):
    shifted = InfiniteMNIST(digits, alpha=0.0, translate=True)
    idx = np.arange(70_000, 70_500)
    from infinite_mnist.kernels import deformation_choice
    _, _, case = deformation_choice(idx, shifted._key, shifted.n_fields)
    assert set(case.tolist()) == set(range(9))
    base = digits.train_images[(idx - 10_000) % 60_000]
    out = shifted.images(idx)
    for e in range(len(idx)):
        dr, dc = case[e] // 3 - 1, case[e] % 3 - 1
        expected = np.zeros((28, 28), np.uint8)
        expected[max(0, dr):28 + min(0, dr), max(0, dc):28 + min(0, dc)] = \
            base[e][max(0, -dr):28 - max(0, dr), max(0, -dc):28 - max(0, dc)]
        np.testing.assert_array_equal(out[e], expected, err_msg=f"case {case[e]}")
    unshifted = InfiniteMNIST(digits, alpha=0.0, translate=False)
    np.testing.assert_array_equal(unshifted.images(idx), base)


@pytest.mark.parametrize("mode", ["first-order", "elastic"])
def test_same_bytes_whatever_the_batch_split_order_and_threads(digits, mode):
    s = InfiniteMNIST(digits, mode=mode)
    idx = np.concatenate([np.arange(69_990, 72_000), BIG])
    whole = s.images(idx)
    pieces = np.concatenate([s.images(idx[k:k + 7]) for k in range(0, len(idx), 7)])
    np.testing.assert_array_equal(pieces, whole)
    perm = np.random.default_rng(0).permutation(len(idx))
    np.testing.assert_array_equal(s.images(idx[perm]), whole[perm])
    single = np.stack([s.images([i])[0] for i in idx[::97]])
    np.testing.assert_array_equal(single, whole[::97])
    old = numba.get_num_threads()
    try:
        for n_threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n_threads)
            np.testing.assert_array_equal(s.images(idx), whole)
    finally:
        numba.set_num_threads(old)


def _digest(stream, idx):
    return hashlib.sha256(stream.images(idx).tobytes() + stream.labels(idx).tobytes()).hexdigest()


def test_same_bytes_in_another_process(stream, digits_dir):
    idx = np.concatenate([np.arange(69_000, 71_000), BIG])
    code = (
        "import sys, json, hashlib, warnings, numpy as np, numba\n"
        "warnings.simplefilter('ignore')\n"
        "numba.set_num_threads(1)\n"
        "from infinite_mnist import InfiniteMNIST\n"
        "idx = np.array(json.loads(sys.argv[2]), np.int64)\n"
        "s = InfiniteMNIST(sys.argv[1])\n"
        "print(hashlib.sha256(s.images(idx).tobytes() + s.labels(idx).tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(digits_dir), json.dumps(idx.tolist())],
                         capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == _digest(stream, idx)


_SEEDS = [0, 3, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


def test_every_seed_works_in_any_order_in_one_process(digits_dir):
    # The kernels are specialised on the type of their hash key at the first call; the key was a
    # Python int (int64 when small), so seed 0 then seed 3 (key >= 2**63) overflowed. A fresh
    # process, since this one may already hold specialisations from other tests.
    code = (
        "import sys, json, hashlib, warnings, numpy as np\n"
        "warnings.simplefilter('ignore')\n"
        "from infinite_mnist import InfiniteMNIST, load_mnist\n"
        "m = load_mnist(sys.argv[1])\n"
        "idx = np.array([70_000, 123_456_789], np.int64)\n"
        "out = {}\n"
        "for order in (json.loads(sys.argv[2]), json.loads(sys.argv[2])[::-1]):\n"
        "    for mode in ('first-order', 'elastic'):\n"
        "        for seed in order:\n"
        "            d = hashlib.sha256(InfiniteMNIST(m, mode=mode, seed=seed).images(idx).tobytes())\n"
        "            out.setdefault(f'{mode} {seed}', set()).add(d.hexdigest())\n"
        "print(json.dumps({k: len(v) for k, v in out.items()}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(digits_dir), json.dumps(_SEEDS)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    counts = json.loads(res.stdout)
    assert len(counts) == 2 * len(_SEEDS) and set(counts.values()) == {1}  # same bytes both orders


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "3"])
def test_bad_seed_is_refused_before_mnist_is_read(seed):
    with pytest.raises(ValueError, match=r"seed: expected an integer in \[0, 2\*\*64 - 1\]"):
        InfiniteMNIST("/nonexistent", seed=seed)


def test_floats_of_no_index_is_an_empty_float32_array(stream):
    f = stream.floats([])
    assert f.shape == (0, 784) and f.dtype == np.float32
    assert to_float(np.zeros((0, 28, 28), np.uint8)).shape == (0, 784)


def test_seed_changes_the_deformations_but_not_the_undeformed_digits(digits, stream):
    other = InfiniteMNIST(digits, seed=1)
    np.testing.assert_array_equal(other.images(np.arange(0, 70_000, 997)),
                                  stream.images(np.arange(0, 70_000, 997)))
    idx = np.arange(70_000, 70_100)
    assert (other.images(idx) != stream.images(idx)).any(axis=(1, 2)).mean() > 0.95


def test_to_float_is_the_correctly_rounded_quotient_of_every_byte():
    from infinite_mnist.stream import _TO_FLOAT

    every = np.resize(np.arange(256, dtype=np.uint8), (3, 784))
    got = to_float(every)
    assert got.dtype == np.float32 and got.shape == (3, 784)
    assert np.array_equal(got.view(np.uint32), _TO_FLOAT[every].view(np.uint32))
    exact = np.arange(256, dtype=np.float64) / 255.0  # the nearest float32 to each quotient
    assert np.array_equal(to_float(np.arange(256, dtype=np.uint8)[:, None])[:, 0],
                          exact.astype(np.float32))


def test_batch_floats_out_and_to_float(stream):
    images, labels = stream.batch(69_998, 5)
    np.testing.assert_array_equal(images, stream.images(np.arange(69_998, 70_003)))
    np.testing.assert_array_equal(labels, stream.labels(np.arange(69_998, 70_003)))
    f = stream.floats(np.arange(69_998, 70_003))
    assert f.shape == (5, 784) and f.dtype == np.float32
    np.testing.assert_array_equal(f, images.reshape(5, 784).astype(np.float32) / np.float32(255))
    assert to_float(np.array([[0, 255, 51]], np.uint8)).tolist() == [[0.0, 1.0, np.float32(0.2)]]
    buf = np.full((5, 784), 7, np.uint8)
    assert stream.images(np.arange(69_998, 70_003), out=buf) is buf
    np.testing.assert_array_equal(buf, images.reshape(5, 784))
    top = np.iinfo(np.int64).max  # the last stream index is a batch's last index too
    np.testing.assert_array_equal(stream.batch(top - 1, 2)[0], stream.images([top - 1, top]))
    with pytest.raises(ValueError, match="beyond 2\\^63 - 1"):
        stream.batch(top, 2)


def test_bad_arguments(stream, digits):
    with pytest.raises(ValueError, match="expected indices >= 0, found -3 at position 1"):
        stream.images([5, -3])
    with pytest.raises(ValueError, match="out: expected a C-contiguous"):
        stream.images([1, 2], out=np.empty((3, 784), np.uint8))
    with pytest.raises(TypeError, match="expected integers"):
        stream.images(np.array([1.5]))
    with pytest.raises(ValueError, match="mode"):
        InfiniteMNIST(digits, mode="infimnist")
    with pytest.raises(TypeError, match="expected uint8"):
        to_float(np.zeros((1, 784), np.float32))
    with pytest.raises(ValueError, match="start >= 0"):
        stream.batch(-1, 3)


def test_provenance_is_json_and_records_source_and_settings(stream):
    prov = stream.provenance()
    json.dumps(prov)
    assert prov["mode"] == "first-order" and prov["alpha"] == "34.0" and prov["translate"] == "true"
    assert prov["mnist.official:train-images-idx3-ubyte.gz"] == "false"


def test_torch_adapters_match_the_stream(stream):
    sched = Schedule.contiguous(5_000, start=49_000)
    ds = ScheduleIterable(stream, sched, start=100, count=2_500, chunk_size=1_000)
    chunks = list(torch.utils.data.DataLoader(ds, batch_size=None))
    x = torch.cat([c[0] for c in chunks])
    y = torch.cat([c[1] for c in chunks])
    idx = sched.indices(100, 2_500)
    assert [len(c[1]) for c in chunks] == [1_000, 1_000, 500]
    np.testing.assert_array_equal(x.numpy(), stream.floats(idx))
    np.testing.assert_array_equal(y.numpy(), stream.labels(idx))
    assert y.dtype == torch.int64
    mapped = InfiniteMNISTDataset(stream, idx[:64])
    xb, yb = next(iter(torch.utils.data.DataLoader(mapped, batch_size=16)))
    np.testing.assert_array_equal(xb.numpy(), stream.floats(idx[:16]))
    np.testing.assert_array_equal(yb.numpy(), stream.labels(idx[:16]))
    assert mapped[-1][1].item() == stream.labels(idx[63:64])[0]
    with pytest.raises(IndexError):
        mapped[64]


def test_real_mnist_layout(mnist):
    """On the real files: the famous first labels, test digits first, then the training digits."""
    s = InfiniteMNIST(mnist)
    assert s.labels([0, 10_000, 10_001, 10_002, 10_003, 10_004]).tolist() == [7, 5, 0, 4, 1, 9]
    np.testing.assert_array_equal(s.images([10_000, 0]), [mnist.train_images[0], mnist.test_images[0]])


def test_a_path_is_accepted_in_place_of_the_digits(stream, digits_dir):
    idx = np.array([5, 70_001, 2**40], np.int64)
    for path in (str(digits_dir), digits_dir):
        np.testing.assert_array_equal(InfiniteMNIST(path).images(idx), stream.images(idx))
    with pytest.raises(TypeError, match="got a directory twice"):
        InfiniteMNIST(digits_dir, mnist_dir=digits_dir)
    with pytest.raises(TypeError, match=r"mnist: expected MnistData \(from load_mnist\) or the path "
                                        r"of the MNIST directory, found int"):
        InfiniteMNIST(42)


@pytest.mark.parametrize("mode", ["first-order", "elastic"])
def test_serial_generation_gives_the_same_bytes(digits, mode):
    s = InfiniteMNIST(digits, mode=mode)
    idx = np.concatenate([np.arange(0, 70_000, 4_999), np.arange(70_000, 70_300), BIG])
    np.testing.assert_array_equal(s.images(idx, parallel=False), s.images(idx))
    np.testing.assert_array_equal(s.labels(idx, parallel=False), s.labels(idx))


def _generate_in_child(stream, idx, queue):
    from infinite_mnist import kernels

    queue.put((kernels.thread_pool_usable(), _digest(stream, idx)))


def test_a_process_forked_after_generation_still_generates(stream):
    """GNU OpenMP does not survive fork(): a child of a process that has generated on the thread
    pool used to die ("fork() called from a process already using GNU OpenMP")."""
    import multiprocessing

    idx = np.arange(70_000, 70_500)
    expected = _digest(stream, idx)  # the pool runs in this process now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_generate_in_child, args=(stream, idx, queue))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == (False, expected)


def test_torch_adapters_with_worker_processes(stream):
    """The obvious user code: generate in the main process, then a DataLoader with workers."""
    from infinite_mnist import InfiniteMNISTDataset as ExportedDataset
    from infinite_mnist import ScheduleIterable as ExportedIterable

    assert ExportedDataset is InfiniteMNISTDataset and ExportedIterable is ScheduleIterable
    idx = Schedule.contiguous(1_000, start=123).resample(300, 400, 9).indices(0, 1_000)
    expected_x, expected_y = stream.floats(idx), stream.labels(idx)  # uses the pool here first
    loader = torch.utils.data.DataLoader(InfiniteMNISTDataset(stream, idx), batch_size=100,
                                         num_workers=2)
    batches = list(loader)
    np.testing.assert_array_equal(torch.cat([b[0] for b in batches]).numpy(), expected_x)
    np.testing.assert_array_equal(torch.cat([b[1] for b in batches]).numpy(), expected_y)
    sched = Schedule.contiguous(1_000, start=123).resample(300, 400, 9)
    chunks = list(torch.utils.data.DataLoader(ScheduleIterable(stream, sched, chunk_size=128),
                                              batch_size=None, num_workers=2))
    np.testing.assert_array_equal(torch.cat([c[0] for c in chunks]).numpy(), expected_x)
    np.testing.assert_array_equal(torch.cat([c[1] for c in chunks]).numpy(), expected_y)
