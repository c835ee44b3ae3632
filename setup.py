"""Build of berry's optional C extension (berry._cstream); all metadata lives in pyproject.toml.

The extension is optional: where no C compiler is available the install still succeeds and
berry.stream falls back to its NumPy reference (same bits, slower); berry.stream.backend_info() says
which backend runs and why, and BERRY_STREAM_BACKEND=c makes a missing extension an import error.
It needs GCC or Clang (pthreads, target attributes for the AVX2/AVX-512 paths): with MSVC it is not
built. Flags: -ffp-contract=off so no multiply-add is ever fused (the stream's bits must not depend on
the CPU); no -ffast-math; -fno-math-errno only lets sqrt be one instruction (its result is correctly
rounded either way) and -fno-trapping-math only lets branches become selects (no value changes;
floating-point traps are never enabled). An x87 build (FLT_EVAL_METHOD != 0) compiles but refuses to
load, for the same reason.
"""

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_UNIX_FLAGS = [
    "-O3",
    "-std=c99",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-pthread",
]


class _BuildExt(build_ext):
    """GCC/Clang flags; the extension is skipped, with a message, for other compilers."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "msvc":
            print(
                "berry: the C stream kernel needs GCC or Clang, not MSVC; skipping it "
                "(berry uses its NumPy reference, which gives the same bits)",
                file=sys.stderr,
            )
            self.extensions = []
            return
        for extension in self.extensions:
            extension.extra_compile_args = list(_UNIX_FLAGS)
            extension.extra_link_args = ["-pthread"]
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "berry._cstream",
            sources=["berry/_cstream.c"],
            depends=["berry/_cstream_recipe.h", "berry/_cstream_avx2.h", "berry/_cstream_avx512.h"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": _BuildExt},
)
