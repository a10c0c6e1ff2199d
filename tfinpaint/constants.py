"""The choices users pick from, in one light module (no TensorFlow), so the library and the
CLI share them and `tfinpaint --help` answers without importing TensorFlow."""

MASK_KINDS = ("block", "random", "half", "pattern")
SIDES = ("left", "right", "top", "bottom")
BLENDS = ("poisson", "overlay")
# `fill --align`: `on` aligns every face found, `off` never, `auto` aligns a face model's
# photos unless the one face found already sits where the training faces do.
ALIGNS = ("auto", "on", "off")
FACES = ("all", "largest")
PREPROCESS = ("celeba", "svhn", "square")
IMAGE_SIZES = (32, 64, 128)
STRATEGIES = ("default", "mirrored", "multiworker")
LOSSES = ("bce", "hinge")  # the GAN losses of tfinpaint train
AUGMENT_POLICIES = ("color", "translation", "cutout")
EVAL_KINDS = (*MASK_KINDS, "none")
# The search's second stage, after z (`SearchSettings.refine`); `auto` refines the features
# of images whose holes are scattered and leaves large holes to z alone.
REFINES = ("none", "auto", "generator", "features")
# Where the z search starts (`SearchSettings.init`): the model's encoder, a seeded random z,
# or `auto`: the encoder when the model has one.
INITS = ("auto", "encoder", "random")
# `ours` searches with the model's settings; `ours-REFINE` with that refinement (`ours-none`: z only).
OURS = ("ours", *(f"ours-{r}" for r in REFINES if r != "auto"))
EVAL_METHODS = (*OURS, "mean", "tv", "telea", "ns", "biharmonic", "lowrank", "nearest")
# Photos larger than this are refused before they are decoded (a 20000x20000 PNG would
# need gigabytes); `fill --max-pixels` raises it.
MAX_PIXELS = 40_000_000
