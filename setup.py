"""Only the compiled part of the build; everything else is in pyproject.toml.

The fused block encoder is optional: where no C compiler is found the install still succeeds and
shared.codecs uses its numpy implementation (same integers, slower; `make bench ARGS=codecs`
names the encoder in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shared._fastcodecs",
            ["shared/_fastcodecs.c"],
            # no FMA contraction: the kernel must round exactly as the numpy reference does
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-trapping-math"],
            optional=True,
        )
    ]
)
