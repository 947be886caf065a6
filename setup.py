"""Build script: the pure-Python package plus the pybind11 kernel compiled through CMakeLists.txt."""
from setuptools import setup

setup()
