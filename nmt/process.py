"""Process-wide settings: logging, threads, the C allocator, oneDNN's kernel cache and
stop signals.

Only entry points (the ``nmt`` command, a benchmark's ``main``) call these; building
a model, a trainer or an app never changes the process around it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import torch

log = logging.getLogger(__name__)


def configure_logging(verbose: bool = False) -> None:
    """Timestamped log lines on stderr; under torchrun the other ranks only report
    problems, so that rank 0 tells the story."""
    quiet = int(os.environ.get("RANK", "0")) > 0
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def configure_threads(threads: int | None) -> None:
    """PyTorch's intra-op threads (None: PyTorch's default, one per core)."""
    if threads:
        torch.set_num_threads(threads)


# oneDNN, which runs bf16 matrix products on CPUs that have bf16 instructions (and fp32
# convolutions on any x86 CPU), compiles a kernel for every new input shape and keeps
# the last 1,024 by default. Training sees new shapes with nearly every batch (sentences
# per batch, source and target lengths), and the kept kernels, allocated between a
# step's large short-lived tensors, pin heap pages that glibc can then neither reuse nor
# trim: the default bf16 training run grew from 2.2 to 4.1 GiB resident in 24 minutes,
# and stayed near 2 GiB with 64 kernels (docs/benchmarks.md, "oneDNN's kernel cache"). A
# training step reuses its shapes over its time steps, so a short cache recompiles
# little there; beam search meets more shapes per batch (live hypotheses change at every
# step), and with 64 kernels bf16 decoding was slower, so only training sets the bound.
ONEDNN_CACHE_CAPACITY = 64


def bound_kernel_cache() -> None:
    """Keep at most ``ONEDNN_CACHE_CAPACITY`` compiled oneDNN kernels (an operator's
    ONEDNN_PRIMITIVE_CACHE_CAPACITY wins). oneDNN reads the setting when it first
    compiles a kernel, so this must run before the first tensor operation."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4

# NMT_MALLOC: which C allocator the process uses. "glibc-tuned" (the default): glibc,
# told to keep freed memory (``keep_freed_memory``) and trimmed now and then
# (``FragmentReleaser``); "glibc": glibc as it comes; the others are preloaded from
# Debian's libjemalloc2 / libtcmalloc-minimal4 by ``preload_allocator``.
ALLOCATORS = {
    "glibc-tuned": None,
    "glibc": None,
    "jemalloc": "jemalloc",  # ctypes.util.find_library names
    "tcmalloc": "tcmalloc_minimal",
}
DEFAULT_ALLOCATOR = "glibc-tuned"


def chosen_allocator() -> str:
    """The allocator NMT_MALLOC names (``DEFAULT_ALLOCATOR`` when unset)."""
    name = os.environ.get("NMT_MALLOC", "") or DEFAULT_ALLOCATOR
    if name not in ALLOCATORS:
        raise ValueError(f"NMT_MALLOC={name!r}: use one of {', '.join(ALLOCATORS)}")
    return name


def preload_allocator(argv: list[str]) -> None:
    """Start this program again, as ``argv``, with NMT_MALLOC's allocator preloaded.

    An allocator replaces malloc only if it is loaded before the C library's, that is
    through LD_PRELOAD at program start: so the entry point re-executes itself once (the
    second start finds its library in LD_PRELOAD and goes on). Does nothing for glibc,
    and warns and goes on with glibc when the library is not installed.
    """
    name = ALLOCATORS[chosen_allocator()]
    if name is None:
        return
    # found by the dynamic linker's cache; not loaded here: jemalloc cannot be dlopen'ed
    # into a running process (its thread-local storage must be set up at start)
    library = ctypes.util.find_library(name)
    preloaded = os.environ.get("LD_PRELOAD", "")
    if library is None:
        log.warning("NMT_MALLOC: lib%s is not installed; going on with glibc's malloc", name)
        return
    if library in preloaded.split(":"):
        return
    env = {**os.environ, "LD_PRELOAD": ":".join(filter(None, [library, preloaded]))}
    os.execve(argv[0], argv, env)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc only
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel.

    Training allocates and frees the same large buffers (the N x V output-layer
    activations and their gradients) at every step. By default glibc serves such
    blocks with mmap and unmaps them on free, so every step page-faults hundreds
    of MB in again; on a 2-core CPU that cost a third of the step time. Returns
    False where the C library is not glibc (nothing changes there).

    Blocks of varying sizes fragment the heap over time, so callers should also
    release them now and then: see ``FragmentReleaser``. Also False when NMT_MALLOC
    chose another allocator.
    """
    libc = _libc()
    if libc is None or chosen_allocator() != "glibc-tuned":
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**30) == 1
    ok &= libc.mallopt(_M_TOP_PAD, 64 * 2**20) == 1
    log.debug("glibc malloc tuned for reuse: %s", ok)
    return bool(ok)


def resident_bytes(pid: int | str = "self") -> int | None:
    """A process's resident memory now (Linux ``/proc``; this one by default), or None
    where unknown."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class FragmentReleaser:
    """Returns free heap pages to the kernel (glibc ``malloc_trim``) when resident
    memory has grown by ``slack_bytes`` since the last release; bounds the heap growth
    that ``keep_freed_memory`` allows.

    A release costs more than the call: the next step faults every page it touches in
    again (about 0.34 s per release for the default model on a 2-core CPU, call
    included), hence the slack instead of a release at every log line.
    """

    def __init__(self, slack_bytes: int = 2**30) -> None:
        self.slack_bytes = slack_bytes
        self.baseline: int | None = None  # set by the first call: the working set

    def __call__(self) -> bool:
        """Release if resident memory is ``slack_bytes`` above the baseline; True if it did."""
        libc, rss = _libc(), resident_bytes()
        if libc is None or rss is None:
            return False
        if self.baseline is None:
            self.baseline = rss
            return False
        if rss - self.baseline < self.slack_bytes:
            return False
        libc.malloc_trim(0)
        self.baseline = resident_bytes() or rss
        log.debug("heap trimmed: resident %.0f -> %.0f MiB", rss / 2**20, self.baseline / 2**20)
        return True


class StopRequest:
    """Turns SIGTERM and SIGINT into a request to stop that a long job polls.

    While ``installed``, the first signal only sets ``reason`` (a training step under
    way finishes, so the checkpoint written afterwards is consistent); a second one
    raises ``KeyboardInterrupt`` to stop at once.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.signal(s, self._received) for s in signals}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _received(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.reason is not None:
            log.warning("%s received again: stopping at once", name)
            raise KeyboardInterrupt(name)
        self.reason = f"stopped by {name}"
        log.warning("%s received: stopping after this step (again: at once)", name)
