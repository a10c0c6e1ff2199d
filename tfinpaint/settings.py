"""The latent search's settings: what a model card's `search` holds and every fill, export,
evaluation and app page uses, checked once when made."""

from __future__ import annotations

import dataclasses
import math

from tfinpaint.constants import INITS, REFINES
from tfinpaint.errors import ArgumentError, ModelError

REFINE_LR = {"generator": 1e-4, "features": 0.01}  # chosen on faces 000001-000016 (docs/search.md)


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """Latent-search settings; the defaults were chosen on held-out faces (README).

    Attributes:
        iterations: Adam steps on z.
        lam: weight of the perceptual loss (the paper's lambda).
        lr: Adam learning rate on z.
        beta1: Adam beta_1 on z.
        restarts: latents searched per image; the lowest final loss wins.
        weighted: weight the contextual loss by the share of missing pixels in a
            7x7 window around each known pixel (CVPR 2017 version).
        seed: seeds the initial latents.
        refine: after the z search, `none`; `generator`: fine-tune G's weights on each
            image; `features`: optimise G's activations after its first `FEATURE_DEPTH`
            blocks; `auto`: `features` for the images whose holes are scattered
            (`scattered`), `none` for the others (README, "Beyond z").
        refine_steps: Adam steps of the refinement.
        refine_lr: its learning rate (None: `REFINE_LR` of the refinement chosen).
        init: where the search starts: `encoder`, the model's encoder's z for each image
            (its other restarts from the seeded random z); `random`, the seeded random z;
            `auto`, the encoder when the model has one.
        min_z_rms: after every step, a z whose root-mean-square component is below this is
            scaled up to it (then clipped to [-1, 1]); 0: never (the paper). G draws a more
            average, smoother face the shorter z is, and the search's z (the encoder's most
            of all) is shorter than G's training z (U[-1, 1]: 1/sqrt(3) = 0.577), so a floor
            trades PSNR for detail (docs/search.md, "Sharper fills").
    """

    iterations: int = 300
    lam: float = 0.003
    lr: float = 0.03
    beta1: float = 0.9
    restarts: int = 1
    weighted: bool = True
    seed: int = 0
    refine: str = "auto"
    refine_steps: int = 100
    refine_lr: float | None = None
    init: str = "auto"
    min_z_rms: float = 0.0

    def __post_init__(self):
        if self.init not in INITS:
            raise ArgumentError(f"Unknown init {self.init!r}; expected one of {INITS}")
        if self.iterations < 0 or self.restarts < 1:
            raise ArgumentError(
                f"Expected iterations >= 0 and restarts >= 1, got {self.iterations} and {self.restarts}"
            )
        if self.refine not in REFINES:
            raise ArgumentError(f"Unknown refine {self.refine!r}; expected one of {REFINES}")
        for name, low in (("lam", 0.0), ("lr", None), ("beta1", 0.0)):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not (number and (value > 0 if low is None else value >= low)):
                raise ArgumentError(
                    f"Expected a finite {name} {'> 0' if low is None else f'>= {low:g}'}, got {value!r}"
                )
        rms = self.min_z_rms
        if not (isinstance(rms, (int, float)) and not isinstance(rms, bool) and 0.0 <= rms < 1.0):
            raise ArgumentError(f"Expected a min_z_rms >= 0 and < 1 (z lies in [-1, 1]), got {rms!r}")
        if not 0 <= self.seed < 2**63:
            raise ArgumentError(f"Expected a seed in 0 ... 2**63 - 1, got {self.seed}")
        if self.refine_steps < 0 or (
            self.refine_lr is not None and not (math.isfinite(self.refine_lr) and self.refine_lr > 0)
        ):
            raise ArgumentError(
                f"Expected refine_steps >= 0 and refine_lr > 0, got {self.refine_steps} and {self.refine_lr}"
            )

    def starts_from_encoder(self, encoder) -> bool:
        """Whether the search starts from `encoder`'s z (None: the model has no encoder).

        Raises:
            ModelError: `init="encoder"` and no encoder.
        """
        if self.init == "encoder" and encoder is None:
            raise ModelError("`init=encoder` needs a model with an encoder (see tfinpaint train-encoder)")
        return encoder is not None and self.init != "random"

    @property
    def refining(self) -> bool:
        """Whether a refinement follows the z search (for some images at least)."""
        return self.refine != "none" and self.refine_steps > 0

    @property
    def steps(self) -> int:
        """Adam steps per image in all: the z search's and the refinement's."""
        return self.iterations + (self.refine_steps if self.refining else 0)

    @property
    def refine_method(self) -> str:
        """The refinement run on the images it applies to (`auto` runs `features`)."""
        return "features" if self.refine == "auto" else self.refine

    @property
    def refine_rate(self) -> float:
        return self.refine_lr if self.refine_lr is not None else REFINE_LR.get(self.refine_method, 0.0)
