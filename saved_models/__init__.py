"""The pretrained models that ship with tfinpaint (package data: `tfinpaint.saved_models`).

Each folder is a TF Serving model base path: `1/` (a SavedModel), `model.json` (its model
card) and `samples.png`. `tfinpaint.store` finds them by name (`celeba64`, `svhn64`).
"""
