"""How many CPU threads each part of a run uses: decided here, and only here.

A run has four kinds of CPU work, each with its own thread count (:func:`decide`):

``"kernel"``
    A kernel that runs its own threads (``Kernel.owns_threads``, the Numba kernel): the threads of
    each weight sweep. They never change the weights, only the speed.
``"torch"``
    PyTorch's process-wide intra-op threads, used by the PyTorch kernels and by evaluation
    (``model.predict_proba``). MKL's sgemm gives different bits for some row counts on 1 and 2
    threads, so this count is part of what a run computes: it is set only when asked for.
``"loop-torch"``
    PyTorch's threads *inside* the training loop of a kernel that owns its threads (the forward
    through the fixed layers below a pre-trained layer): one, so that the weights of a run do not
    depend on ``threads`` (a run may resume with another count) and a second thread pool does not
    compete with the kernel's for the cores.
``"generator"``
    Numba threads of the producer thread that generates the stream: one. Generation runs far ahead
    of training on one thread; a parallel generator would take cores from the kernel, whose threads
    wait for each other at every layer.
``"job"``
    Threads of one job of an experiment run by ``jobs`` local worker processes: the cores shared out.
    :func:`local_jobs` picks ``jobs`` so that jobs × threads = cores.

When the kernel's count is auto (``threads=0``, no ``$ONLINEDEEP_NUMBA_THREADS``), the training loop
also lets :class:`KernelThreads` change it between chunks, from the updates/s it measures and the
load other processes put on the machine: a row-split sweep waits at its barrier for the scheduler
when another process holds a core, and is then slower than one thread (0.6-0.9× with the kernel's
spinning barrier; 15-100× with the ``prange`` per sweep it replaced), while on a quiet machine two
threads run at 1.4-1.9× of one. The weights do not depend on the count, so this changes the speed
only.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time
import warnings
from collections import deque
from typing import Callable, Hashable, Iterator

__all__ = ["AUTO_CAP", "ROLES", "CoresWarning", "available_cores", "decide", "local_jobs",
           "torch_threads", "set_job_threads", "KernelThreads", "kernel_controller", "other_load"]

AUTO_CAP = 2
"""Most threads ``"kernel"`` picks when none are asked for: more than two were never measured to
pay at batch size 1 (every sweep ends at a barrier)."""

ROLES = ("kernel", "torch", "loop-torch", "generator", "job")
ENV = "ONLINEDEEP_NUMBA_THREADS"
_KERNEL_MAX = 4  # the Numba kernel cuts every sweep into 4 row blocks: more threads would idle


class CoresWarning(UserWarning):
    """An experiment asked for more threads (jobs × threads) than the machine's cores."""


def available_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _env_threads() -> int | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV} must be an integer >= 1, found {value!r}")
    return n


def decide(role: str, requested: int = 0, *, jobs: int = 1) -> int | None:
    """The thread count of one kind of CPU work.

    Parameters
    ----------
    role : {"kernel", "torch", "loop-torch", "generator", "job"}
        See the module docstring.
    requested : int
        What the user asked for (``--threads``, ``RunConfig.threads``), 0 = auto.
    jobs : int
        Local worker processes sharing the machine (role ``"job"``).

    Returns
    -------
    int or None
        ``"kernel"``: ``requested`` (at most 4), else ``$ONLINEDEEP_NUMBA_THREADS`` or the cores
        available capped at :data:`AUTO_CAP` and at the calling thread's Numba limit (at most 4). ``"torch"``: ``requested``, or None (leave PyTorch's setting).
        ``"loop-torch"`` and ``"generator"``: 1. ``"job"``: ``requested``, else the cores divided
        by ``jobs`` (at least 1).

    Raises
    ------
    ValueError
        On an unknown role, a negative ``requested``, or an invalid ``$ONLINEDEEP_NUMBA_THREADS``.
    """
    if isinstance(requested, bool) or int(requested) != requested or requested < 0:
        raise ValueError(f"threads must be an integer >= 0 (0: auto), found {requested!r}")
    requested = int(requested)
    if role == "kernel":
        import numba

        if requested:
            return min(requested, _KERNEL_MAX)
        n = _env_threads()
        if n is None:
            # the calling thread's Numba limit is a job's share of the cores (set_job_threads)
            n = min(available_cores(), AUTO_CAP, numba.get_num_threads())
        return max(1, min(n, _KERNEL_MAX))
    if role == "torch":
        return requested or None
    if role in ("loop-torch", "generator"):
        return 1
    if role == "job":
        return requested or max(1, available_cores() // max(1, int(jobs)))
    raise ValueError(f"role: expected one of {ROLES}, found {role!r}")


def local_jobs(requested: int = 0, threads: int = 0, pending: int | None = None) -> int:
    """Local worker processes of an experiment: ``requested``, else enough jobs of ``threads``
    threads each (0: 1) to fill the cores (jobs × threads = cores, at least one job), and no more
    than the ``pending`` jobs left to run when that is given.

    One-thread jobs side by side scale with the cores (each is a serial loop with no barrier),
    where the threads of one job wait for each other at every layer of every update.

    Warns
    -----
    CoresWarning
        When ``requested`` jobs of ``threads`` (> 1) threads each need more threads than the
        cores: every job's threads would then wait for each other at every update.

    Raises
    ------
    ValueError
        If ``requested`` or ``threads`` is not an integer >= 0.
    """
    for name, value in (("jobs", requested), ("threads", threads)):
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{name} must be an integer >= 0 (0: auto), found {value!r}")
    cores = available_cores()
    if requested and threads > 1 and requested * threads > cores:
        warnings.warn(
            f"{requested} jobs x {threads} threads = {requested * threads} threads on {cores} "
            f"cores: the threads of a job wait for each other at every update, and many times "
            f"longer when other jobs hold their cores; --jobs {max(1, cores // threads)} or "
            f"--threads {max(1, cores // requested)} fits the cores", CoresWarning, stacklevel=2)
    if requested:
        return int(requested)
    n = max(1, cores // max(1, int(threads)))
    return n if pending is None else max(1, min(n, int(pending)))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``n`` inside the block and restored after (None: unchanged)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def set_job_threads(n: int | None) -> None:
    """Set PyTorch's and the calling thread's Numba threads for the rest of a job (None: unchanged)."""
    if n is None:
        return
    import numba
    import torch

    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


# --------------------------------------------------------------------------- adaptive kernel threads
def _busy_seconds() -> float | None:
    """CPU seconds all cores have spent busy (``/proc/stat``: user, nice, system, irq, softirq and
    steal time); None where unreadable. Niced work counts: a row-split sweep waits at its barrier
    for any process that takes its core, whatever that process's priority."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    except (OSError, ValueError, IndexError):
        return None
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


try:
    _CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):
    _CLOCK_TICKS = 100.0


class _LoadMeter:
    """Cores kept busy by other processes, averaged over the last ``span`` seconds or more."""

    def __init__(self, span: float = 0.5, busy: Callable[[], float | None] | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 own_cpu: Callable[[], float] = time.process_time):
        self._busy = busy if busy is not None else _busy_seconds
        self._clock, self._own_cpu, self._span = clock, own_cpu, span
        self._samples: deque = deque(maxlen=256)
        self.sample()

    def sample(self) -> None:
        busy = self._busy()
        if busy is not None:
            self._samples.append((self._clock(), busy, self._own_cpu()))

    def load(self) -> float | None:
        """Other processes' busy cores since the newest sample at least ``span`` s old (None:
        unknown)."""
        if len(self._samples) < 2:
            return None
        t1, busy1, own1 = self._samples[-1]
        old = None
        for sample in reversed(self._samples):
            if t1 - sample[0] >= self._span:
                old = sample
                break
        if old is None:
            old = self._samples[0]
        t0, busy0, own0 = old
        if t1 - t0 <= 0:
            return None
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))


def other_load(seconds: float = 0.5) -> float | None:
    """Cores kept busy by other processes over the next ``seconds`` (``/proc/stat`` minus this
    process's CPU time; None where ``/proc/stat`` cannot be read). Blocks ``seconds``."""
    meter = _LoadMeter(span=seconds)
    time.sleep(seconds)
    meter.sample()
    return meter.load()


class KernelThreads:
    """The thread count of a kernel that owns its threads, chosen between chunks from measurement.

    The loop asks :meth:`choose` for the count of its next chunk and reports the chunk's updates and
    seconds to :meth:`record`. Two counts compete: 1 and ``n_max``. The controller starts on one
    thread and runs at the count whose measured updates/s (median of the last three chunks of the
    same work, ``key``) is higher; the other count is tried ("probed") now and then:

    - *Up* (1 → ``n_max``) is a risk: with a core held by another process a row-split chunk is
      slower (0.6-0.9× measured; 15-100× with the ``prange`` per sweep of earlier kernels). A probe up happens only while other processes leave ``n_max`` cores free
      (their load, from ``load``, at most ``cores - n_max + busy_threshold`` busy cores) for the
      last ``settle_s`` seconds of chunks, at least ``interval`` chunks after the last probe and
      after enough time that the chunks a lost probe cost are at most ``budget`` of the time in
      between; the interval doubles after each lost probe
      (up to ``max_interval``) and is reset when the load drops. A probe lasts two chunks (the first
      also starts the kernel's helper threads) and stops after one running below half the one-thread rate.
      So a bad probe costs at most one chunk, and lost probes at most ``budget`` of the run.
    - *Down* (``n_max`` → 1) is harmless: at ``n_max``, a chunk slower than ``drop`` × the recent
      ``n_max`` rate, or a load above the threshold, switches to one thread at once; and one chunk
      in ``down_interval`` runs on one thread to keep its rate current.

    A probed count is kept only if it is at least ``margin`` × faster. Nothing here changes the
    weights: the kernel's sums do not depend on its thread count, and chunks are cut as before.

    Parameters
    ----------
    n_max : int
        The larger count (>= 2), e.g. ``decide("kernel")``.
    interval, max_interval, down_interval : int
        Chunks between probes up (first, largest) and between one-thread chunks at ``n_max``.
    margin, drop, busy_threshold, budget, settle_s : float
        See above; ``busy_threshold`` in cores, ``budget`` a fraction of the run's time,
        ``settle_s`` in seconds.
    cores : int, optional
        Cores of this process (default :func:`available_cores`).
    load : callable, optional
        Returns the cores other processes kept busy lately (None: unknown, probes allowed);
        called once per chunk. Default: ``/proc/stat`` less this process's CPU time, over the
        last half second or more.

    Attributes
    ----------
    current : int
        The count the controller runs at between probes.
    history : list of int
        The count of every chunk, in order.

    Raises
    ------
    ValueError
        If ``n_max`` < 2.
    """

    def __init__(self, n_max: int, *, interval: int = 2, max_interval: int = 256,
                 down_interval: int = 32, margin: float = 1.05, drop: float = 0.6,
                 busy_threshold: float = 0.5, budget: float = 0.03, settle_s: float = 2.0,
                 cores: int | None = None,
                 load: Callable[[], float | None] | None = None):
        if isinstance(n_max, bool) or int(n_max) != n_max or n_max < 2:
            raise ValueError(f"n_max must be an integer >= 2, found {n_max!r}")
        self.n_max = int(n_max)
        self.interval0, self.max_interval, self.down_interval = interval, max_interval, down_interval
        self.margin, self.drop, self.budget, self.settle_s = margin, drop, budget, settle_s
        cores = available_cores() if cores is None else cores
        self.busy_cores = max(0, cores - self.n_max) + busy_threshold
        if load is None:
            meter = _LoadMeter()

            def load() -> float | None:
                meter.sample()
                return meter.load()
        self._load = load
        self.current = 1
        self.interval = interval
        self.history: list[int] = []
        self._key: Hashable = None
        self._rates: dict[int, deque] = {}
        self._since = 0         # chunks since the last probe (or switch)
        self._since_s = 0.0     # their seconds
        self._wait_s = 0.0      # seconds to run before the next probe up (pays for a lost one)
        self._probe: list[tuple[int, float]] | None = None  # (updates, seconds) of the probe's chunks
        self._chunk = 1
        self._busy = False
        self._quiet_s = 0.0     # seconds of chunks since the load was last above the threshold

    def _median(self, n: int) -> float | None:
        rates = self._rates.get(n)
        return statistics.median(rates) if rates else None

    def choose(self, key: Hashable = None) -> int:
        """Thread count for the next chunk; ``key`` names the work (e.g. the phase and layer):
        rates are compared only within one key."""
        if key != self._key:
            self._key, self._rates, self._probe = key, {}, None
        if self._probe is None:
            if self.current == 1:
                if (self._since >= self.interval and self._since_s >= self._wait_s
                        and self._quiet_s >= self.settle_s and self._median(1) is not None):
                    self._probe = []
            elif self._since >= self.down_interval:
                self._probe = []
        other = self.n_max if self.current == 1 else 1
        self._chunk = other if self._probe is not None else self.current
        self.history.append(self._chunk)
        return self._chunk

    def record(self, n_updates: int, seconds: float) -> None:
        """Report the chunk just run at the count :meth:`choose` returned: ``n_updates`` updates
        in ``seconds`` seconds of wall time."""
        load = self._load()
        was_busy, self._busy = self._busy, load is not None and load > self.busy_cores
        if was_busy and not self._busy:  # the machine freed up: try more threads soon
            self.interval, self._wait_s = self.interval0, 0.0
        self._quiet_s = 0.0 if self._busy else self._quiet_s + max(0.0, seconds)
        if n_updates <= 0 or seconds <= 0:
            return
        rate = n_updates / seconds
        n = self._chunk
        self._rates.setdefault(n, deque(maxlen=3)).append(rate)
        self._since += 1
        self._since_s += seconds
        if self._probe is None:
            if n == self.n_max:
                recent = self._median(self.n_max)
                if self._busy or (recent is not None and rate < self.drop * recent):
                    self._switch(1)
            return
        self._probe.append((n_updates, seconds))
        base = self._median(self.current)
        if n == self.n_max:  # probe up
            if base is not None and rate < 0.5 * base:
                self._lose(base)  # a bad first chunk: stop at once
            elif len(self._probe) >= 2:
                if base is None or rate > self.margin * base:
                    self._switch(self.n_max)
                    self.interval, self._wait_s = self.interval0, 0.0
                else:
                    self._lose(base)
        else:  # the one chunk on one thread while at n_max
            self._probe = None
            self._since, self._since_s = 0, 0.0
            if base is None or rate * self.margin >= base:
                self._switch(1)

    def _lose(self, base: float) -> None:
        lost = sum(s - u / base for u, s in self._probe)
        self._probe = None
        self._since, self._since_s = 0, 0.0
        self._wait_s = max(0.0, lost) / self.budget
        self.interval = min(2 * self.interval, self.max_interval)
        self._rates.pop(self.n_max, None)

    def _switch(self, n: int) -> None:
        self.current, self._probe, self._since, self._since_s = n, None, 0, 0.0


@contextlib.contextmanager
def chunk_threads(control: "KernelThreads | None", kernel, key: tuple, n: int):
    """Run one chunk of ``n`` updates (the ``with`` body) at the thread count ``control`` chooses
    for work ``key``, then report its speed; with ``control`` None the kernel's count is left as
    it is. For callers of a kernel outside the training loop (the learner, the epoch trainer): a
    busy core then does not slow them down. The weights do not depend on the count."""
    if control is None:
        yield
        return
    kernel.n_threads = control.choose(key)
    t0 = time.perf_counter()
    yield
    control.record(n, time.perf_counter() - t0)


def kernel_controller(requested: int, kernel) -> KernelThreads | None:
    """The adaptive controller of a kernel's thread count, or None when the count is fixed: the
    user asked for one (``requested`` > 0 or ``$ONLINEDEEP_NUMBA_THREADS``), the kernel does not run
    its own threads (``owns_threads``), or auto gave it one thread."""
    if requested or _env_threads() is not None or not getattr(kernel, "owns_threads", False):
        return None
    n_max = int(getattr(kernel, "n_threads", 1))
    return KernelThreads(n_max) if n_max >= 2 else None
