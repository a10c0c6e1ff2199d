"""The loop that `train` and `train-encoder` share: epochs of steps from a resumable step
count, a progress bar, a stop at the first NaN or Inf, and hooks for what each does after a
step (checkpoints, logs) and after an epoch (samples)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import keras

from tfinpaint.errors import TrainingError


@dataclasses.dataclass
class Loop:
    """One training loop.

    Attributes:
        total: the step to train to.
        steps_per_epoch: steps in one pass over the data.
        batches: `batches(epoch, skip, take)`, the batches of an epoch from its step `skip` on.
        step: `step(batch, step)` trains one step; returns the values to watch (all must be finite).
        shown: the values the progress bar shows.
        title: how an epoch is announced ("Epoch", "Encoder epoch").
        nan: `nan(step, values)`, the message when a value is not finite at (1-based) `step`.
        batch_size: images a step, for the images-per-second rate hooks are given.
        verbose: 0 prints nothing.
    """

    total: int
    steps_per_epoch: int
    batches: Callable[[int, int, int], Iterable]
    step: Callable[[object, int], dict[str, float]]
    shown: Sequence[str]
    title: str
    nan: Callable[[int, dict[str, float]], str]
    batch_size: int
    verbose: int = 1

    def run(
        self,
        step: int,
        after_step: Callable[[int, dict[str, float], float], dict[str, float] | None] | None = None,
        after_epoch: Callable[[int], None] | None = None,
    ) -> int:
        """Train from `step` to `total`; returns the step reached. `after_step(step, values,
        images_per_second)` may return more values to show; `after_epoch(step)` runs at the
        end of every epoch, whole or cut by `total`.

        Raises:
            TrainingError: a watched value became NaN or Inf.
        """
        while step < self.total:
            epoch, skip = divmod(step, self.steps_per_epoch)
            todo = min(self.steps_per_epoch - skip, self.total - step)
            bar = keras.utils.Progbar(todo, verbose=self.verbose, stateful_metrics=list(self.shown))
            if self.verbose:
                epochs = math.ceil(self.total / self.steps_per_epoch)
                print(f"{self.title} {epoch + 1}/{epochs} (steps {step + 1}-{step + todo} of {self.total})")
            tic = time.perf_counter()
            for i, batch in enumerate(self.batches(epoch, skip, todo)):
                values = self.step(batch, step)
                if not all(math.isfinite(v) for v in values.values()):
                    raise TrainingError(self.nan(step + 1, values))
                step += 1
                rate = (i + 1) * self.batch_size / (time.perf_counter() - tic)
                more = after_step(step, values, rate) if after_step else None
                if self.verbose:
                    shown = {**values, **(more or {})}
                    bar.update(i + 1, [(name, shown[name]) for name in self.shown])
            if after_epoch:
                after_epoch(step)
        return step


SECONDS = "seconds.txt"  # beside a run's checkpoints: its training time up to the newest one


def checkpoint_seconds(checkpoints: Path) -> float | None:
    """The training time up to the newest checkpoint in `checkpoints`, over all the sessions
    that trained it; None if it was not kept (runs made before it was)."""
    p = Path(checkpoints) / SECONDS
    return float(p.read_text()) if p.is_file() else None


def save_checkpoint_seconds(checkpoints: Path, seconds: float) -> None:
    """Keep `seconds` with the checkpoint just saved in `checkpoints`, so a resumed run's
    card counts the time of every session, not only its last one's."""
    (Path(checkpoints) / SECONDS).write_text(f"{seconds:.1f}\n")
