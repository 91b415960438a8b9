"""Hypothesis strategies and numpy-reference helpers shared by the tests/cpu property tests.

Conventions:
* dtypes are passed around by *name* ("float32", "bfloat16", ...) so this module imports without the library;
  `tdt(name)` turns a name into the library's DType.
* Inputs are generated as numpy arrays holding values that are exactly representable in the target dtype
  (bfloat16 values live in a float32 array, rounded to bfloat16 first), so the float64 numpy reference sees the
  same numbers as the library.
* `assert_matches(t, expected, dtype)` rounds the float64 reference into the result dtype and compares with a
  dtype-aware tolerance; integer and bool results are compared exactly.
"""
from __future__ import annotations
import math
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
SINT_DTYPES = ("int8", "int16", "int32", "int64")
UINT_DTYPES = ("uint8", "uint16", "uint32", "uint64")
INT_DTYPES = SINT_DTYPES + UINT_DTYPES
ALL_DTYPES = ("bool",) + INT_DTYPES + FLOAT_DTYPES
NUMERIC_DTYPES = INT_DTYPES + FLOAT_DTYPES

# numpy storage dtype used to generate values (bfloat16 values are stored in float32)
NP_STORAGE = {"bool": np.bool_, "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
              "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
              "float16": np.float16, "bfloat16": np.float32, "float32": np.float32, "float64": np.float64}

# the largest magnitude used for "ordinary" float values: results of + - * on two of them stay finite
FLOAT_RANGE = {"float16": 200.0, "bfloat16": 1e4, "float32": 1e6, "float64": 1e9}
# the smallest nonzero magnitude used for ordinary values (keeps subnormals out of inputs and most results)
FLOAT_TINY = {"float16": 1e-2, "bfloat16": 1e-3, "float32": 1e-3, "float64": 1e-3}

# (rtol, atol) per result dtype: "arith" for correctly rounded ops, "transcendental" for exp/log/sin/...
TOLERANCES = {
  "arith": {"float16": (1e-3, 1e-5), "bfloat16": (1e-2, 1e-5), "float32": (1e-6, 1e-30), "float64": (1e-12, 1e-300)},
  "transcendental": {"float16": (2e-3, 2e-3), "bfloat16": (1.6e-2, 1.6e-2), "float32": (1e-5, 1e-6),
                     "float64": (1e-10, 1e-12)},
  "reduce": {"float16": (5e-3, 5e-3), "bfloat16": (3e-2, 3e-2), "float32": (2e-5, 1e-5), "float64": (1e-11, 1e-11)},
}

SPECIALS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.0)

def tdt(name: str):
  """The library's DType for a dtype name."""
  from tinygrad import dtypes
  return getattr(dtypes, name)

def dtype_name(d) -> str:
  """The canonical name ('float32', ...) of one of the library's DTypes."""
  from tinygrad import dtypes
  for n in ALL_DTYPES:
    if getattr(dtypes, n) == d: return n
  raise AssertionError(f"{d!r} is not one of the 13 supported dtypes")

def is_float(name: str) -> bool: return name in FLOAT_DTYPES
def is_int(name: str) -> bool: return name in INT_DTYPES
def is_uint(name: str) -> bool: return name in UINT_DTYPES

def int_bounds(name: str) -> tuple[int, int]:
  info = np.iinfo(NP_STORAGE[name])
  return int(info.min), int(info.max)

# ---------- rounding into narrow float dtypes (numpy has no bfloat16) ----------

def round_bf16(x) -> np.ndarray:
  """Round (float32-convertible) values to the nearest bfloat16, ties to even; returned as float32."""
  a = np.asarray(x, dtype=np.float32).copy()
  finite = np.isfinite(a)
  bits = a.view(np.uint32).astype(np.uint64)
  rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
  return np.where(finite, rounded, a)

def round_to(x, name: str) -> np.ndarray:
  """x (float64 reference values) rounded into dtype `name`, returned as float64 (ints/bools unchanged)."""
  x = np.asarray(x, dtype=np.float64)
  with np.errstate(over="ignore", invalid="ignore"):
    if name == "float16": return x.astype(np.float16).astype(np.float64)
    if name == "bfloat16": return round_bf16(x.astype(np.float32)).astype(np.float64)
    if name == "float32": return x.astype(np.float32).astype(np.float64)
  return x

# ---------- element and array strategies ----------

def _inward(v: float, width: int, up: bool) -> float:
  """v rounded to a float of `width` bits, moved towards the inside of the interval if rounding moved it out."""
  npt = {16: np.float16, 32: np.float32, 64: np.float64}[width]
  r = npt(v)
  if up and float(r) < v: r = np.nextafter(r, npt(np.inf))
  if not up and float(r) > v: r = np.nextafter(r, npt(-np.inf))
  return float(r)

def float_elements(name: str, lo: float | None = None, hi: float | None = None, tiny: float | None = None,
                   specials: bool = False, nonzero: bool = False, integral: bool = False) -> st.SearchStrategy[float]:
  """Floats exactly representable in `name`, in [lo, hi], never subnormal; optionally nan/inf/±0."""
  hi = FLOAT_RANGE[name] if hi is None else hi
  lo = -hi if lo is None else lo
  tiny = FLOAT_TINY[name] if tiny is None else tiny
  width = {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}[name]
  if integral:
    s = st.integers(math.ceil(lo), math.floor(hi)).map(float)
    if nonzero: s = s.filter(lambda v: v != 0)
  else:
    parts = []
    def fl(a, b): return st.floats(_inward(a, width, True), _inward(b, width, False), width=width, allow_subnormal=False)
    if hi >= tiny: parts.append(fl(max(lo, tiny), hi))
    if lo <= -tiny: parts.append(fl(lo, min(hi, -tiny)))
    if not nonzero and lo <= 0 <= hi: parts.append(st.sampled_from([0.0, -0.0]) if lo < 0 else st.just(0.0))
    s = st.one_of(*parts)
  if name == "bfloat16": s = s.map(lambda v: float(round_bf16(v))).filter(lambda v: lo <= v <= hi)
  if specials: s = st.one_of(s, st.sampled_from([math.nan, math.inf, -math.inf]))
  return s

def int_elements(name: str, lo: int | None = None, hi: int | None = None) -> st.SearchStrategy[int]:
  dlo, dhi = int_bounds(name)
  return st.integers(dlo if lo is None else max(lo, dlo), dhi if hi is None else min(hi, dhi))

def elements(name: str, **kw) -> st.SearchStrategy:
  """Values of dtype `name`. Keyword args (lo, hi, specials, nonzero, ...) apply to the kinds that understand them."""
  if name == "bool": return st.booleans()
  if is_int(name):
    lo, hi = kw.get("lo"), kw.get("hi")
    s = int_elements(name, None if lo is None else math.ceil(lo), None if hi is None else math.floor(hi))
    return s.filter(lambda v: v != 0) if kw.get("nonzero") else s
  return float_elements(name, **kw)

def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 0, max_side: int = 4) -> st.SearchStrategy[tuple]:
  """Shapes including 0-d, size-1 and (with min_side=0) empty dimensions."""
  return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)

def arrays(name: str, shape, **kw) -> st.SearchStrategy[np.ndarray]:
  """A numpy array of dtype `name` (bfloat16 -> float32 storage holding bfloat16 values)."""
  return hnp.arrays(NP_STORAGE[name], shape, elements=elements(name, **kw))

def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 4, max_side: int = 4, min_side: int = 0):
  """`num_shapes` shapes that numpy broadcasts together (includes 0-d, 1-sized and empty dims)."""
  return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
                                           min_side=min_side, max_side=max_side).map(lambda bs: bs.input_shapes)

def axes_for(ndim: int, allow_none: bool = True, allow_tuple: bool = True) -> st.SearchStrategy:
  """An axis argument: None, an int (possibly negative) or a tuple of distinct ints (possibly negative)."""
  options = []
  if allow_none: options.append(st.none())
  if ndim > 0:
    options.append(st.integers(-ndim, ndim - 1))
    if allow_tuple:
      options.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).flatmap(
        lambda axs: st.tuples(*[st.sampled_from([a, a - ndim]) for a in axs])))
  return st.one_of(*options)

def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
  if axis is None: return tuple(range(ndim))
  if isinstance(axis, int): axis = (axis,)
  return tuple(sorted(a % ndim for a in axis))

# ---------- moving data in and out of the library ----------

def tensor(arr: np.ndarray, name: str):
  """A library Tensor of dtype `name` holding arr's values."""
  from tinygrad import Tensor
  if name == "bfloat16": return Tensor(np.asarray(arr, dtype=np.float32), dtype=tdt("bfloat16"))
  return Tensor(np.asarray(arr, dtype=NP_STORAGE[name]))

def to_numpy(t) -> np.ndarray:
  """t.numpy() widened for comparison: float64 for floats (bfloat16 may come back as float32 or ml_dtypes)."""
  out = t.numpy()
  assert isinstance(out, np.ndarray), f".numpy() returned {type(out).__name__}"
  assert out.shape == tuple(t.shape), f".numpy() shape {out.shape} != tensor shape {t.shape}"
  return out.astype(np.float64) if out.dtype.kind not in "biu" else out

def ref64(arr: np.ndarray) -> np.ndarray:
  """Input array as the float64 reference sees it (ints become float64 too; values exact for |v| < 2**53)."""
  return np.asarray(arr).astype(np.float64)

def assert_matches(t, expected, name: str, kind: str = "arith", check_dtype: bool = True, rtol=None, atol=None):
  """Compare Tensor `t` (whose dtype should be `name`) with a reference: float64 values for float results,
  exact integer / bool values otherwise. Shapes must agree exactly (no broadcasting of the result)."""
  if check_dtype: assert t.dtype == tdt(name), f"dtype {t.dtype} != expected {name}"
  expected = np.asarray(expected)
  assert tuple(t.shape) == expected.shape, f"shape {tuple(t.shape)} != expected {expected.shape}"
  got = to_numpy(t)
  if name == "bool":
    np.testing.assert_array_equal(got.astype(np.bool_), expected.astype(np.bool_))
  elif is_int(name):
    assert got.dtype.kind in "iu", f".numpy() of an int tensor gave {got.dtype}"
    if expected.dtype.kind == "f":
      assert np.all(np.isfinite(expected)), "test bug: float reference for an integer result is not finite"
      expected = np.asarray(np.rint(expected)).astype(np.int64 if np.all(np.abs(expected) < 2**62) else object)
    np.testing.assert_array_equal(np.asarray(got).astype(object), np.asarray(expected).astype(object))
  else:
    r, a = TOLERANCES[kind][name]
    np.testing.assert_allclose(got, round_to(expected, name), rtol=r if rtol is None else rtol,
                               atol=a if atol is None else atol, equal_nan=True)

def wrap_int(values, name: str) -> np.ndarray:
  """Python ints wrapped modulo 2**bits into dtype `name` (C / numpy cast semantics), as an object array."""
  lo, hi = int_bounds(name)
  span = hi - lo + 1
  return np.vectorize(lambda v: (int(v) - lo) % span + lo, otypes=[object])(np.asarray(values, dtype=object)) \
    if np.asarray(values).size else np.asarray(values, dtype=object)

# ---------- example budgets ----------

import os as _os
from hypothesis import settings as _settings
EXAMPLE_SCALE = float(_os.environ.get("HYPOTHESIS_SCALE", "1"))

def examples(n: int) -> _settings:
  """settings(max_examples=n), scaled by $HYPOTHESIS_SCALE; other settings come from the loaded profile."""
  return _settings(max_examples=max(1, int(n * EXAMPLE_SCALE)))

def arrays_from(name: str, shape, elems: st.SearchStrategy) -> st.SearchStrategy[np.ndarray]:
  """A numpy array of dtype `name` whose elements come from the given strategy (values must be representable)."""
  return hnp.arrays(NP_STORAGE[name], shape, elements=elems)

# ---------- typed arrays for exact (movement) comparisons ----------

def widened(x, name: str) -> np.ndarray:
  """numpy result widened the way assert_matches wants it (object ints, float64 floats)."""
  x = np.asarray(x)
  return x.astype(object) if is_int(name) else x.astype(np.float64) if is_float(name) else x

@st.composite
def typed_array(draw, shape_strategy=None, dtypes=ALL_DTYPES):
  """(dtype name, array): a dtype drawn from `dtypes`, then an array of it (floats include NaN/inf)."""
  d = draw(st.sampled_from(dtypes))
  shape = draw(shape_strategy if shape_strategy is not None else shapes())
  return d, draw(arrays(d, shape, **({"specials": True} if is_float(d) else {})))
