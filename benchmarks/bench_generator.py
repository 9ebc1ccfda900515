"""Throughput of the InfiniteMNIST generator, with baselines measured in the same run.

Prints examples/s of the Numba kernels (first-order and elastic modes) at 1 and 2 threads, and the
ratio to (a) the pure-NumPy version of the same formula (``infinite_mnist.reference``, vectorised
over the chunk) and (b) albumentations' ``ElasticTransform`` on 28 x 28 digits, one call per digit
(albumentations is installed for the benchmark only: ``pip install albumentations``).

Usage::

    ONLINEDEEP_MNIST_DIR=../shared/data/mnist python benchmarks/bench_generator.py [--seconds 1.5]

The machine may be shared: each figure is the best of ``--repeats`` timed runs of at least
``--seconds`` each, and the ratios compare figures measured minutes apart in the same process.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numba
import numpy as np

from infinite_mnist import InfiniteMNIST, load_mnist
from infinite_mnist import reference as R


def rate(fn, n_per_call: int, seconds: float, repeats: int) -> float:
    """Best examples/s over ``repeats`` runs, each calling ``fn`` until ``seconds`` have passed."""
    fn()  # warm-up (compilation, caches)
    best = 0.0
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
        best = max(best, calls * n_per_call / dt)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist-dir", default=None)
    parser.add_argument("--chunk", type=int, default=10_000, help="examples per call (trainer chunk)")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mnist = load_mnist(args.mnist_dir)
    print(f"MNIST source: {mnist.source} ({mnist.path}); numba {numba.__version__}, "
          f"{numba.config.NUMBA_NUM_THREADS} threads available; chunk {args.chunk} examples")

    results = {}
    pos = [70_000]

    def next_chunk():
        # Consecutive stream positions, as the trainer reads them.
        idx = np.arange(pos[0], pos[0] + args.chunk, dtype=np.int64)
        pos[0] += args.chunk
        return idx

    for mode in ("first-order", "elastic"):
        stream = InfiniteMNIST(mnist, mode=mode)
        out = np.empty((args.chunk, 784), np.uint8)
        for threads in (1, 2):
            if threads > numba.config.NUMBA_NUM_THREADS:
                continue
            numba.set_num_threads(threads)
            results[mode, threads] = rate(lambda: stream.images(next_chunk(), out=out), args.chunk,
                                          args.seconds, args.repeats)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        twin = R.first_order_numpy if mode == "first-order" else R.elastic_numpy
        n_np = min(args.chunk, 2_000)
        results[mode, "numpy"] = rate(
            lambda: twin(next_chunk()[:n_np], mnist.train_images, 10_000, stream._fields, stream.alpha,
                         True, stream._key), n_np, args.seconds, args.repeats)

    try:
        import albumentations as A
    except ImportError:
        A = None
        print("albumentations: NOT INSTALLED (pip install albumentations) - that comparison is skipped")
    if A is not None:
        transform = A.ElasticTransform(alpha=34.0, sigma=4.0, p=1.0, noise_distribution="uniform")
        digits = mnist.train_images[:1_000]

        def albu():
            for img in digits:
                transform(image=img)

        results["albumentations"] = rate(albu, len(digits), args.seconds, args.repeats)
        print(f"albumentations {A.__version__}: ElasticTransform(alpha=34, sigma=4, uniform noise), "
              "one 28x28 uint8 digit per call, 1 thread")

    print()
    print("| mode | threads | examples/s | x NumPy twin | x albumentations |")
    print("|---|---|---|---|---|")
    for mode in ("first-order", "elastic"):
        for threads in (1, 2):
            if (mode, threads) not in results:
                continue
            r = results[mode, threads]
            albu = f"{r / results['albumentations']:.0f}" if "albumentations" in results else "n/a"
            print(f"| {mode} | {threads} | {r:,.0f} | {r / results[mode, 'numpy']:.1f} | {albu} |")
        print(f"| {mode}, NumPy twin | 1 | {results[mode, 'numpy']:,.0f} | 1 | "
              + (f"{results[mode, 'numpy'] / results['albumentations']:.1f} |"
                 if "albumentations" in results else "n/a |"))
    if "albumentations" in results:
        print(f"| albumentations ElasticTransform | 1 | {results['albumentations']:,.0f} | | 1 |")
    load = os.getloadavg()
    busy = (" - above the CPU count: other processes compete for the cores"
            if load[0] > os.cpu_count() else "")
    print(f"\nload average (1, 5, 15 min) at the end: {tuple(round(v, 2) for v in load)} on "
          f"{os.cpu_count()} CPUs{busy}")
    target = results.get(("first-order", 2))
    if target is not None:
        print(f"first-order, 2 threads: {target:,.0f} examples/s "
              f"({'meets' if target >= 1e6 else 'BELOW'} the 1,000,000 examples/s target)")


if __name__ == "__main__":
    main()
