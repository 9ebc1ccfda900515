"""infimnist-compatible mode on small synthetic files: the exact arithmetic and the shifts."""
from __future__ import annotations

import numpy as np
import pytest

from infinite_mnist import InfiniteMNIST, MnistFormatError

pytestmark = pytest.mark.filterwarnings("ignore:.*checksum is not the official one")

N_TRAIN, N_TEST = 100, 20
F32 = np.float32


@pytest.fixture
def infimnist_dir(make_mnist_dir):
    d, arrays = make_mnist_dir(n_train=N_TRAIN, n_test=N_TEST, gz=False, name="infimnist")
    rng = np.random.default_rng(7)
    fields = rng.uniform(-1, 1, (1522, 784)).astype(F32)
    tangents = (rng.standard_normal((N_TRAIN, 2, 784)) * 150).astype(F32)
    fields.tofile(d / "fields_float_1522x28x28.bin")
    tangents.tofile(d / "tangVec_float_60000x28x28.bin")
    return d, arrays, fields, tangents


def spec_translate(img, case):
    """The shifts exactly as the issue words them, in place, byte by byte."""
    t = [int(v) for v in img]

    def up():
        for p in range(784):
            t[p] = t[p + 28] if p < 756 else 0

    def down():
        for p in range(783, -1, -1):
            t[p] = t[p - 28] if p >= 28 else 0

    def left():  # increasing order: byte p takes byte p+1; p % 28 == 0 and the last byte zeroed
        for p in range(784):
            t[p] = 0 if (p % 28 == 0 or p == 783) else t[p + 1]

    def right():  # decreasing order: byte p takes byte p-1; (p-1) % 28 == 0 and byte 0 zeroed
        for p in range(783, -1, -1):
            t[p] = 0 if (p == 0 or (p - 1) % 28 == 0) else t[p - 1]

    steps = {0: [up], 1: [down], 2: [left], 3: [right], 4: [up, left], 5: [up, right],
             6: [down, left], 7: [down, right], 8: []}[case]
    for step in steps:
        step()
    return np.array(t, np.uint8)


def spec_arithmetic(i, train, fields, tangents, alpha, fused=False):
    """Pixel values before the shift; ``fused`` emulates fused multiply-adds (to show sensitivity)."""
    k1 = ((i % 2**32) * 131071 % 2**32) % 1521
    k2 = (k1 + 1 + 2 * i) % 1522
    a = (i - N_TEST) % N_TRAIN
    al = F32(-alpha) if (k1 + k2) % 2 else F32(alpha)
    x = train[a].reshape(784).astype(F32)
    if fused:  # a·b - c·d with one rounding of the first product only, and x + al·d in one rounding
        d = (fields[k1].astype(np.float64) * tangents[a, 0] - (fields[k2] * tangents[a, 1])).astype(F32)
        v = (x.astype(np.float64) + np.float64(al) * d).astype(F32)
    else:
        d = F32(fields[k1] * tangents[a, 0]) - F32(fields[k2] * tangents[a, 1])
        v = x + F32(al * d)
    return np.trunc(np.clip(v, F32(0), F32(255))).astype(np.uint8), k1


def test_index_rule_and_arithmetic_match_the_spec(infimnist_dir):
    d, arrays, fields, tangents = infimnist_dir
    s = InfiniteMNIST.from_infimnist_dir(d, alpha=1.0, translate=False)
    idx = np.concatenate([np.arange(N_TEST + N_TRAIN, 4_000),
                          [2**32 - 1, 2**32, 2**32 + 12_345, 2**40 + 1, 2**62 + 3]]).astype(np.int64)
    out = s.images(idx).reshape(len(idx), 784)
    exact = np.stack([spec_arithmetic(int(i), arrays["train_images"], fields, tangents, 1.0)[0]
                      for i in idx])
    fused = np.stack([spec_arithmetic(int(i), arrays["train_images"], fields, tangents, 1.0, True)[0]
                      for i in idx])
    np.testing.assert_array_equal(out, exact)
    assert (fused != exact).any(), "the data must be able to tell fused from unfused arithmetic"
    np.testing.assert_array_equal(s.labels(idx), arrays["train_labels"][(idx - N_TEST) % N_TRAIN])


def test_undeformed_indices_and_layout(infimnist_dir):
    d, arrays, _, _ = infimnist_dir
    s = InfiniteMNIST.from_infimnist_dir(d)
    idx = np.arange(0, N_TEST + N_TRAIN)
    expected = np.concatenate([arrays["test_images"], arrays["train_images"]])
    np.testing.assert_array_equal(s.images(idx), expected)
    assert s.mode == "infimnist" and s.provenance()["mode"] == "infimnist"


def test_alpha_is_rounded_to_float32(infimnist_dir):
    d, arrays, fields, tangents = infimnist_dir
    s = InfiniteMNIST.from_infimnist_dir(d, alpha=0.3, translate=False)
    idx = np.arange(200, 1200)
    exact = np.stack([spec_arithmetic(int(i), arrays["train_images"], fields, tangents, 0.3)[0]
                      for i in idx])
    np.testing.assert_array_equal(s.images(idx).reshape(-1, 784), exact)


def test_translation_cases_match_the_spec_in_place_shifts(infimnist_dir):
    d, arrays, fields, tangents = infimnist_dir
    s = InfiniteMNIST.from_infimnist_dir(d, alpha=1.0, translate=True)
    idx, seen = [], set()
    for i in range(N_TEST + N_TRAIN, 10_000):  # two indices of each case k1 mod 9
        k1 = ((i % 2**32) * 131071 % 2**32) % 1521
        if sum(1 for c in seen if c[0] == k1 % 9) < 2:
            seen.add((k1 % 9, i))
            idx.append(i)
        if len(idx) == 18:
            break
    idx.append(2**32 + 5)
    out = s.images(np.array(idx, np.int64)).reshape(len(idx), 784)
    for e, i in enumerate(idx):
        pixels, k1 = spec_arithmetic(i, arrays["train_images"], fields, tangents, 1.0)
        np.testing.assert_array_equal(out[e], spec_translate(pixels, k1 % 9), err_msg=f"case {k1 % 9}")


def test_same_bytes_whatever_the_batch_split(infimnist_dir):
    d, _, _, _ = infimnist_dir
    s = InfiniteMNIST.from_infimnist_dir(d)
    idx = np.arange(100, 2_100)
    whole = s.images(idx)
    np.testing.assert_array_equal(np.concatenate([s.images(idx[k:k + 13]) for k in range(0, 2_000, 13)]),
                                  whole)
    np.testing.assert_array_equal(s.images(idx, parallel=False), whole)  # serial twin, same bytes


def test_wrong_sizes_are_rejected_with_the_file_named(infimnist_dir):
    d, _, fields, tangents = infimnist_dir
    tangents[:-1].tofile(d / "tangVec_float_60000x28x28.bin")
    with pytest.raises(MnistFormatError, match="tangVec_float_60000x28x28.bin: wrong size: expected "
                       f"{N_TRAIN * 2 * 784 * 4} bytes"):
        InfiniteMNIST.from_infimnist_dir(d)
    (d / "fields_float_1522x28x28.bin").write_bytes(fields[:1000].tobytes())
    with pytest.raises(MnistFormatError, match="fields_float_1522x28x28.bin: wrong size"):
        InfiniteMNIST.from_infimnist_dir(d)
    (d / "fields_float_1522x28x28.bin").unlink()
    with pytest.raises(FileNotFoundError, match="fields_float_1522x28x28.bin: missing"):
        InfiniteMNIST.from_infimnist_dir(d)
