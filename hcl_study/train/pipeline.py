"""Training one epoch ahead on a background thread, while the caller handles the last one.

A caller that blocks after each epoch (a Ray Tune report waits for the driver's round trip,
a tracking call waits for its server) would otherwise leave the model idle meanwhile.
`EpochPipeline` runs `Trainer.run_epoch` on a worker thread at most one epoch ahead of the
caller, and saves the trainer's state right after each checkpoint epoch, so that what the
caller checkpoints is exactly the state at the epoch it reports. The results, their order and
their values are those of calling `run_epoch` in a loop.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hcl_study.train.stopping import EpochInterrupted
from hcl_study.train.trainer import EpochResult, Trainer

_POLL_S = 0.1
_STATE_PREFIX = "hcl-epoch-state-"


def _state_prefix() -> str:
    """Saved states are named after their process, so that a later one can tell them stale."""
    return f"{_STATE_PREFIX}{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_states() -> list[Path]:
    """Delete the saved epoch states that processes which died without closing left behind.

    A worker killed hard (a lost node, Ray ending a study) cannot clean up its pipeline; its
    states (a full checkpoint each) would stay in the temporary folder.

    Returns:
        The folders deleted.
    """
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{_STATE_PREFIX}*-*"):
        pid = folder.name.removeprefix(_STATE_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@dataclass(frozen=True)
class PipelinedEpoch:
    """One finished epoch, as the caller receives it.

    Attributes:
        result: The epoch's result.
        state_dir: The trainer's checkpoint right after this epoch (at checkpoint epochs and
            the last one), else None. Owned by the pipeline: it is deleted when the next
            epoch is taken or the pipeline closes, so copy what you keep before that.
        last: True for the final epoch (the configured count, or the first diverged one).
    """

    result: EpochResult
    state_dir: Path | None
    last: bool


class EpochPipeline:
    """Iterate over the remaining epochs of a trainer, trained one ahead on a worker thread.

    Use it as a context manager: leaving the block (normally, by an exception, or by the
    `SystemExit` Ray uses to stop a trial) interrupts the worker at its next batch and waits
    for it, so no second trainer overlaps a reused worker process.

    Args:
        trainer: The trainer, already restored when resuming; only the worker touches it
            while the pipeline runs.
        checkpoint_every: Save the trainer's state after every epoch whose count (epochs
            done) is a multiple of this, and after the last epoch.
    """

    def __init__(self, trainer: Trainer, checkpoint_every: int) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self._trainer = trainer
        self._checkpoint_every = checkpoint_every
        self._done: queue.Queue[PipelinedEpoch | BaseException] = queue.Queue()
        # One slot for the epoch the caller handles and one for the epoch being trained.
        self._slots = threading.Semaphore(2)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._train, name="hcl-epochs", daemon=True)
        self._held: Path | None = None
        self._handling = False
        self._nothing_left = trainer.epoch >= trainer.config.epochs
        remove_stale_states()

    def __enter__(self) -> EpochPipeline:
        self._worker.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[PipelinedEpoch]:
        if self._nothing_left:
            return
        while True:
            item = self._next()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.last:
                return

    def close(self) -> None:
        """Interrupt the worker at its next batch, wait for it, delete saved states."""
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join()
        self._release_held()
        while not self._done.empty():
            item = self._done.get_nowait()
            if isinstance(item, PipelinedEpoch) and item.state_dir is not None:
                shutil.rmtree(item.state_dir, ignore_errors=True)

    def _next(self) -> PipelinedEpoch | BaseException:
        self._release_held()
        if self._handling:  # the caller is done with the previous epoch: train one more
            self._slots.release()
        item = self._done.get()
        self._handling = True
        if isinstance(item, PipelinedEpoch):
            self._held = item.state_dir
        return item

    def _release_held(self) -> None:
        if self._held is not None:
            shutil.rmtree(self._held, ignore_errors=True)
            self._held = None

    def _train(self) -> None:
        trainer = self._trainer
        epochs = trainer.config.epochs
        try:
            while trainer.epoch < epochs:
                if not self._acquire_slot():
                    return
                result = trainer.run_epoch(stop=self._stop)
                last = trainer.epoch >= epochs or result.diverged
                state_dir = None
                if last or trainer.epoch % self._checkpoint_every == 0:
                    state_dir = Path(tempfile.mkdtemp(prefix=_state_prefix()))
                    trainer.save(state_dir)
                self._done.put(PipelinedEpoch(result, state_dir, last))
                if last:
                    return
        except EpochInterrupted:
            return  # the caller left: nothing waits for this epoch
        except BaseException as error:  # handed to the caller, which re-raises it
            self._done.put(error)

    def _acquire_slot(self) -> bool:
        while not self._stop.is_set():
            if self._slots.acquire(timeout=_POLL_S):
                return True
        return False
