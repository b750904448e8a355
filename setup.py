"""The one build step pyproject.toml does not describe stably: the optional C extension.

``kernel/book/_accel.c`` compiles the book's hot loops; ``kernel/book/accel.py``
holds their pure-Python reference and falls back to it, so the extension is
optional and an install without a C compiler still works.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kernel.book._accel",
            sources=["kernel/book/_accel.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
