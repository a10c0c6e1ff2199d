from pathlib import Path

from setuptools import setup

here = Path(__file__).parent
requirements = [
    line.strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

# `tfinpaint evaluate`'s baselines: OpenCV's Telea and Navier-Stokes, scikit-image's biharmonic
EVAL = ["opencv-python-headless>=4.8", "scikit-image>=0.22"]
# `tfinpaint app`: the web page (Gradio's image editor, with a brush)
APP = ["gradio>=5,<7"]
# `tfinpaint fill --runner ...`: filling on Apache Beam (RunInference; local, Dataflow, Flink, Spark).
# 2.78 is the one tested here, beside TensorFlow 2.21 (it holds protobuf below 7).
BEAM = ["apache-beam>=2.78,<3"]

setup(
    name="tfinpaint",
    version="0.1.0",
    description="Semantic image inpainting with deep generative models (Yeh et al., 2016) in TensorFlow/Keras",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # cli/ is installed as tfinpaint.cli, never as a top-level package named `cli`, and the
    # shipped models in saved_models/ as package data of tfinpaint.saved_models, so a wheel or
    # a non-editable install finds them from any working directory.
    packages=["tfinpaint", "tfinpaint.cli", "tfinpaint.saved_models"],
    package_dir={"tfinpaint": "tfinpaint", "tfinpaint.cli": "cli", "tfinpaint.saved_models": "saved_models"},
    package_data={
        "tfinpaint.saved_models": [
            "*/model.json",
            "*/samples.png",
            "*/[0-9]*/saved_model.pb",
            "*/[0-9]*/fingerprint.pb",
            "*/[0-9]*/variables/*",
            "*/[0-9]*/assets/*",
        ]
    },
    install_requires=requirements,
    extras_require={
        "eval": EVAL,
        "app": APP,
        "beam": BEAM,
        # the tests cover every baseline; import-linter holds the modules' one-way flow; the
        # app's browser test drives the system's Chromium with Playwright (no browser download)
        "test": ["pytest>=7", "ruff>=0.4", "import-linter>=2.1", "playwright>=1.40", *EVAL],
    },
    entry_points={"console_scripts": ["tfinpaint=tfinpaint.cli:main"]},
)
