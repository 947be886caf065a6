"""Build script: the pure-Python package plus the pybind11 kernel compiled through CMakeLists.txt.

``build_ext`` runs CMake (the ``cmake`` package from the build requirements, or one on PATH) with
pybind11's CMake config, so a machine with Python and a C++17 compiler is enough. Knobs
(environment): ``BASELINES_HER_BUILD_TYPE`` (default Release, i.e. -O3; ``build_ext --debug``
gives Debug), ``CMAKE_BUILD_PARALLEL_LEVEL`` (default 2 jobs), ``CMAKE_GENERATOR`` (default Ninja
when the ``ninja`` package or binary is available), ``BASELINES_HER_CMAKE_ARGS`` (extra
``-D...`` arguments, e.g. ``-DBASELINES_HER_MARCH_NATIVE=ON``).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    """An extension whose sources are compiled by CMake, not by setuptools."""

    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


def _cmake_executable() -> str:
    try:
        import cmake  # the PyPI package listed in [build-system] requires

        exe = Path(cmake.CMAKE_BIN_DIR) / ("cmake.exe" if os.name == "nt" else "cmake")
        if exe.exists():
            return str(exe)
    except ImportError:
        pass
    exe = shutil.which("cmake")
    if exe is None:
        raise RuntimeError("CMake not found: pip install cmake (listed in pyproject.toml)")
    return exe


def _ninja_executable() -> str | None:
    try:
        import ninja

        exe = Path(ninja.BIN_DIR) / ("ninja.exe" if os.name == "nt" else "ninja")
        if exe.exists():
            return str(exe)
    except ImportError:
        pass
    return shutil.which("ninja")


def _cached_generator(build_dir: Path) -> str | None:
    cache = build_dir / "CMakeCache.txt"
    if cache.exists():
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_GENERATOR:INTERNAL="):
                return line.split("=", 1)[1]
    return None


class CMakeBuild(build_ext):
    def copy_file(self, infile, outfile, *args, **kwargs):
        """Copy a built extension (e.g. in-place for editable installs) by atomic rename: a
        running process that has the old library mapped keeps it intact."""
        outfile = Path(outfile)
        if self.dry_run:
            return str(outfile), True
        tmp = outfile.with_name(f".{outfile.name}.{os.getpid()}.tmp")
        shutil.copy2(infile, tmp)
        os.replace(tmp, outfile)
        return str(outfile), True

    def build_extension(self, ext: Extension) -> None:
        if not isinstance(ext, CMakeExtension):
            return super().build_extension(ext)
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_type = os.environ.get("BASELINES_HER_BUILD_TYPE", "Debug" if self.debug else "Release")
        build_dir = Path(self.build_temp).resolve() / f"cmake-{build_type}"
        build_dir.mkdir(parents=True, exist_ok=True)

        configure = [
            _cmake_executable(),
            "-S", str(ROOT),
            "-B", str(build_dir),
            f"-DCMAKE_BUILD_TYPE={build_type}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DBASELINES_HER_OUTPUT_DIR={out_dir}",
        ]
        # Ninja when available (it comes with the build requirements; no `make` needed). An
        # existing build folder keeps its generator; its ninja path is refreshed, since isolated
        # pip builds put ninja in a new temporary folder each time.
        generator = _cached_generator(build_dir) or os.environ.get("CMAKE_GENERATOR")
        ninja = _ninja_executable() if generator in (None, "Ninja") else None
        if ninja is not None:
            configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
        configure += shlex.split(os.environ.get("BASELINES_HER_CMAKE_ARGS", ""))
        parallel = self.parallel if isinstance(self.parallel, int) and self.parallel > 1 else 2
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(int(parallel))
        build = [_cmake_executable(), "--build", str(build_dir), "--config", build_type,
                 "--parallel", jobs]
        subprocess.run(configure, check=True)
        subprocess.run(build, check=True)
        if not Path(self.get_ext_fullpath(ext.name)).exists():
            raise RuntimeError(f"CMake did not produce {self.get_ext_fullpath(ext.name)}")


setup(
    ext_modules=[CMakeExtension("baselines_her._native")],
    cmdclass={"build_ext": CMakeBuild},
)
