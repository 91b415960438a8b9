"""Creation and data access: Tensor() from Python scalars, nested lists and numpy arrays; zeros/ones/full/empty,
arange/linspace/eye, the *_like forms; random generators (range, shape, dtype, rough statistics, reproducibility
under manual_seed); and the ways data comes back out (.numpy, .tolist, .item, .shape, .dtype, .device, len, repr).
"""
import math
import numpy as np
import pytest
from hypothesis import given, strategies as st
from tinygrad import Tensor, Device, dtypes
from strategies import (ALL_DTYPES, FLOAT_DTYPES, arrays, shapes, tensor, to_numpy, assert_matches, is_float, is_int,
                        tdt, examples)

# ---------------------------------------------------------------- from Python scalars

@examples(15)
@given(v=st.one_of(st.booleans(), st.integers(-2**31, 2**31 - 1), st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_tensor_from_python_scalar_is_0d_with_inferred_dtype(v):
  t = Tensor(v)
  name = "bool" if isinstance(v, bool) else "int32" if isinstance(v, int) else "float32"
  assert t.shape == () and t.dtype == tdt(name)
  assert_matches(t, np.asarray(v, dtype=object if name == "int32" else None), name)

@pytest.mark.parametrize("v, kind", [(True, bool), (7, int), (-2.5, float)])
def test_item_returns_python_scalar_of_matching_kind(v, kind):
  got = Tensor(v).item()
  assert type(got) is kind and got == v

@pytest.mark.parametrize("name", ALL_DTYPES)
def test_tensor_from_python_scalar_with_dtype(name):
  v = 1 if name == "bool" else 3
  t = Tensor(v, dtype=tdt(name))
  assert t.dtype == tdt(name) and t.shape == () and t.item() == v

# ---------------------------------------------------------------- from nested lists

@st.composite
def nested_list(draw):
  """(nested list, shape, dtype name tinygrad infers): elements are bools, ints, floats or a mix."""
  shape = draw(shapes(min_dims=1, max_dims=3, min_side=1))
  n = math.prod(shape)
  kinds = draw(st.sets(st.sampled_from(["bool", "int", "float"]), min_size=1))
  elem = st.one_of(*[{"bool": st.booleans(), "int": st.integers(-1000, 1000),
                      "float": st.floats(-1e4, 1e4, width=32)}[k] for k in sorted(kinds)])
  flat = draw(st.lists(elem, min_size=n, max_size=n))
  name = "float32" if any(isinstance(v, float) for v in flat) else "int32" if any(type(v) is int for v in flat) else "bool"
  arr = np.empty(n, dtype=object); arr[:] = flat
  return arr.reshape(shape).tolist(), shape, name

@examples(25)
@given(spec=nested_list())
def test_tensor_from_nested_list_matches_numpy(spec):
  lst, shape, name = spec
  t = Tensor(lst)
  assert t.shape == shape and t.dtype == tdt(name)
  expected = np.array(lst, dtype=object)
  expected = expected.astype(np.float64) if name == "float32" else expected.astype(bool) if name == "bool" else expected
  assert_matches(t, expected, name)

def test_tensor_from_empty_list_is_float32_with_zero_length():
  t = Tensor([])
  assert t.shape == (0,) and t.dtype == dtypes.float32 and t.tolist() == []

@pytest.mark.parametrize("name", ALL_DTYPES)
def test_tensor_from_list_with_dtype_casts(name):
  t = Tensor([[0, 1], [1, 0]], dtype=tdt(name))
  assert t.dtype == tdt(name) and t.shape == (2, 2)
  assert_matches(t, np.array([[0, 1], [1, 0]], dtype=bool if name == "bool" else object if is_int(name) else np.float64), name)

# ---------------------------------------------------------------- from numpy arrays

@pytest.mark.parametrize("name", [d for d in ALL_DTYPES if d != "bfloat16"])
@examples(8)
@given(data=st.data())
def test_tensor_from_numpy_round_trips_exactly(name, data):
  a = data.draw(shapes().flatmap(lambda s: arrays(name, s, **({"specials": True} if is_float(name) else {}))))
  t = Tensor(a)
  assert t.dtype == tdt(name) and t.shape == a.shape
  out = t.numpy()
  assert out.dtype == a.dtype and out.shape == a.shape
  np.testing.assert_array_equal(out, a)

@examples(8)
@given(data=st.data())
def test_bfloat16_numpy_gives_bfloat16_values(data):
  a = data.draw(shapes().flatmap(lambda s: arrays("bfloat16", s, specials=True)))
  out = Tensor(a, dtype=dtypes.bfloat16).numpy()
  assert out.shape == a.shape
  np.testing.assert_array_equal(out.astype(np.float32), a)

@examples(8)
@given(data=st.data())
def test_tensor_from_noncontiguous_numpy_view(data):
  a = data.draw(shapes(min_dims=2, max_dims=3, min_side=1).flatmap(lambda s: arrays("int32", s)))
  v = a.transpose()[::-1]
  assert_matches(Tensor(v), v.astype(object), "int32")

# ---------------------------------------------------------------- zeros / ones / full / empty / *_like

@pytest.mark.parametrize("fn, fill", [("zeros", 0), ("ones", 1)])
@examples(10)
@given(shape=shapes(), name=st.sampled_from(ALL_DTYPES + (None,)), varargs=st.booleans())
def test_zeros_ones_shape_dtype_values(fn, fill, shape, name, varargs):
  kw = {} if name is None else {"dtype": tdt(name)}
  t = getattr(Tensor, fn)(*shape, **kw) if varargs and shape else getattr(Tensor, fn)(shape, **kw)
  name = name or "float32"
  assert_matches(t, np.full(shape, fill, dtype=bool if name == "bool" else object if is_int(name) else np.float64), name)

@examples(12)
@given(shape=shapes(), v=st.one_of(st.booleans(), st.integers(-100, 100), st.floats(-100, 100, width=32)))
def test_full_infers_dtype_from_fill_value(shape, v):
  name = "bool" if isinstance(v, bool) else "int32" if isinstance(v, int) else "float32"
  assert_matches(Tensor.full(shape, v), np.full(shape, v, dtype=bool if name == "bool" else object if name == "int32" else np.float64), name)

@pytest.mark.parametrize("name", ALL_DTYPES)
def test_full_with_dtype(name):
  assert_matches(Tensor.full((2, 3), 1, dtype=tdt(name)),
                 np.ones((2, 3), dtype=bool if name == "bool" else object if is_int(name) else np.float64), name)

@examples(8)
@given(shape=shapes(), name=st.sampled_from(ALL_DTYPES))
def test_empty_has_shape_and_dtype(shape, name):
  t = Tensor.empty(*shape, dtype=tdt(name)) if shape else Tensor.empty(dtype=tdt(name))
  assert t.shape == shape and t.dtype == tdt(name)
  assert t.numpy().shape == shape  # contents are unspecified, but it realizes

@pytest.mark.parametrize("fn, fill", [("zeros_like", 0), ("ones_like", 1)])
@examples(6)
@given(data=st.data())
def test_like_constructors_copy_shape_and_dtype(fn, fill, data):
  name = data.draw(st.sampled_from(ALL_DTYPES))
  a = data.draw(shapes().flatmap(lambda s: arrays(name, s)))
  t = getattr(tensor(a, name), fn)()
  assert_matches(t, np.full(a.shape, fill, dtype=bool if name == "bool" else object if is_int(name) else np.float64), name)

def test_full_like_copies_shape_and_dtype():
  t = Tensor.ones(2, 3, dtype=dtypes.int16).full_like(7)
  assert_matches(t, np.full((2, 3), 7, dtype=object), "int16")

# ---------------------------------------------------------------- arange / linspace / eye

@examples(20)
@given(start=st.integers(-20, 20), stop=st.integers(-20, 20), step=st.integers(-5, 5).filter(lambda s: s != 0))
def test_arange_ints_match_numpy(start, stop, step):
  assert_matches(Tensor.arange(start, stop, step), np.arange(start, stop, step).astype(object), "int32")

@examples(10)
@given(stop=st.integers(0, 30))
def test_arange_single_argument_is_stop(stop):
  assert_matches(Tensor.arange(stop), np.arange(stop).astype(object), "int32")

@examples(15)
@given(start=st.integers(-40, 40).map(lambda k: k / 4), stop=st.integers(-40, 40).map(lambda k: k / 4),
       step=st.sampled_from([0.25, 0.5, 1.5, -0.25, -0.75, 2.0]))
def test_arange_floats_match_numpy(start, stop, step):
  assert_matches(Tensor.arange(start, stop, step), np.arange(start, stop, step), "float32")

@pytest.mark.parametrize("name", ["int64", "float64", "int16"])
def test_arange_with_dtype(name):
  assert_matches(Tensor.arange(2, 11, 3, dtype=tdt(name)), np.arange(2, 11, 3).astype(object if is_int(name) else np.float64), name)

@examples(15)
@given(start=st.floats(-100, 100, width=32), stop=st.floats(-100, 100, width=32), steps=st.integers(1, 20))
def test_linspace_matches_numpy(start, stop, steps):
  assert_matches(Tensor.linspace(start, stop, steps), np.linspace(start, stop, steps), "float32", atol=1e-5, rtol=1e-5)

@examples(10)
@given(n=st.integers(0, 6), m=st.one_of(st.none(), st.integers(0, 6)))
def test_eye_matches_numpy(n, m):
  t = Tensor.eye(n) if m is None else Tensor.eye(n, m)
  assert_matches(t, np.eye(n, m), "float32")

@pytest.mark.parametrize("name", ["int32", "bool", "float16"])
def test_eye_with_dtype(name):
  assert_matches(Tensor.eye(3, dtype=tdt(name)), np.eye(3).astype(bool if name == "bool" else object if is_int(name) else np.float64), name)

# ---------------------------------------------------------------- random

N_RANDOM = 20000  # standard error of a uniform mean is 0.29/sqrt(N) = 0.002; bounds below are ~5 sigma

def test_rand_shape_dtype_and_range():
  Tensor.manual_seed(1)
  x = Tensor.rand(N_RANDOM)
  assert x.shape == (N_RANDOM,) and x.dtype == dtypes.float32
  v = x.numpy()
  assert v.min() >= 0.0 and v.max() < 1.0

def test_rand_statistics_are_uniform():
  Tensor.manual_seed(2)
  v = Tensor.rand(N_RANDOM).numpy().astype(np.float64)
  assert abs(v.mean() - 0.5) < 0.01 and abs(v.std() - math.sqrt(1 / 12)) < 0.01
  hist = np.histogram(v, bins=10, range=(0, 1))[0] / N_RANDOM
  assert np.all(np.abs(hist - 0.1) < 0.015), f"uneven deciles {hist}"

def test_randn_statistics_are_standard_normal():
  Tensor.manual_seed(3)
  x = Tensor.randn(N_RANDOM)
  assert x.dtype == dtypes.float32
  v = x.numpy().astype(np.float64)
  assert np.all(np.isfinite(v))
  assert abs(v.mean()) < 0.04 and abs(v.std() - 1) < 0.04
  assert abs(np.mean(np.abs(v) < 1) - 0.6827) < 0.02  # the 1-sigma mass of a normal

@pytest.mark.parametrize("low, high", [(-1.0, 2.0), (5.0, 5.5), (-10.0, -4.0)])
def test_uniform_range_and_mean(low, high):
  Tensor.manual_seed(4)
  v = Tensor.uniform(N_RANDOM, low=low, high=high).numpy().astype(np.float64)
  assert v.min() >= low and v.max() <= high
  assert abs(v.mean() - (low + high) / 2) < 0.01 * (high - low)

@pytest.mark.parametrize("low, high", [(0, 10), (-5, 3), (100, 101)])
def test_randint_range_dtype_and_coverage(low, high):
  Tensor.manual_seed(5)
  x = Tensor.randint(N_RANDOM, low=low, high=high)
  assert x.dtype == dtypes.int32 and x.shape == (N_RANDOM,)
  v = x.numpy()
  assert v.min() >= low and v.max() < high
  assert set(np.unique(v).tolist()) == set(range(low, high))

@pytest.mark.parametrize("fn", ["rand", "randn"])
def test_random_shapes_varargs_and_tuple(fn):
  assert getattr(Tensor, fn)(2, 3, 4).shape == (2, 3, 4)
  assert getattr(Tensor, fn)((3, 2)).shape == (3, 2)
  assert getattr(Tensor, fn)(0, 3).numpy().shape == (0, 3)

@pytest.mark.parametrize("name", FLOAT_DTYPES)
def test_rand_respects_float_dtype(name):
  x = Tensor.rand(1000, dtype=tdt(name))
  assert x.dtype == tdt(name)
  v = to_numpy(x)
  assert v.min() >= 0.0 and v.max() <= 1.0 and len(np.unique(v)) > 10

@pytest.mark.parametrize("fn", ["rand", "randn", "uniform", "randint"])
def test_same_seed_reproduces_values(fn):
  Tensor.manual_seed(1234)
  a = getattr(Tensor, fn)(64, 3).numpy()
  Tensor.manual_seed(1234)
  b = getattr(Tensor, fn)(64, 3).numpy()
  np.testing.assert_array_equal(a, b)

@pytest.mark.parametrize("fn", ["rand", "randn", "uniform", "randint"])
def test_consecutive_calls_give_different_values(fn):
  Tensor.manual_seed(99)
  a, b = getattr(Tensor, fn)(256).numpy(), getattr(Tensor, fn)(256).numpy()
  assert not np.array_equal(a, b)

@pytest.mark.parametrize("fn", ["rand", "randn"])
def test_different_seeds_give_different_values(fn):
  Tensor.manual_seed(7)
  a = getattr(Tensor, fn)(256).numpy()
  Tensor.manual_seed(8)
  b = getattr(Tensor, fn)(256).numpy()
  assert not np.array_equal(a, b)

def test_random_values_within_one_tensor_are_not_repeated():
  Tensor.manual_seed(11)
  v = Tensor.rand(4096).numpy()
  assert len(np.unique(v)) > 4000  # 2**24 possible float32 values in [0,1); collisions should be rare

def test_seed_sequence_reproduces_across_several_calls():
  def draw():
    Tensor.manual_seed(21)
    return [Tensor.rand(5).numpy(), Tensor.randn(2, 2).numpy(), Tensor.randint(7, high=100).numpy()]
  for x, y in zip(draw(), draw()): np.testing.assert_array_equal(x, y)

# ---------------------------------------------------------------- data access and properties

@examples(15)
@given(data=st.data())
def test_tolist_matches_numpy_tolist(data):
  name = data.draw(st.sampled_from([d for d in ALL_DTYPES if d != "bfloat16"]))
  a = data.draw(shapes().flatmap(lambda s: arrays(name, s)))
  got = tensor(a, name).tolist()
  assert got == a.tolist()

@examples(10)
@given(data=st.data())
def test_item_of_any_one_element_tensor(data):
  shape = data.draw(shapes(max_side=1).filter(lambda s: math.prod(s) == 1))
  a = data.draw(arrays("float32", shape))
  assert Tensor(a).item() == a.reshape(()).item()

def test_item_of_many_elements_raises():
  with pytest.raises((ValueError, RuntimeError, AssertionError)):
    Tensor([1, 2]).item()

@examples(10)
@given(data=st.data())
def test_shape_ndim_numel_len(data):
  shape = data.draw(shapes(min_dims=1))
  t = Tensor.zeros(shape)
  assert t.shape == shape and isinstance(t.shape, tuple)
  assert t.ndim == len(shape) and t.numel() == math.prod(shape) and len(t) == shape[0]

def test_len_of_0d_raises_type_error():
  with pytest.raises(TypeError):
    len(Tensor(1.0))

@pytest.mark.parametrize("name", ALL_DTYPES)
def test_dtype_property_and_element_size(name):
  t = Tensor.ones(3, dtype=tdt(name))
  assert t.dtype == tdt(name) and t.element_size() == tdt(name).itemsize and t.nbytes() == 3 * tdt(name).itemsize

def test_device_is_default_cpu_string():
  t = Tensor([1.0])
  assert isinstance(t.device, str) and t.device == Device.DEFAULT and t.device.upper().startswith("CPU")

def test_repr_shows_values():
  r = repr(Tensor([1.5, -2.25, 3.0]))
  assert "1.5" in r and "-2.25" in r and "3" in r

def test_repr_of_lazy_result_shows_computed_values():
  r = repr(Tensor([1, 2, 3]) * 7)
  assert "7" in r and "14" in r and "21" in r

def test_numpy_of_lazy_result_is_a_fresh_array():
  t = Tensor([1.0, 2.0]) + 1
  a = t.numpy()
  a[0] = 100.0
  np.testing.assert_array_equal(t.numpy(), [2.0, 3.0])
