"""Reductions, softmax and matmul against numpy.

Float sums are compared with a tolerance relative to sum(|x|) along the reduced axes (the quantity rounding error
scales with), not to |sum(x)|, which cancellation can make arbitrarily small. Integer reductions are exact
(Python-int references, wrapped modulo 2**bits where the accumulator is unsigned).
Result dtypes follow tinygrad: sum accumulates ints in int32 / uint32 (or the 64-bit type itself), bools in int32,
float16/bfloat16 sums come back in their own dtype; prod/max/min keep the dtype; mean of ints is float32; argmax is
int32.
"""
import math
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from tinygrad import Tensor
from strategies import (FLOAT_DTYPES, ALL_DTYPES, NUMERIC_DTYPES, arrays, arrays_from, shapes, elements, axes_for,
                        normalize_axes, tensor, ref64, to_numpy, assert_matches, wrap_int, is_float, is_int, is_uint,
                        tdt, examples)

# tolerance relative to the magnitude scale of the reduction (sum of |x|), per result dtype
SCALE_TOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-5, "float64": 1e-13}

def sum_dtype(d: str) -> str:
  if d == "bool" or d in ("int8", "int16", "int32"): return "int32"
  if d in ("uint8", "uint16", "uint32"): return "uint32"
  return d

def _np_axis(axis): return axis if axis is None or isinstance(axis, int) else tuple(axis)

def assert_scaled_close(t, expected, scale, name):
  """|got - expected| <= tol * scale, elementwise, plus exact agreement of NaN/inf positions."""
  assert t.dtype == tdt(name), f"dtype {t.dtype} != expected {name}"
  expected, scale = np.asarray(expected, dtype=np.float64), np.asarray(scale, dtype=np.float64)
  assert tuple(t.shape) == expected.shape, f"shape {tuple(t.shape)} != expected {expected.shape}"
  got = to_numpy(t)
  np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg="NaN positions differ")
  finite = np.isfinite(expected)
  np.testing.assert_array_equal(got[~finite], expected[~finite], err_msg="inf values differ")
  err = np.abs(got - expected)[finite]
  bound = (SCALE_TOL[name] * scale + 1e-30)[finite] if scale.ndim else SCALE_TOL[name] * scale + 1e-30
  assert np.all(err <= bound), f"max error {err.max()} exceeds bound; got {got} expected {expected}"

def _int_sum_inputs(d):
  """Bounds that keep a sum of up to 256 elements inside a signed accumulator."""
  if d in ("int32",): return dict(lo=-2**22, hi=2**22)
  if d in ("int64",): return dict(lo=-2**54, hi=2**54)
  return {}

@st.composite
def array_and_axis(draw, dtype, allow_tuple=True, nonempty_reduce=False, max_dims=4, **kw):
  shape = draw(shapes(max_dims=max_dims))
  axis = draw(axes_for(len(shape), allow_tuple=allow_tuple))
  if nonempty_reduce: assume(all(shape[a] > 0 for a in normalize_axes(axis, len(shape))))
  return draw(arrays(dtype, shape, **kw)), axis

# ---------------------------------------------------------------- sum

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@examples(15)
@given(data=st.data(), keepdim=st.booleans())
def test_sum_matches_numpy(dtype, data, keepdim):
  kw = _int_sum_inputs(dtype) if is_int(dtype) else {}
  a, axis = data.draw(array_and_axis(dtype, **kw))
  out = tensor(a, dtype).sum(axis=axis, keepdim=keepdim)
  od = sum_dtype(dtype)
  if is_float(dtype):
    x = ref64(a)
    assert_scaled_close(out, x.sum(axis=_np_axis(axis), keepdims=keepdim), np.abs(x).sum(axis=_np_axis(axis), keepdims=keepdim), od)
  else:
    expected = a.astype(object).sum(axis=_np_axis(axis), keepdims=keepdim) if a.size else np.zeros_like(a, dtype=np.int64).sum(axis=_np_axis(axis), keepdims=keepdim)
    assert_matches(out, wrap_int(expected, od), od)

@examples(8)
@given(data=st.data())
def test_sum_with_explicit_dtype_accumulates_in_it(data):
  a = data.draw(shapes(min_dims=1).flatmap(lambda s: arrays("int8", s)))
  assert_matches(tensor(a, "int8").sum(dtype=tdt("int64")), np.asarray(int(a.astype(np.int64).sum())), "int64")

# ---------------------------------------------------------------- mean

@pytest.mark.parametrize("dtype", FLOAT_DTYPES + ("int32", "uint8", "bool"))
@examples(12)
@given(data=st.data(), keepdim=st.booleans())
def test_mean_matches_numpy(dtype, data, keepdim):
  a, axis = data.draw(array_and_axis(dtype, **({"lo": -1000, "hi": 1000} if is_int(dtype) else {})))
  x = ref64(a)
  with np.errstate(all="ignore"):  # a mean over an empty axis is 0/0 = NaN in both
    expected = x.mean(axis=_np_axis(axis), keepdims=keepdim)
    scale = np.nan_to_num(np.abs(x).mean(axis=_np_axis(axis), keepdims=keepdim))
  od = dtype if is_float(dtype) else "float32"
  assert_scaled_close(tensor(a, dtype).mean(axis=axis, keepdim=keepdim), expected, scale, od)

# ---------------------------------------------------------------- max / min

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("op", ["max", "min"])
@examples(12)
@given(data=st.data(), keepdim=st.booleans())
def test_max_min_match_numpy_exactly(op, dtype, data, keepdim):
  # NaN is left out: tinygrad's max of a NaN-containing axis is not numpy's; empty reductions have no identity in numpy
  a, axis = data.draw(array_and_axis(dtype, nonempty_reduce=True, **({"specials": False} if is_float(dtype) else {})))
  if is_float(dtype) and a.size: a.flat[0] = data.draw(st.sampled_from([np.inf, -np.inf, a.flat[0]]))
  expected = getattr(np, op)(a, axis=_np_axis(axis), keepdims=keepdim)
  expected = expected.astype(np.float64) if is_float(dtype) else expected.astype(object) if is_int(dtype) else expected
  assert_matches(getattr(tensor(a, dtype), op)(axis=axis, keepdim=keepdim), expected, dtype, rtol=0, atol=0)

# ---------------------------------------------------------------- prod

@pytest.mark.parametrize("dtype", NUMERIC_DTYPES + ("bool",))
@examples(12)
@given(data=st.data(), keepdim=st.booleans())
def test_prod_matches_numpy(dtype, data, keepdim):
  shape = data.draw(shapes(max_dims=3, max_side=3))  # at most 27 factors
  axis = data.draw(axes_for(len(shape)))
  if dtype in ("int8", "int16"): elems = st.integers(-1, 1)
  elif dtype in ("int32", "int64"): elems = st.integers(-2, 2)
  elif is_uint(dtype) or dtype == "bool": elems = elements(dtype)  # unsigned products wrap, which is defined
  elif dtype == "float16": elems = st.sampled_from([-1.25, -1.0, -0.8125, 0.0, 0.8125, 1.0, 1.125, 1.25])
  else: elems = st.one_of(elements(dtype, lo=0.5, hi=2.0), elements(dtype, lo=-2.0, hi=-0.5), st.just(0.0))
  a = data.draw(arrays_from(dtype, shape, elems))
  out = tensor(a, dtype).prod(axis=axis, keepdim=keepdim)
  npax = _np_axis(axis)
  if dtype == "bool":
    assert_matches(out, np.all(a, axis=npax, keepdims=keepdim), "bool")
  elif is_int(dtype):
    expected = np.prod(a.astype(object), axis=npax, keepdims=keepdim) if a.size else np.ones(np.sum(a, axis=npax, keepdims=keepdim).shape, dtype=object)
    assert_matches(out, wrap_int(expected, dtype), dtype)
  else:
    n = math.prod(shape[i] for i in normalize_axes(axis, len(shape)))  # factors per result element
    eps = {"float16": 2**-11, "bfloat16": 2**-8, "float32": 2**-24, "float64": 2**-53}[dtype]
    assert_matches(out, np.prod(ref64(a), axis=npax, keepdims=keepdim), dtype, rtol=2 * (n + 1) * eps, atol=0)

# ---------------------------------------------------------------- argmax / argmin

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("op", ["argmax", "argmin"])
@examples(12)
@given(data=st.data(), keepdim=st.booleans())
def test_argmax_argmin_first_occurrence_matches_numpy(op, dtype, data, keepdim):
  shape = data.draw(shapes(min_dims=0))
  axis = data.draw(axes_for(len(shape), allow_tuple=False))
  assume(all(shape[a] > 0 for a in normalize_axes(axis, len(shape))))
  kw = {"specials": False} if is_float(dtype) else {}
  pool = st.sampled_from(data.draw(st.lists(elements(dtype, **kw), min_size=1, max_size=3)))  # ties are likely
  a = data.draw(arrays_from(dtype, shape, pool))
  if axis is None: keepdim = False  # numpy's keepdims with axis=None keeps every dim, tinygrad's returns 0-d
  expected = getattr(np, op)(a, axis=axis, keepdims=keepdim).astype(np.int64)
  assert_matches(getattr(tensor(a, dtype), op)(axis=axis, keepdim=keepdim), expected, "int32")

# ---------------------------------------------------------------- var / std

@pytest.mark.parametrize("dtype", FLOAT_DTYPES + ("int32",))
@pytest.mark.parametrize("op", ["var", "std"])
@examples(12)
@given(data=st.data(), keepdim=st.booleans(), correction=st.sampled_from([0, 1]))
def test_var_std_match_numpy(op, dtype, data, keepdim, correction):
  hi = 10 if dtype == "float16" else 100
  a, axis = data.draw(array_and_axis(dtype, lo=-hi, hi=hi))
  n = math.prod(a.shape[i] for i in normalize_axes(axis, a.ndim))
  assume(n - correction > 0)
  x, npax = ref64(a), _np_axis(axis)
  var = x.var(axis=npax, ddof=correction, keepdims=keepdim)
  scale = (x ** 2).mean(axis=npax, keepdims=keepdim) * n / (n - correction)
  od = dtype if is_float(dtype) else "float32"
  out = getattr(tensor(a, dtype), op)(axis=axis, keepdim=keepdim, correction=correction)
  if op == "var": assert_scaled_close(out, var, scale, od)
  else:  # |sqrt(u) - sqrt(v)| <= sqrt(|u - v|): the std bound follows from the var bound
    assert_matches(out, np.sqrt(var), od, atol=np.sqrt(SCALE_TOL[od] * scale.max() if scale.size else 0) + 1e-6,
                   rtol={"float16": 2e-3, "bfloat16": 1.6e-2}.get(od, 1e-6))

@examples(6)
@given(data=st.data())
def test_var_default_correction_is_bessel(data):
  a = data.draw(shapes(min_dims=1, min_side=2).flatmap(lambda s: arrays("float64", s, lo=-10, hi=10)))
  assert_scaled_close(tensor(a, "float64").var(), np.var(a, ddof=1), (a ** 2).mean() * 2 + 1e-300, "float64")

# ---------------------------------------------------------------- softmax / log_softmax

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@examples(12)
@given(data=st.data())
def test_softmax_log_softmax_match_numpy(op, dtype, data):
  hi = 8 if dtype == "float16" else 30
  shape = data.draw(shapes(min_dims=1))
  axis = data.draw(st.integers(-len(shape), len(shape) - 1))
  a = data.draw(arrays(dtype, shape, lo=-hi, hi=hi))
  x = ref64(a)
  m = x.max(axis=axis, keepdims=True) if x.size else x
  lse = m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) if x.size else x
  expected = np.exp(x - lse) if op == "softmax" else x - lse
  t = tensor(a, dtype)
  out = t.softmax(axis) if op == "softmax" else t.log_softmax(axis)
  assert_matches(out, expected, dtype, "transcendental", atol={"float32": 1e-5, "float64": 1e-12}.get(dtype))

@examples(6)
@given(data=st.data())
def test_softmax_default_axis_is_last(data):
  a = data.draw(shapes(min_dims=2, min_side=1).flatmap(lambda s: arrays("float32", s, lo=-10, hi=10)))
  x = ref64(a)
  e = np.exp(x - x.max(axis=-1, keepdims=True))
  assert_matches(tensor(a, "float32").softmax(), e / e.sum(axis=-1, keepdims=True), "float32", "transcendental")

# ---------------------------------------------------------------- matmul / dot

@st.composite
def matmul_shapes(draw):
  """Operand shapes covering numpy's matmul rules: 1-D on either side, 2-D, and broadcast batch dims."""
  n, k, m = draw(st.integers(0, 5)), draw(st.integers(0, 5)), draw(st.integers(0, 5))
  kind = draw(st.sampled_from(["1x1", "1x2", "2x1", "2x2", "batch"]))
  if kind == "1x1": return (k,), (k,)
  if kind == "1x2": return (k,), (k, m)
  if kind == "2x1": return (n, k), (k,)
  if kind == "2x2": return (n, k), (k, m)
  ba, bb = draw(st.sampled_from([((2,), ()), ((), (3,)), ((2, 1), (3,)), ((1,), (2,)), ((3,), (3,)), ((2, 3), (1, 3))]))
  return (*ba, n, k), (*bb, k, m)

@pytest.mark.parametrize("dtype", FLOAT_DTYPES + ("int8", "int32", "uint8", "int64"))
@pytest.mark.parametrize("form", ["@", "matmul", "dot"])
@examples(10)
@given(data=st.data())
def test_matmul_matches_numpy_including_1d_rules(form, dtype, data):
  sa, sb = data.draw(matmul_shapes())
  if form == "dot" and (len(sa) > 2 or len(sb) > 2): sa, sb = sa[-2:], sb[-2:]  # keep dot on <=2-D operands
  kw = dict(lo=0 if is_uint(dtype) else -4, hi=4) if is_int(dtype) else dict(lo=-8, hi=8)
  a, b = data.draw(arrays(dtype, sa, **kw)), data.draw(arrays(dtype, sb, **kw))
  ta, tb = tensor(a, dtype), tensor(b, dtype)
  out = ta @ tb if form == "@" else ta.matmul(tb) if form == "matmul" else ta.dot(tb)
  if is_int(dtype):
    assert_matches(out, np.matmul(a.astype(np.int64), b.astype(np.int64)), dtype)
  else:
    assert_scaled_close(out, np.matmul(ref64(a), ref64(b)), np.matmul(np.abs(ref64(a)), np.abs(ref64(b))), dtype)

def test_matmul_vector_times_column_is_one_element():
  out = Tensor([1, 2, 3]) @ Tensor([[1], [2], [3]])
  assert out.shape == (1,) and out.tolist() == [14]

def test_matmul_vector_dot_vector_is_0d():
  out = Tensor([1.0, 2.0, 3.0]) @ Tensor([4.0, 5.0, 6.0])
  assert out.shape == () and out.item() == 32.0
