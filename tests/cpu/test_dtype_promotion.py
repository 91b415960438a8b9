"""Dtype promotion and casting.

The reference lattice below is tinygrad's (jax-style) promotion lattice, written out independently of the library:
  bool -> int8, uint8;  int8 -> int16 -> int32 -> int64 -> {float16, bfloat16};
  uint8 -> {int16, uint16};  uint16 -> {int32, uint32};  uint32 -> {int64, uint64};  uint64 -> {float16, bfloat16};
  float16, bfloat16 -> float32 -> float64.
The result of mixing two dtypes is the least upper bound; when several bounds tie, the lowest priority wins
(float16 before bfloat16). Python scalars are weak: they take the tensor's dtype when they fit its kind (any
scalar with a float tensor, int/bool with an int tensor), otherwise they promote as default_int/default_float.
"""
import itertools, math
import numpy as np
import pytest
from hypothesis import given, strategies as st
from tinygrad import Tensor, dtypes
from strategies import (ALL_DTYPES, arrays, shapes, elements, tensor, assert_matches, arrays_from, wrap_int, int_bounds,
                        is_float, is_int, tdt, examples, FLOAT_RANGE)

_UP = {"bool": ["int8", "uint8"], "int8": ["int16"], "int16": ["int32"], "int32": ["int64"],
       "int64": ["float16", "bfloat16"], "uint8": ["int16", "uint16"], "uint16": ["int32", "uint32"],
       "uint32": ["int64", "uint64"], "uint64": ["float16", "bfloat16"], "float16": ["float32"],
       "bfloat16": ["float32"], "float32": ["float64"], "float64": []}
_PRIORITY = {n: i for i, n in enumerate(["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                                         "uint64", "float16", "bfloat16", "float32", "float64"])}

def _ancestors(n):
  out = {n}
  for u in _UP[n]: out |= _ancestors(u)
  return out

def lub(*names):
  return min(set.intersection(*[_ancestors(n) for n in names]), key=_PRIORITY.__getitem__)

def test_reference_lattice_documented_examples():
  # guards the test's own lattice against typos: the documented tinygrad results
  assert lub("int8", "uint8") == "int16" and lub("int64", "float16") == "float16"
  assert lub("uint64", "int64") == "float16" and lub("float16", "bfloat16") == "float32"
  assert lub("bool", "int8") == "int8" and lub("uint32", "int32") == "int64" and lub("uint8", "uint16") == "uint16"

# ---------------------------------------------------------------- tensor (op) tensor

_PAIRS = list(itertools.product(ALL_DTYPES, ALL_DTYPES))

def _small(name, vals):
  return np.array(vals, dtype=bool if name == "bool" else np.float32 if name == "bfloat16" else np.dtype(name))

@pytest.mark.parametrize("a_name, b_name", _PAIRS)
def test_add_of_two_dtypes_promotes_to_least_upper_bound(a_name, b_name):
  a = _small(a_name, [0, 1, 1, 0] if a_name == "bool" else [0, 1, 2, 3])
  b = _small(b_name, [1, 1, 0, 0] if b_name == "bool" else [3, 2, 1, 0])
  out = lub(a_name, b_name)
  expected = np.logical_or(a, b) if out == "bool" else a.astype(np.int64) + b.astype(np.int64)
  assert_matches(tensor(a, a_name) + tensor(b, b_name), expected.astype(object) if is_int(out) else expected, out)

@pytest.mark.parametrize("a_name, b_name", [p for p in _PAIRS if p[0] < p[1]])
def test_promotion_is_symmetric_for_mul_maximum_where(a_name, b_name):
  ta, tb = Tensor.ones(2, dtype=tdt(a_name)), Tensor.ones(2, dtype=tdt(b_name))
  out = tdt(lub(a_name, b_name))
  assert (ta * tb).dtype == out and (tb * ta).dtype == out
  assert ta.maximum(tb).dtype == out and tb.maximum(ta).dtype == out
  cond = Tensor([True, False])
  assert cond.where(ta, tb).dtype == out and cond.where(tb, ta).dtype == out

@pytest.mark.parametrize("a_name, b_name", [("int8", "uint8"), ("float16", "int64"), ("uint32", "int8"), ("bool", "float16")])
def test_comparison_of_mixed_dtypes_is_bool_and_correct(a_name, b_name):
  a, b = _small(a_name, [0, 1, 1, 0]), _small(b_name, [1, 1, 0, 0])
  assert_matches(tensor(a, a_name) < tensor(b, b_name), a.astype(np.float64) < b.astype(np.float64), "bool")
  assert_matches(tensor(a, a_name) == tensor(b, b_name), a.astype(np.float64) == b.astype(np.float64), "bool")

# ---------------------------------------------------------------- tensor (op) Python scalar: scalars are weak

def scalar_result(tensor_name, scalar):
  if is_float(tensor_name): return tensor_name
  if isinstance(scalar, bool): return tensor_name
  if isinstance(scalar, int): return tensor_name if is_int(tensor_name) else lub(tensor_name, "int32")
  return lub(tensor_name, "float32")

@pytest.mark.parametrize("name", ALL_DTYPES)
@pytest.mark.parametrize("scalar", [True, 2, 2.5])
@pytest.mark.parametrize("side", ["right", "left"])
def test_python_scalar_is_weak_in_mul(name, scalar, side):
  a = _small(name, [0, 1, 1, 0] if name == "bool" else [0, 1, 2, 3])
  t = tensor(a, name)
  out = t * scalar if side == "right" else scalar * t
  out_name = scalar_result(name, scalar)
  expected = a.astype(np.float64) * scalar
  if out_name == "bool": expected = np.logical_and(a, scalar)
  elif is_int(out_name): expected = expected.astype(np.int64).astype(object)
  assert_matches(out, expected, out_name)

@pytest.mark.parametrize("name, scalar, out", [
  ("int32", 2.5, "float32"), ("float16", 2, "float16"), ("int8", 1, "int8"), ("uint8", 300, "uint8"),
  ("int64", 0.5, "float32"), ("uint64", 1.5, "float32"), ("bool", 3, "int32"), ("bool", 0.5, "float32"),
  ("bfloat16", 3.0, "bfloat16"), ("float64", 1e-3, "float64"), ("int16", True, "int16")])
def test_documented_weak_scalar_examples(name, scalar, out):
  assert (Tensor.ones(3, dtype=tdt(name)) + scalar).dtype == tdt(out)

def test_int8_plus_python_int_wraps_in_int8():
  # the scalar is cast to int8 (300 -> 44), and 1 + 44 = 45 is in range
  assert_matches(Tensor([1], dtype=dtypes.int8) + 300, np.array([45], dtype=object), "int8")

@pytest.mark.parametrize("name", ALL_DTYPES)
@pytest.mark.parametrize("op", ["exp", "log2", "sqrt", "sin", "sigmoid", "reciprocal"])
def test_float_valued_unary_of_non_float_is_default_float(name, op):
  a = _small(name, [1, 1, 0, 1] if name == "bool" else [1, 2, 3, 4])
  out = getattr(tensor(a, name), op)()
  assert out.dtype == (tdt(name) if is_float(name) else dtypes.float32)

@pytest.mark.parametrize("name", ALL_DTYPES)
def test_true_division_result_dtype(name):
  a = _small(name, [1, 1] if name == "bool" else [1, 2])
  assert (tensor(a, name) / tensor(a, name)).dtype == (tdt(name) if is_float(name) else dtypes.float32)

@pytest.mark.parametrize("name", ALL_DTYPES)
def test_comparisons_give_bool(name):
  t = Tensor.ones(2, dtype=tdt(name))
  for out in (t < t, t <= t, t > t, t >= t, t == t, t != t, t < 1, t.isnan() if is_float(name) else t == 0, t.logical_not()):
    assert out.dtype == dtypes.bool

# ---------------------------------------------------------------- cast

def cast_elements(src, dst):
  """Source values whose conversion to dst numpy defines: float->int only for finite, in-range values."""
  if src == "bool": return st.booleans()
  if is_int(src): return elements(src)
  if is_int(dst):
    lo, hi = int_bounds(dst)
    r = FLOAT_RANGE[src]
    lo, hi = max(lo, -r), min(hi, r)
    # stay an ulp away from the ends: a float just above INT64_MAX is out of range once rounded
    return elements(src, lo=math.ceil(lo * (1 - 2**-10)) if lo < 0 else 0.0, hi=math.floor(hi * (1 - 2**-10)))
  return elements(src, specials=True)

def cast_reference(a, src, dst):
  if dst == "bool": return a != 0
  if is_int(dst):
    if src == "bool": return a.astype(np.int64).astype(object)
    if is_int(src): return wrap_int(a.astype(object), dst)
    return np.trunc(a.astype(np.float64)).astype(object) if a.size else np.zeros(a.shape, dtype=object)
  if is_int(src): return np.array([float(int(v)) for v in a.reshape(-1)], dtype=np.float64).reshape(a.shape)
  return a.astype(np.float64)

@pytest.mark.parametrize("src, dst", _PAIRS)
@examples(3)
@given(data=st.data())
def test_cast_matches_numpy(src, dst, data):
  a = data.draw(shapes(max_dims=2).flatmap(lambda s: arrays_from(src, s, cast_elements(src, dst))))
  assert_matches(tensor(a, src).cast(tdt(dst)), cast_reference(a, src, dst), dst)

@pytest.mark.parametrize("method, name", [("float", "float32"), ("half", "float16"), ("double", "float64"),
                                          ("int", "int32"), ("long", "int64"), ("short", "int16"), ("bool", "bool"),
                                          ("bfloat16", "bfloat16")])
def test_cast_shorthand_methods(method, name):
  a = np.array([0.0, 1.0, -2.0, 3.0], dtype=np.float32)
  assert_matches(getattr(Tensor(a), method)(), cast_reference(a, "float32", name), name)

@pytest.mark.parametrize("name", ["float16", "int8", "uint16", "bool"])
def test_cast_accepts_dtype_name_string(name):
  assert Tensor([1.0, 2.0]).cast(name).dtype == tdt(name)

@examples(10)
@given(data=st.data())
def test_cast_round_trip_through_wider_float_is_exact(data):
  src = data.draw(st.sampled_from(["float16", "bfloat16", "float32"]))
  a = data.draw(shapes().flatmap(lambda s: arrays(src, s, specials=True)))
  out = tensor(a, src).cast(dtypes.float64).cast(tdt(src))
  assert_matches(out, a.astype(np.float64), src, rtol=0, atol=0)

def test_float_to_int_cast_truncates_toward_zero():
  assert_matches(Tensor([-2.7, -0.5, 0.5, 2.7, 7.0]).cast(dtypes.int32), np.array([-2, 0, 0, 2, 7], dtype=object), "int32")
