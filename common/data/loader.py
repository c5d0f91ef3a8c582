"""A DataLoader whose worker processes report bad input as the one-line UserError the main process would.

torch hands an exception raised in a worker (or the pin-memory thread) back as ``type(err)(text)``, where
``text`` is "Caught UserError in DataLoader worker process 0.", then the worker's whole traceback. The CLI
prints a UserError as one line, so the user would see that header and a traceback instead of the message
(with ``num_workers=0`` the dataset's UserError arrives as raised). :class:`UserErrorLoader` restores it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from common.errors import UserError

# ``num_workers: auto`` takes at most this many per loader: past it, worker memory grows faster than throughput.
MAX_AUTO_WORKERS = 16


def unwrap_worker_error(err: UserError) -> UserError:
    """The UserError a DataLoader worker raised, rebuilt from the traceback text torch wraps it in (the text
    ends with ``"<module>.<class>: <message>"``); any other UserError is returned unchanged."""
    text = str(err)
    if not text.startswith("Caught "):
        return err
    kind = type(err)
    last_line = f"\n{kind.__module__}.{kind.__qualname__}: "
    at = text.rfind(last_line)
    if at < 0:
        return err
    return kind(text[at + len(last_line):].strip())


class _UnwrappingIterator(Iterator):
    """Batches of a DataLoader iterator; a UserError ends them, a worker's arriving as the worker raised it."""

    def __init__(self, batches: Iterator) -> None:
        self._batches: Iterator | None = batches

    def __next__(self):
        if self._batches is None:
            raise StopIteration
        try:
            return next(self._batches)
        except UserError as err:
            batches, self._batches = self._batches, None
            # Persistent workers outlive this iterator (their loader keeps it): stop them now.
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            del batches
            original = unwrap_worker_error(err)
            if original is err:
                raise
            # The workers are stopped here, not left to the garbage collector: torch's reraise frame holds the
            # exception it raised, so its traceback keeps the torch iterator in a reference cycle, and a gc pass
            # may close the iterator's queues before telling the workers to stop, which then costs a 5 s join
            # timeout. With the traceback dropped (the worker's is in the message text) the iterator goes now.
            err.__traceback__ = None
            try:
                raise original from err  # chained: a library caller can still read the worker's traceback
            finally:
                del original

    def __len__(self) -> int:
        return 0 if self._batches is None else len(self._batches)


class UserErrorLoader(DataLoader):
    """A :class:`~torch.utils.data.DataLoader` whose iterators re-raise a worker's UserError with the worker's
    own one-line message, so bad input reads the same for any ``num_workers``."""

    def __iter__(self) -> Iterator:
        return _UnwrappingIterator(super().__iter__())


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a Slurm or container limit), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(num_workers: int | str, n_loaders: int = 1) -> int:
    """``run.num_workers`` as a count per loader. ``auto``: the process's CPUs shared by the ranks on this node
    (torchrun's ``LOCAL_WORLD_SIZE``), less one for the training process, split over ``n_loaders`` loaders that
    run at once, at most :data:`MAX_AUTO_WORKERS` each."""
    if num_workers != "auto":
        return int(num_workers)
    per_rank = available_cpus() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(MAX_AUTO_WORKERS, (per_rank - 1) // max(1, n_loaders)))


def loader_options(run: Any, device: torch.device, n_loaders: int = 1) -> dict[str, Any]:
    """DataLoader keyword arguments from a config's ``run`` section: workers, pinned memory (null: on for CUDA),
    persistent workers and prefetching (the last two only with workers, where torch accepts them)."""
    workers = resolve_workers(run.num_workers, n_loaders)
    pin = device.type == "cuda" if run.pin_memory is None else bool(run.pin_memory)
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": pin}
    if workers > 0:
        options.update(persistent_workers=bool(run.persistent_workers), prefetch_factor=run.prefetch_factor)
    return options


def training_loader(dataset: Dataset, options: dict[str, Any], seed: int = 0, **batching: Any) -> UserErrorLoader:
    """A :class:`UserErrorLoader` over ``dataset`` with ``options`` (:func:`loader_options`) and ``batching``
    (``batch_size`` + ``sampler``, or ``batch_sampler``). Its own generator keeps the loader from drawing its
    base seed from the global torch RNG, so a resumed run stays exact (samples carry their own seeds)."""
    return UserErrorLoader(dataset, generator=torch.Generator().manual_seed(seed), **options, **batching)


class EpochSampler(Sampler):
    """Whichever sampler :meth:`set` last gave it, so one loader (and its persistent workers) serves a run that
    makes a new sampler each epoch."""

    def __init__(self) -> None:
        self.current: Sampler | None = None

    def set(self, sampler: Sampler) -> None:
        self.current = sampler

    def __iter__(self) -> Iterator:
        return iter(self.current)

    def __len__(self) -> int:
        return len(self.current)
