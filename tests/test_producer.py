"""Producer thread: order, back-pressure, failure propagation, clean stop."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from onlinedeep.training.producer import Chunk, Producer, ProducerError, stream_fetcher


def _chunk(start, stop):
    n = stop - start
    idx = np.arange(start, stop, dtype=np.int64) + 70_000
    x = np.full((n, 784), start / 1e6, dtype=np.float32)
    return Chunk(start, stop, idx, x, (idx % 10).astype(np.uint8))


RANGES = [(i, i + 10) for i in range(0, 200, 10)]


def test_delivers_every_chunk_in_order():
    with Producer(_chunk, RANGES, maxsize=3) as producer:
        got = [(c.start, c.stop) for c in producer]
    assert got == RANGES
    c = _chunk(30, 40)
    assert list(c.positions) == list(range(30, 40)) and len(c) == 10


def test_back_pressure_bounds_prepared_chunks():
    fetched = []
    lock = threading.Lock()

    def fetch(a, b):
        with lock:
            fetched.append(a)
        return _chunk(a, b)

    producer = Producer(fetch, RANGES, maxsize=2).start()
    try:
        for _ in range(100):  # wait until the producer blocks on the full queue
            if len(fetched) >= 3:
                break
            time.sleep(0.01)
        time.sleep(0.2)
        # 2 queued + 1 waiting to be put; the rest is not generated while nobody consumes
        assert len(fetched) == 3
        assert producer.get().start == 0
        for _ in range(100):
            if len(fetched) >= 4:
                break
            time.sleep(0.01)
        time.sleep(0.1)
        assert len(fetched) == 4
    finally:
        producer.close()
    assert not producer.alive


def test_failure_reaches_the_consumer_before_queued_chunks():
    failed = threading.Event()

    def fetch(a, b):
        if a == 30:
            failed.set()
            raise ValueError("generator exploded")
        return _chunk(a, b)

    producer = Producer(fetch, RANGES, maxsize=8).start()
    try:
        assert failed.wait(5)
        time.sleep(0.05)
        # chunks 0, 10, 20 are queued, but the failure is reported first
        with pytest.raises(ProducerError, match=r"positions \[30, 40\).*generator exploded") as err:
            producer.get()
        assert isinstance(err.value.__cause__, ValueError)
    finally:
        producer.close()


def test_failure_while_consumer_waits():
    release = threading.Event()

    def fetch(a, b):
        release.wait(5)
        raise OSError("disk gone")

    producer = Producer(fetch, RANGES, maxsize=2).start()
    threading.Timer(0.1, release.set).start()
    with pytest.raises(ProducerError, match="disk gone"):
        producer.get()
    producer.close()


def test_close_unblocks_a_producer_on_a_full_queue():
    producer = Producer(_chunk, RANGES * 50, maxsize=1).start()
    time.sleep(0.05)
    producer.close()
    assert not producer.alive
    producer.close()  # twice is fine


def test_keyboard_interrupt_in_consumer_stops_producer():
    producer = Producer(_chunk, RANGES * 50, maxsize=2)
    with pytest.raises(KeyboardInterrupt):
        with producer:
            for chunk in producer:
                if chunk.start == 50:
                    raise KeyboardInterrupt
    assert not producer.alive


def test_fetch_returning_the_wrong_range_is_an_error():
    with pytest.raises(ProducerError, match=r"fetch\(10, 20\) returned a chunk for \[0, 10\)"):
        with Producer(lambda a, b: _chunk(0, 10) if a == 10 else _chunk(a, b), RANGES) as p:
            list(p)


class _Stream:
    def __init__(self, shape=(784,), dtype=np.float32):
        self.shape, self.dtype = shape, dtype

    def floats(self, idx):
        return np.zeros((len(idx), *self.shape), dtype=self.dtype)

    def labels(self, idx):
        return (np.asarray(idx) % 10).astype(np.uint8)


class _Schedule:
    def indices(self, position, count):
        return np.arange(position, position + count, dtype=np.int64) + 70_000


def test_stream_fetcher_builds_and_checks_chunks():
    chunk = stream_fetcher(_Stream(), _Schedule(), n_inputs=784)(5, 12)
    assert (chunk.start, chunk.stop) == (5, 12)
    assert chunk.x.shape == (7, 784) and chunk.x.dtype == np.float32
    assert list(chunk.indices) == list(range(70_005, 70_012))
    assert list(chunk.labels) == [i % 10 for i in range(70_005, 70_012)]
    with pytest.raises(ValueError, match=r"expected \(7, 784\) float32, found \(7, 28, 28\) float32"):
        stream_fetcher(_Stream(shape=(28, 28)), _Schedule(), n_inputs=784)(5, 12)
    with pytest.raises(ValueError, match="float64"):
        stream_fetcher(_Stream(dtype=np.float64), _Schedule(), n_inputs=784)(5, 12)
