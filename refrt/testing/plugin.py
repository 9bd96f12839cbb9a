"""pytest plugin (entry point ``pytest11``, so ``pip install refrt`` enables it in any test
suite; without the install, ``pytest -p refrt.testing.plugin``).  docs/testing.md.

* fixtures ``refrt_oracle`` (the certified oracle), ``refrt_assert_close``
  (``assert_close_to_reference``) and ``refrt_case`` (one of refrt's input families for
  the op of the ``refrt_reference`` marker);
* marker ``@pytest.mark.refrt_reference(op, dtypes=("float32", "float64"), families=None,
  seeds=1, **params)``: the test runs once per dtype x input family x seed of ``op``
  (families: the op's declared families in the registry, or those named);
* option ``--refrt-max-prec=BITS`` (or ini ``refrt_max_prec``): the oracle's precision cap
  for these fixtures (default ``refrt.oracle.DEFAULT_MAX_PREC``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pytest

MARKER = "refrt_reference"


def pytest_addoption(parser):
    group = parser.getgroup("refrt", "refrt: certified reference values")
    group.addoption("--refrt-max-prec", type=int, default=None, metavar="BITS",
                    help="precision cap (bits) of refrt's oracle in the refrt_* fixtures "
                         "(default 10000); elements not certified under it are skipped "
                         "with a warning")
    parser.addini("refrt_max_prec", "default of --refrt-max-prec", default="")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{MARKER}(op, dtypes=('float32', 'float64'), families=None, seeds=1, "
        "**params): run the test once per dtype, input family and seed of refrt op `op`; "
        "the test takes the refrt_case fixture (docs/testing.md)")


def _max_prec(config):
    value = config.getoption("--refrt-max-prec")
    if value is None and config.getini("refrt_max_prec"):
        value = int(config.getini("refrt_max_prec"))
    if value is not None and value < 64:
        raise pytest.UsageError(f"--refrt-max-prec expected at least 64 bits, got {value}")
    return value


@dataclass
class ReferenceCase:
    """One draw for a ``refrt_reference`` test: ``inputs`` (NumPy arrays in ``dtype``) and
    ``params`` (refrt's TorchLean defaults plus the marker's) of ``op``'s ``family``;
    ``check(actual, **overrides)`` asserts ``actual`` against the oracle."""

    op: str
    dtype: str
    family: str
    seed: int
    inputs: list
    params: dict
    max_prec: int | None = None
    explicit: dict = field(default_factory=dict, repr=False)    # the marker's params

    def check(self, actual, **overrides):
        __tracebackhide__ = True
        from . import assert_close_to_reference
        actual = np.asarray(actual)
        if actual.dtype.name != self.dtype:
            raise AssertionError(f"{self.op}: the result has dtype {actual.dtype}, the case "
                                 f"is {self.dtype} (compute in the inputs' dtype)")
        # only the marker's and the caller's params: a failure can then say where refrt's
        # default differs from the framework's
        params = {**self.explicit, **overrides}
        if "dim" in params:
            params["axis"] = params.pop("dim")
        opts = {"max_prec": self.max_prec} if self.max_prec is not None else {}
        assert_close_to_reference(actual, self.op, *self.inputs, **opts, **params)


def _cases(marker):
    from ..families import generate
    from ..registry import get
    if not marker.args:
        raise pytest.UsageError(f"{MARKER} expects the op name as its first argument")
    spec = get(marker.args[0])
    kw = dict(marker.kwargs)
    dtypes = kw.pop("dtypes", ("float32", "float64"))
    families = kw.pop("families", None) or spec.families
    seeds = kw.pop("seeds", 1)
    if "dim" in kw:                              # torch's name
        kw["axis"] = kw.pop("dim")
    unknown = [f for f in families if f not in spec.families]
    if unknown:
        raise pytest.UsageError(f"{MARKER}({spec.name!r}): families {unknown} are not "
                                f"declared for {spec.name}; its families are {list(spec.families)}")
    out = []
    for dt in dtypes:
        for fam in families:
            for seed in range(seeds):
                arrays, params = generate(spec, fam, np.dtype(dt), seed)
                params.update(kw)
                out.append(pytest.param((spec.name, np.dtype(dt).name, fam, seed, arrays, params, kw),
                                        id=f"{np.dtype(dt).name}-{fam}-{seed}"))
    return out


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    if "refrt_case" not in metafunc.fixturenames:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: a test marked {MARKER} takes "
                                "the refrt_case fixture")
    metafunc.parametrize("refrt_case", _cases(marker), indirect=True)


@pytest.fixture
def refrt_case(request):
    """The input-family draw of a ``refrt_reference`` test (a ``ReferenceCase``)."""
    if not hasattr(request, "param"):
        raise pytest.UsageError(f"the refrt_case fixture needs the {MARKER}(op, ...) marker")
    op, dt, fam, seed, arrays, params, explicit = request.param
    return ReferenceCase(op, dt, fam, seed, [a.copy() for a in arrays], dict(params),
                         _max_prec(request.config), dict(explicit))


class _Oracle:
    """``refrt.oracle`` with the session's ``max_prec`` as the default."""

    def __init__(self, max_prec):
        from .. import oracle
        self._oracle, self._max_prec = oracle, max_prec

    def evaluate(self, op, *inputs, **kw):
        kw.setdefault("max_prec", self._max_prec)
        return self._oracle.evaluate(op, *inputs, **kw)

    def __getattr__(self, name):
        from ..registry import OPS
        if name in OPS:
            return functools.partial(self.evaluate, name)
        return getattr(self._oracle, name)


@pytest.fixture
def refrt_oracle(request):
    """The certified oracle: ``refrt_oracle.evaluate(op, *inputs, dtype=...)`` or
    ``refrt_oracle.<op>(...)``, with ``--refrt-max-prec`` applied."""
    max_prec = _max_prec(request.config)
    if max_prec is None:
        from refrt import oracle
        return oracle
    return _Oracle(max_prec)


@pytest.fixture
def refrt_assert_close(request):
    """``refrt.testing.assert_close_to_reference(actual, op, *inputs, ulps=None, rtol=None,
    atol=None, dim=None, **params)``, with ``--refrt-max-prec`` applied."""
    from refrt.testing import assert_close_to_reference
    max_prec = _max_prec(request.config)
    if max_prec is None:
        return assert_close_to_reference
    return functools.partial(assert_close_to_reference, max_prec=max_prec)
