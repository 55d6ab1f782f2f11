"""Build the Cython/C extension cext._accel (links the system libsecp256k1)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

ext = Extension(
    "cext._accel",
    sources=["cext/_accel.pyx", "cext/src/keccak.c", "cext/src/batch.c", "cext/src/parallel.c",
             "cext/src/margin.c"],
    include_dirs=["cext/src"],
    libraries=["secp256k1", "pthread"],
    extra_compile_args=["-O3", "-fno-strict-aliasing", "-Wno-unused-function"],
)

setup(ext_modules=cythonize([ext], language_level=3, quiet=True))
