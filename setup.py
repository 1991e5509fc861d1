"""Install tfemergent: ``pip install .`` or ``pip install -e .``.

The C++ ops (``custom_ops/cc``) are compiled into
``tfemergent/kernels/_tfemergent_ops.so`` when a C++ compiler and TensorFlow are
available at build time; the compile and link flags come from `tf.sysconfig`
(no hard-coded ``-std`` or ABI flags). If the build fails, a warning is printed
and the package installs without the library: `tfemergent.kernels` then uses
its pure-TensorFlow kernels. See ``custom_ops/README.md``.
"""

import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).parent.resolve()
CUSTOM_OPS_SOURCES = sorted(
    glob.glob(str(HERE / "custom_ops" / "cc" / "ops" / "*.cc"))
    + glob.glob(str(HERE / "custom_ops" / "cc" / "kernels" / "*.cc"))
)
# Optimisation only; the ISA is chosen at run time (target_clones in the sources).
EXTRA_COMPILE_FLAGS = ["-O3", "-fPIC", "-ffp-contract=fast", "-Wno-deprecated-declarations"]

_FLAGS_SCRIPT = (
    "import json, tensorflow as tf; print(json.dumps([tf.sysconfig.get_compile_flags(), "
    "tf.sysconfig.get_link_flags()]))"
)


def tensorflow_flags():
    """(compile flags, link flags) of the TensorFlow that tfemergent will run with.

    In-process when TensorFlow is importable (``--no-build-isolation``, or
    TensorFlow in the build requirements); otherwise the interpreter is asked
    without pip's build-isolation paths, i.e. the environment being installed into.
    """
    try:
        import tensorflow as tf

        return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()
    except ImportError:
        pass
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    result = subprocess.run(
        [sys.executable, "-c", _FLAGS_SCRIPT], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError("TensorFlow is not importable: " + result.stderr.strip()[-300:])
    compile_flags, link_flags = json.loads(result.stdout.strip().splitlines()[-1])
    return compile_flags, link_flags


class BuildCustomOps(build_ext):
    """Builds the TensorFlow op library; warns and skips it when that fails."""

    def get_ext_filename(self, ext_name):
        # Called with the full dotted name or only its last part; either way the
        # library is a plain ".so" (tf.load_op_library, not a Python module).
        if CUSTOM_OPS.name.endswith(ext_name):
            return os.path.join(*ext_name.split(".")) + ".so"
        return super().get_ext_filename(ext_name)

    def build_extension(self, ext):
        if ext is not CUSTOM_OPS:
            return super().build_extension(ext)
        output = pathlib.Path(self.get_ext_fullpath(ext.name))
        try:
            self._compile_custom_ops(output)
        except Exception as error:  # noqa: BLE001 - any failure means: no library
            self.warn(
                f"tfemergent: the C++ ops were not built ({error}); the package uses its "
                "pure-TensorFlow kernels."
            )

    def _compile_custom_ops(self, output):
        compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
        if compiler is None:
            raise RuntimeError("no C++ compiler found (set CXX)")
        compile_flags, link_flags = tensorflow_flags()
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_suffix(".so.partial")
        command = (
            [compiler, "-shared"]
            + EXTRA_COMPILE_FLAGS
            + CUSTOM_OPS_SOURCES
            + compile_flags
            + ["-o", str(temporary)]
            + link_flags
        )
        print("building the tfemergent C++ ops:", " ".join(command))
        subprocess.run(command, check=True)
        temporary.replace(output)
        # Editable installs import from the source tree: put a copy beside the loader.
        in_tree = HERE / "tfemergent" / "kernels" / output.name
        if output.resolve() != in_tree.resolve() and getattr(self, "editable_mode", False):
            shutil.copyfile(output, in_tree)


CUSTOM_OPS = Extension("tfemergent.kernels._tfemergent_ops", sources=CUSTOM_OPS_SOURCES)
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
        # tfemergent.search.RayExecutor: searches on a Ray cluster.
        "ray": ["ray==2.60.0"],
        # Ray is not a test requirement: the Ray tests skip without it (CI installs
        # ".[test,ray]" to run them).
        "test": ["pytest>=8", "pytest-xdist>=3.5"],
    },
    entry_points={"console_scripts": ["tfemergent=tfemergent.cli:main"]},
    ext_modules=[CUSTOM_OPS] if CUSTOM_OPS_SOURCES else [],
    cmdclass={"build_ext": BuildCustomOps},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
