"""TinyTorch: the framework students build, module by module.

Everything under this package is exported by `tito export` from `modules/*/*_dev.py`; only the
`__init__.py` files are written by hand. The backend helpers below resolve lazily, so importing
`tinytorch` never imports a module that the student has not reached yet.
"""

__version__ = "0.1.0"

# Names that module 15 (acceleration) provides at the top level, as in `tinytorch.set_backend("optimized")`.
_ACCELERATION_NAMES = ("set_backend", "get_backend", "benchmark")


def __getattr__(name):
    if name in _ACCELERATION_NAMES:
        from tinytorch.optimization import acceleration

        return getattr(acceleration, name)
    raise AttributeError(f"module 'tinytorch' has no attribute {name!r}")
