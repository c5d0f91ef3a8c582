"""A DataLoader whose worker processes report bad input as the one-line UserError the main process would.

torch hands an exception raised in a worker (or the pin-memory thread) back as ``type(err)(text)``, where
``text`` is "Caught UserError in DataLoader worker process 0.", then the worker's whole traceback. The CLI
prints a UserError as one line, so the user would see that header and a traceback instead of the message
(with ``num_workers=0`` the dataset's UserError arrives as raised). :class:`UserErrorLoader` restores it.
"""
from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DataLoader

from common.errors import UserError


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
            self._batches = None
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
