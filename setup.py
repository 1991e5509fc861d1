"""Install tfemergent: ``pip install .`` or ``pip install -e .``."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
version = {}
exec((HERE / "tfemergent" / "version.py").read_text(), version)

setup(
    name="tfemergent",
    version=version["__version__"],
    description=(
        "Keras 3 / TensorFlow layers, regularisers and analysis for neural networks "
        "that organise their own structure while they train."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tfemergent", "tfemergent.*"]),
    install_requires=[
        # Pinned to what is tested on the project's machines (CPU, Python 3.11).
        "tensorflow==2.21.0",
        "keras>=3.10,<4",
        "tensorflow-datasets==4.9.10",
        "importlib_resources",  # tensorflow-datasets imports it when it downloads
        "tensorboard>=2.21,<2.22",
        "numpy>=1.26,<3",
        "scipy>=1.11",
        "scikit-learn>=1.4",
        "matplotlib>=3.8",
        "tqdm>=4.66",
    ],
    extras_require={
        "test": ["pytest>=8"],
    },
    entry_points={"console_scripts": ["tfemergent=tfemergent.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
