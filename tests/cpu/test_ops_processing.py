"""Scans, sorting, scatter, selection, sampling and linear algebra (tinygrad/mixin/processing.py) against references.

References are numpy in float64 where numpy has the op, and short Python loops that spell out torch's semantics where
it does not (cummax/cummin indices, stable sort with NaN, scatter with repeated indices, scatter_reduce). Values are
drawn from small pools so that ties are common, with NaN and +-inf where the op defines them. Result dtypes follow
tinygrad: cumsum takes sum's dtype, indices are int32. qr and svd are checked by reconstruction and orthogonality (their
signs are not unique), svd's singular values against numpy's.
"""
import math
import numpy as np
import pytest
from hypothesis import given, strategies as st
from tinygrad import Tensor, dtypes
from tinygrad.engine.realize import stats
from gradcheck import assert_grad_matches
from strategies import (wrap_int, arrays_from, elements, shapes, tensor, to_numpy, assert_matches, is_float, is_int, is_uint,
                        tdt, examples)

DTYPES = ("float16", "float32", "float64", "int8", "int32", "uint8", "bool")  # for cumsum and sort

def sum_dtype(d: str) -> str:
  if d == "bool" or d in ("int8", "int16", "int32"): return "int32"
  return "uint32" if d in ("uint8", "uint16", "uint32") else d

def pool(dtype: str, specials: bool = True) -> st.SearchStrategy:
  """Values from a small set (ties are likely) or anywhere in the dtype; NaN and +-inf for floats if specials."""
  if dtype == "bool": return st.booleans()
  if is_int(dtype): return st.one_of(st.integers(0 if is_uint(dtype) else -3, 3), elements(dtype, lo=-100, hi=100))
  small = [-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0] + ([math.nan, math.inf, -math.inf] if specials else [])
  return st.one_of(st.sampled_from(small), elements(dtype, lo=-100, hi=100))

@st.composite
def array_dim(draw, dtype, elems=None, min_dims=1, max_dims=3, max_side=5):
  """An array of dtype with elements from elems (default: pool) and a dim in range (possibly negative)."""
  shape = draw(shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side))
  a = draw(arrays_from(dtype, shape, elems if elems is not None else pool(dtype)))
  return a, draw(st.integers(-max(a.ndim, 1), max(a.ndim, 1) - 1))

def along(a: np.ndarray, dim: int, fn) -> np.ndarray:
  """fn applied to each 1-D lane of a along dim (fn maps a Python list to a list of the same length)."""
  if a.ndim == 0: return np.asarray(fn([a.item()])[0], dtype=object)
  moved = np.moveaxis(a, dim, -1)
  rows = [fn(r) for r in moved.reshape(-1, moved.shape[-1]).tolist()] if moved.size else []
  return np.moveaxis(np.asarray(rows, dtype=object).reshape(moved.shape), -1, dim)

def assert_scan_close(t, expected, scale, name):
  """Float scan results within a tolerance relative to the scan of |x| (what rounding error grows with)."""
  assert t.dtype == tdt(name), f"dtype {t.dtype} != {name}"
  got, expected = to_numpy(t), np.asarray(expected, dtype=np.float64)
  assert got.shape == expected.shape
  np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg="NaN positions differ")
  finite = np.isfinite(expected)
  np.testing.assert_array_equal(got[~finite], expected[~finite])
  tol = {"float16": 2e-3, "float32": 1e-5, "float64": 1e-12}[name]
  assert np.all(np.abs(got - expected)[finite] <= tol * scale[finite] + 1e-300), f"got {got} expected {expected}"

# ---------------------------------------------------------------- cumsum / cumprod

@pytest.mark.parametrize("dtype", DTYPES)
@examples(8)
@given(data=st.data())
def test_cumsum_matches_numpy(dtype, data):
  a, dim = data.draw(array_dim(dtype, pool(dtype, specials=True), min_dims=0))
  out, od = tensor(a, dtype).cumsum(dim), sum_dtype(dtype)
  axis = dim if a.ndim else None
  if is_float(dtype):
    x = a.astype(np.float64)
    with np.errstate(invalid="ignore"):
      assert_scan_close(out, np.cumsum(x, axis).reshape(a.shape), np.cumsum(np.abs(x), axis).reshape(a.shape), od)
  else: assert_matches(out, np.cumsum(a.astype(np.int64), axis).reshape(a.shape), od)

def test_cumsum_default_axis_is_0():
  a = np.arange(6, dtype=np.float32).reshape(2, 3)
  assert_matches(Tensor(a).cumsum(), np.cumsum(a, 0), "float32")

@pytest.mark.parametrize("n", [513, 1300, 140_000])
def test_cumsum_long_axis_is_blocked_and_exact_for_ints(n):
  """Beyond 2 * 256 elements the scan runs in blocks plus block offsets (recursively past 131072)."""
  a = np.random.default_rng(n).integers(-1000, 1000, size=(2, n), dtype=np.int32)
  assert_matches(Tensor(a).cumsum(1), np.cumsum(a.astype(np.int64), 1), "int32")
  x = np.random.default_rng(n + 1).standard_normal((n, 2))
  assert_scan_close(Tensor(x).cumsum(0), np.cumsum(x, 0), np.cumsum(np.abs(x), 0), "float64")

@pytest.mark.parametrize("dtype", ("float32", "float64", "int8", "int32"))
@examples(8)
@given(data=st.data())
def test_cumprod_matches_numpy(dtype, data):
  if is_int(dtype): elems = st.sampled_from([-2, -1, 0, 1, 2])
  else: elems = st.one_of(elements(dtype, lo=0.5, hi=2.0), elements(dtype, lo=-2.0, hi=-0.5), st.just(0.0))
  a, dim = data.draw(array_dim(dtype, elems, max_side=6))  # |products| <= 64 fit int8
  out = tensor(a, dtype).cumprod(dim)
  if is_int(dtype): assert_matches(out, np.cumprod(a.astype(np.int64), dim), dtype)
  else:
    eps = {"float32": 2**-24, "float64": 2**-53}[dtype]
    assert_matches(out, np.cumprod(a.astype(np.float64), dim), dtype, rtol=16 * eps, atol=0)

def test_cumprod_long_axis():
  x = np.random.default_rng(0).uniform(0.99, 1.01, size=(3, 700))
  assert_matches(Tensor(x).cumprod(-1), np.cumprod(x, -1), "float64", rtol=1e-12, atol=0)

@pytest.mark.parametrize("op", ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp"])
def test_scans_of_empty_and_0d_tensors(op):
  for shape in [(0,), (2, 0), ()]:
    a = np.ones(shape, dtype=np.float32)
    out = getattr(Tensor(a), op)(0 if shape != (2, 0) else 1)
    values = out[0] if op in ("cummax", "cummin") else out
    assert values.shape == shape and np.array_equal(values.numpy(), a)
    if op in ("cummax", "cummin"): assert out[1].dtype == dtypes.int32 and out[1].shape == shape and not out[1].numpy().any()

@pytest.mark.parametrize("op", ["cumsum", "cumprod", "logcumsumexp"])
def test_scan_dim_out_of_range_names_the_op(op):
  with pytest.raises(IndexError, match=f"{op}: dim 2 is out of range for shape \\(2, 3\\)"): getattr(Tensor.ones(2, 3), op)(2)

# ---------------------------------------------------------------- cummax / cummin

def _nan(x) -> bool: return isinstance(x, float) and math.isnan(x)

def torch_cumext(row, op):
  """torch's cummax/cummin: the value and the last index reaching it; NaN, once seen, wins (its latest index)."""
  vals, idxs, best, bi = [], [], None, 0
  for i, v in enumerate(row):
    if best is None or _nan(v) or (not _nan(best) and (v >= best if op == "cummax" else v <= best)): best, bi = v, i
    vals.append(best); idxs.append(bi)
  return vals, idxs

@pytest.mark.parametrize("op", ["cummax", "cummin"])
@pytest.mark.parametrize("dtype", ("float32", "float64", "int8", "uint8", "bool"))
@examples(8)
@given(data=st.data())
def test_cummax_cummin_match_torch_semantics(op, dtype, data):
  a, dim = data.draw(array_dim(dtype))
  values, indices = getattr(tensor(a, dtype), op)(dim)
  ev = along(a, dim, lambda r: torch_cumext(r, op)[0])
  ei = along(a, dim, lambda r: torch_cumext(r, op)[1])
  assert_matches(values, ev.astype(np.float64) if is_float(dtype) else ev.astype(bool) if dtype == "bool" else ev, dtype)
  assert_matches(indices, ei, "int32")

def test_cummax_long_axis_with_ties_and_nan():
  a = np.random.default_rng(1).integers(0, 40, size=(2, 1300)).astype(np.float64)
  a[1, 900] = np.nan
  values, indices = Tensor(a).cummax(1)
  assert_matches(values, along(a, 1, lambda r: torch_cumext(r, "cummax")[0]).astype(np.float64), "float64")
  assert_matches(indices, along(a, 1, lambda r: torch_cumext(r, "cummax")[1]), "int32")

# ---------------------------------------------------------------- logcumsumexp

@pytest.mark.parametrize("dtype", ("float32", "float64"))
@examples(10)
@given(data=st.data())
def test_logcumsumexp_matches_numpy(dtype, data):
  elems = st.one_of(elements(dtype, lo=-500, hi=500), st.sampled_from([math.inf, -math.inf, 0.0, 1.0]))
  a, dim = data.draw(array_dim(dtype, elems))
  expected = np.logaddexp.accumulate(a.astype(np.float64), dim)
  assert_matches(tensor(a, dtype).logcumsumexp(dim), expected, dtype, "transcendental", atol={"float32": 1e-4, "float64": 1e-10}[dtype])

def test_logcumsumexp_long_axis_without_overflow():
  x = np.random.default_rng(2).standard_normal((1300, 2)) * 300
  assert_matches(Tensor(x).logcumsumexp(0), np.logaddexp.accumulate(x, 0), "float64", "transcendental")

def test_logcumsumexp_of_ints_is_float32():
  assert_matches(Tensor([0, 1, 2]).logcumsumexp(), np.logaddexp.accumulate(np.array([0.0, 1, 2])), "float32", "transcendental")

# ---------------------------------------------------------------- sort / argsort / topk

def stable_order(row, descending):
  """Indices sorting row stably; NaN is the largest value (last ascending, first descending)."""
  def key(i):
    v, nan = row[i], _nan(row[i])
    return (0 if nan else 1, 0 if nan else -v, i) if descending else (1 if nan else 0, 0 if nan else v, i)
  return sorted(range(len(row)), key=key)

def expected_sort(a, dim, descending, dtype):
  order = along(a, dim, lambda r: stable_order(r, descending)).astype(np.int64)
  values = np.take_along_axis(a, order, dim) if a.ndim else a
  return (values.astype(np.float64) if is_float(dtype) else values), order

@pytest.mark.parametrize("dtype", DTYPES)
@examples(7)
@given(data=st.data(), descending=st.booleans())
def test_sort_is_stable_and_matches_reference(dtype, data, descending):
  a, dim = data.draw(array_dim(dtype, min_dims=0, max_side=9))
  values, indices = tensor(a, dtype).sort(dim, descending=descending)
  ev, ei = expected_sort(a, dim, descending, dtype)
  assert_matches(values, ev, dtype, rtol=0, atol=0)
  assert_matches(indices, ei, "int32")

def test_sort_puts_nan_last_like_numpy():
  a = np.array([3.0, np.nan, -np.inf, 1.0, np.nan, np.inf, -0.0, 0.0], dtype=np.float32)
  values, indices = Tensor(a).sort()
  np.testing.assert_array_equal(values.numpy(), np.sort(a))
  assert indices.tolist() == [2, 6, 7, 3, 0, 5, 1, 4]

def test_sort_1000_elements_shares_compiled_kernels():
  """The ~55 bitonic stages of a 1024-wide sort read their parameters from buffers: a few kernels compile, not 55."""
  a = np.random.default_rng(3).standard_normal((3, 1000)).astype(np.float32)
  before = stats["compiles"]
  values, indices = Tensor(a).sort(-1, descending=True)
  np.testing.assert_array_equal(values.numpy(), -np.sort(-a, -1))
  np.testing.assert_array_equal(indices.numpy(), np.argsort(-a, -1, kind="stable"))
  assert stats["compiles"] - before <= 8

@examples(8)
@given(data=st.data(), descending=st.booleans())
def test_argsort_is_sort_indices(data, descending):
  a, dim = data.draw(array_dim("int32"))
  t = tensor(a, "int32")
  assert_matches(t.argsort(dim, descending), t.sort(dim, descending)[1].numpy(), "int32")

@pytest.mark.parametrize("dtype", ("float32", "int32"))
@examples(10)
@given(data=st.data(), largest=st.booleans())
def test_topk_matches_reference(dtype, data, largest):
  a, dim = data.draw(array_dim(dtype))
  k = data.draw(st.integers(0, a.shape[dim]))
  values, indices = tensor(a, dtype).topk(k, dim, largest=largest)
  ev, ei = expected_sort(a, dim, largest, dtype)
  assert_matches(values, np.take(ev, range(k), dim), dtype, rtol=0, atol=0)
  assert_matches(indices, np.take(ei, range(k), dim), "int32")

def test_topk_unsorted_returns_the_sorted_order():
  """sorted_=False leaves the order unspecified (torch); the sorted order is one such order."""
  values, indices = Tensor([1.0, 4.0, 2.0, 3.0]).topk(2, sorted_=False)
  assert values.tolist() == [4.0, 3.0] and indices.tolist() == [1, 3]

def test_0d_scatter_sort_and_topk():
  assert Tensor(5.0).scatter(0, Tensor(0), Tensor(7.0)).item() == 7.0
  assert Tensor(5.0).scatter_reduce(0, Tensor(0), Tensor(7.0), "sum").item() == 12.0
  assert [t.item() for t in Tensor(5.0).sort()] == [5.0, 0] and [t.item() for t in Tensor(5.0).topk(1)] == [5.0, 0]

def test_topk_k_out_of_range_is_an_error():
  with pytest.raises(ValueError, match="topk: k=4 is out of range for dimension 1 of size 3"): Tensor.ones(2, 3).topk(4)
  with pytest.raises(ValueError, match="valid: 0..3"): Tensor.ones(2, 3).topk(-1)

def test_sort_dim_out_of_range_is_an_error():
  with pytest.raises(IndexError, match="sort: dim -3 is out of range"): Tensor.ones(2, 3).sort(-3)

# ---------------------------------------------------------------- scatter / scatter_reduce

@st.composite
def scatter_case(draw, dtype, max_side=4):
  """(self, dim, index, src): index no larger than src anywhere and than self except along dim, values in range."""
  shape = draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=max_side))
  dim = draw(st.integers(-len(shape), len(shape) - 1))
  d = dim % len(shape)
  ishape = tuple(draw(st.integers(0, max_side if a == d else s)) for a, s in enumerate(shape))
  sshape = tuple(i + draw(st.integers(0, 1)) for i in ishape)
  index = draw(arrays_from("int32", ishape, st.integers(0, shape[d] - 1)))
  elems = pool(dtype, specials=False)
  return draw(arrays_from(dtype, shape, elems)), dim, index, draw(arrays_from(dtype, sshape, elems))

def ref_targets(dim, index):
  """(source position, target position) pairs in row-major order of index."""
  for p in np.ndindex(index.shape):
    q = list(p)
    q[dim] = int(index[p])
    yield p, tuple(q)

def ref_scatter(a, dim, index, src):
  out = a.copy()
  for p, q in ref_targets(dim, index): out[q] = src[p]  # repeated targets: the last write along dim wins
  return out

def ref_scatter_reduce(a, dim, index, src, reduce, include_self):
  groups: dict = {}
  for p, q in ref_targets(dim, index): groups.setdefault(q, []).append(src[p].item())
  out = a.astype(object)
  for q, vals in groups.items():
    vals = ([a[q].item()] if include_self else []) + vals
    if reduce == "mean": out[q] = sum(vals) / len(vals) if isinstance(vals[0], float) else sum(vals) // len(vals)
    else: out[q] = {"sum": sum, "prod": math.prod, "amax": max, "amin": min}[reduce](vals)
  return out

@pytest.mark.parametrize("dtype", ("float32", "int32", "bool"))
@examples(10)
@given(data=st.data())
def test_scatter_matches_reference(dtype, data):
  a, dim, index, src = data.draw(scatter_case(dtype))
  out = tensor(a, dtype).scatter(dim, Tensor(index), tensor(src, dtype))
  assert_matches(out, ref_scatter(a, dim, index, src).astype(np.float64 if is_float(dtype) else a.dtype), dtype, rtol=0, atol=0)

@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("dtype", ("float64", "int32"))
@examples(6)
@given(data=st.data(), include_self=st.booleans())
def test_scatter_reduce_matches_reference(reduce, dtype, data, include_self):
  a, dim, index, src = data.draw(scatter_case(dtype))
  out = tensor(a, dtype).scatter_reduce(dim, Tensor(index), tensor(src, dtype), reduce, include_self=include_self)
  expected = ref_scatter_reduce(a, dim, index, src, reduce, include_self)
  # integer products overflow: the kernel wraps them as the dtype does
  assert_matches(out, expected.astype(np.float64) if is_float(dtype) else wrap_int(expected, dtype), dtype, rtol=1e-12, atol=1e-12)

def test_scatter_reduce_keeps_the_dtype_of_self():
  out = Tensor([100, 100], dtype=dtypes.int8).scatter_reduce(0, Tensor([0, 0]), Tensor([20, 10], dtype=dtypes.int8), "sum")
  assert out.dtype == dtypes.int8 and out.tolist() == [-126, 100]  # 230 wraps in int8, as torch

@pytest.mark.parametrize("reduce,via", [("add", "sum"), ("multiply", "prod")])
def test_scatter_with_reduce_and_scalar_or_tensor_src(reduce, via):
  x, index = Tensor.full((2, 4), 2.0), Tensor([[2, 2], [3, 0]])
  np.testing.assert_allclose(x.scatter(1, index, 1.5, reduce=reduce).numpy(),
                             x.scatter_reduce(1, index, Tensor.full((2, 2), 1.5), via).numpy())
  src = Tensor([[1.0, 3.0], [5.0, 7.0]])
  np.testing.assert_allclose(x.scatter(1, index, src, reduce=reduce).numpy(), x.scatter_reduce(1, index, src, via).numpy())

def test_scatter_scalar_src_fills():
  assert Tensor.zeros(2, 3, dtype=dtypes.int32).scatter(1, Tensor([[2], [0]]), 7).tolist() == [[0, 0, 7], [7, 0, 0]]

def test_scatter_errors_name_the_op_and_what_is_valid():
  x, i = Tensor.zeros(2, 3), Tensor([[0, 1]])
  with pytest.raises(TypeError, match="scatter: reduce must be None, 'add' or 'multiply'"): x.scatter(0, i, 1.0, reduce="max")
  with pytest.raises(RuntimeError, match="scatter_reduce: reduce must be one of 'sum', 'prod', 'mean', 'amax', 'amin'"):
    x.scatter_reduce(0, i, Tensor.ones(1, 2), "max")
  with pytest.raises(TypeError, match="scatter: index must be an integer tensor, got"): x.scatter(0, Tensor([[0.0]]), Tensor.ones(1, 1))
  with pytest.raises(RuntimeError, match="scatter: src dtype .* must equal self dtype"):
    x.scatter(0, i, Tensor.ones(1, 2, dtype=dtypes.int32))
  with pytest.raises(ValueError, match="must have the same number of dims"): x.scatter(0, Tensor([0, 1]), Tensor.ones(2))
  with pytest.raises(ValueError, match=r"index shape \(1, 4\) must be <= src shape \(1, 4\) in every dim, and <= self shape"):
    x.scatter(0, Tensor([[0, 1, 0, 1]]), Tensor.ones(1, 4))

# ---------------------------------------------------------------- masked_select / nonzero

@pytest.mark.parametrize("dtype", ("float32", "int8", "bool"))
@examples(10)
@given(data=st.data())
def test_masked_select_matches_numpy(dtype, data):
  shape = data.draw(shapes(min_dims=0, max_dims=3))
  mshape = tuple(data.draw(st.sampled_from([s, 1])) for s in shape)[data.draw(st.integers(0, len(shape))):]  # broadcasts
  a, m = data.draw(arrays_from(dtype, shape, pool(dtype))), data.draw(arrays_from("bool", mshape, st.booleans()))
  ab, mb = np.broadcast_arrays(a, m)
  out = tensor(a, dtype).masked_select(Tensor(m))
  assert_matches(out, ab[mb].astype(np.float64) if is_float(dtype) else ab[mb], dtype, rtol=0, atol=0)

def test_masked_select_broadcasts_self_against_the_mask():
  out = Tensor([[1], [2]]).masked_select(Tensor([[True, False, True], [False, False, True]]))
  assert out.tolist() == [1, 1, 2]

def test_masked_select_of_100k_elements():
  rng = np.random.default_rng(4)
  a, m = rng.integers(-10**6, 10**6, size=(200, 500), dtype=np.int32), rng.random((200, 500)) < 0.4
  np.testing.assert_array_equal(Tensor(a).masked_select(Tensor(m)).numpy(), a[m])

def test_masked_select_needs_a_bool_mask():
  with pytest.raises(RuntimeError, match="masked_select: mask must be a bool tensor, got"):
    Tensor.ones(3).masked_select(Tensor([1, 0, 1]))
  with pytest.raises(ValueError, match=r"masked_select: shapes \(3,\) and \(2,\) do not broadcast"):
    Tensor.ones(3).masked_select(Tensor([True, False]))

@pytest.mark.parametrize("dtype", ("float32", "int32", "bool"))
@examples(10)
@given(data=st.data())
def test_nonzero_matches_numpy_argwhere(dtype, data):
  shape = data.draw(shapes(min_dims=0, max_dims=3))
  a = data.draw(arrays_from(dtype, shape, st.one_of(st.just(0), pool(dtype)) if dtype != "bool" else st.booleans()))
  assert_matches(tensor(a, dtype).nonzero(), np.argwhere(a), "int32")

# ---------------------------------------------------------------- multinomial

def test_multinomial_with_replacement_follows_the_weights():
  Tensor.manual_seed(0)
  w = np.array([[1.0, 2.0, 3.0, 4.0, 0.0], [0.0, 5.0, 0.0, 1.0, 4.0]])
  draws = Tensor(w).multinomial(4000, replacement=True).numpy()
  assert draws.shape == (2, 4000) and draws.dtype == np.int32
  for row, d in zip(w, draws):
    counts, expected = np.bincount(d, minlength=5), 4000 * row / row.sum()
    assert np.all(counts[row == 0] == 0)
    chi2 = (((counts - expected) ** 2)[row > 0] / expected[row > 0]).sum()
    assert chi2 < 30, f"chi-square {chi2} for counts {counts}, expected {expected}"  # 3 or 2 degrees of freedom

def test_multinomial_one_sample_per_row_follows_the_weights():
  Tensor.manual_seed(1)
  draws = Tensor([1, 3]).reshape(1, 2).expand(3000, 2).multinomial().numpy()
  assert draws.shape == (3000, 1)
  assert abs(draws.mean() - 0.75) < 0.05

def test_multinomial_without_replacement_draws_distinct_categories():
  Tensor.manual_seed(2)
  full = Tensor.rand(4, 6).add(0.1).multinomial(6).numpy()
  assert all(sorted(r) == list(range(6)) for r in full.tolist())
  part = Tensor([0.0, 2.0, 0.0, 1.0, 5.0]).multinomial(3).tolist()
  assert sorted(part) == [1, 3, 4]  # the zero-weight categories are never drawn

def test_multinomial_errors():
  with pytest.raises(ValueError, match="multinomial: cannot draw 4 samples without replacement from 3 categories"):
    Tensor.ones(3).multinomial(4)
  with pytest.raises(ValueError, match="multinomial: weights must be 1-D or 2-D"): Tensor.ones(2, 2, 2).multinomial()
  with pytest.raises(ValueError, match="multinomial: num_samples must be a positive int"): Tensor.ones(3).multinomial(0)

# ---------------------------------------------------------------- qr / svd

LINALG_TOL = {"float32": 2e-5, "float64": 1e-12}

@st.composite
def matrices(draw, dtype):
  batch = draw(st.sampled_from([(), (2,)]))
  m, n = draw(st.integers(1, 5)), draw(st.integers(1, 5))
  return draw(arrays_from(dtype, batch + (m, n), st.one_of(elements(dtype, lo=-4, hi=4), st.just(0.0))))

def assert_orthonormal_columns(q, tol):
  eye = np.eye(q.shape[-1])
  np.testing.assert_allclose(np.swapaxes(q, -1, -2) @ q, np.broadcast_to(eye, q.shape[:-2] + eye.shape), atol=tol)

@pytest.mark.parametrize("dtype", ("float32", "float64"))
@examples(6)
@given(data=st.data())
def test_qr_reconstructs_with_orthogonal_q_and_triangular_r(dtype, data):
  a = data.draw(matrices(dtype))
  Q, R = tensor(a, dtype).qr()
  assert Q.dtype == R.dtype == tdt(dtype) and Q.shape == a.shape[:-1] + (a.shape[-2],) and R.shape == a.shape
  q, r, scale = Q.numpy().astype(np.float64), R.numpy().astype(np.float64), max(1.0, float(np.abs(a).max(initial=0)))
  assert_orthonormal_columns(q, LINALG_TOL[dtype] * 10)
  assert not np.tril(r, -1).any()
  np.testing.assert_allclose(q @ r, a, atol=LINALG_TOL[dtype] * 10 * scale)

def test_qr_of_a_rank_one_float32_matrix_keeps_q_orthogonal():
  """After the first reflection the other columns are rounding residue (~1e-7, then ~1e-15): their squares would
  underflow float32 without the scaling by max |x|, and the reflections built from them would not be orthogonal."""
  Q, R = Tensor.ones(5, 4).qr()
  q = Q.numpy().astype(np.float64)
  assert_orthonormal_columns(q, 1e-6)
  np.testing.assert_allclose(q @ R.numpy(), np.ones((5, 4)), atol=1e-6)

def test_qr_of_ints_is_float32_and_needs_a_matrix():
  Q, R = Tensor([[3, 1], [4, 2]]).qr()
  assert Q.dtype == dtypes.float32
  np.testing.assert_allclose(Q.numpy() @ R.numpy(), [[3, 1], [4, 2]], atol=1e-5)
  with pytest.raises(ValueError, match="qr: needs a matrix"): Tensor.ones(3).qr()

@pytest.mark.parametrize("dtype", ("float32", "float64"))
@examples(6)
@given(data=st.data(), full_matrices=st.booleans())
def test_svd_reconstructs_with_orthonormal_factors(dtype, data, full_matrices):
  a = data.draw(matrices(dtype))
  m, n = a.shape[-2:]
  k = min(m, n)
  U, S, Vh = tensor(a, dtype).svd(full_matrices)
  assert U.shape == a.shape[:-2] + ((m, m) if full_matrices else (m, k)) and S.shape == a.shape[:-2] + (k,)
  assert Vh.shape == a.shape[:-2] + ((n, n) if full_matrices else (k, n))
  u, s, vh = U.numpy().astype(np.float64), S.numpy().astype(np.float64), Vh.numpy().astype(np.float64)
  scale, tol = max(1.0, float(np.abs(a).max(initial=0))), LINALG_TOL[dtype] * 10
  np.testing.assert_allclose(s, np.linalg.svd(a.astype(np.float64), compute_uv=False), atol=tol * scale * k)
  assert np.all(np.diff(s, axis=-1) <= 0), "singular values must be descending"
  np.testing.assert_allclose((u[..., :k] * s[..., None, :]) @ vh[..., :k, :], a, atol=tol * scale * k)
  assert_orthonormal_columns(u, tol)  # also for rank-deficient input: the basis is completed
  assert_orthonormal_columns(np.swapaxes(vh, -1, -2), tol)

def test_svd_of_an_8x8_matrix_and_its_transpose_relation():
  a = np.random.default_rng(5).standard_normal((8, 6))
  U, S, Vh = Tensor(a).svd(full_matrices=False)
  np.testing.assert_allclose(S.numpy(), np.linalg.svd(a, compute_uv=False), rtol=1e-12)
  np.testing.assert_allclose(U.numpy() @ np.diag(S.numpy()) @ Vh.numpy(), a, atol=1e-12)
  Ut, St, Vht = Tensor(a.T).svd(full_matrices=True)
  assert Ut.shape == (6, 6) and Vht.shape == (8, 8)
  np.testing.assert_allclose(St.numpy(), S.numpy(), rtol=1e-12)

@pytest.mark.parametrize("a", [np.outer([1.0, 2.0, -1.0, 0.5], [3.0, 0.0, 1.0]), np.zeros((3, 3)), np.outer([1.0, 2.0], [1.0, 1.0, 1.0])])
def test_svd_of_rank_deficient_matrices_has_orthonormal_factors(a):
  U, S, Vh = Tensor(a).svd()
  u, s, vh = U.numpy(), S.numpy(), Vh.numpy()
  np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False), atol=1e-12)
  np.testing.assert_allclose(u[:, :len(s)] @ np.diag(s) @ vh[:len(s)], a, atol=1e-12)
  assert_orthonormal_columns(u, 1e-12)
  assert_orthonormal_columns(vh.T, 1e-12)

# ---------------------------------------------------------------- gradients

@st.composite
def small_float64(draw, min_side=1, lo=-3.0, hi=3.0):
  shape = draw(shapes(min_dims=1, max_dims=2, min_side=min_side, max_side=4))
  a = draw(arrays_from("float64", shape, elements("float64", lo=lo, hi=hi, tiny=0.25)))
  return a, draw(st.integers(-a.ndim, a.ndim - 1))

@pytest.mark.parametrize("op", ["cumsum", "logcumsumexp"])
@examples(5)
@given(data=st.data())
def test_scan_grad_matches_numeric(op, data):
  a, dim = data.draw(small_float64())
  assert_grad_matches(lambda t: getattr(t, op)(dim), a)

@examples(5)
@given(data=st.data())
def test_cumprod_grad_matches_numeric(data):
  a, dim = data.draw(small_float64(lo=0.5, hi=2.0))  # the product rule divides by x: no zeros
  assert_grad_matches(lambda t: t.cumprod(dim), a)

@pytest.mark.slow
def test_blocked_cumsum_grad_matches_numeric():
  assert_grad_matches(lambda t: t.cumsum(0), np.random.default_rng(6).standard_normal(520))

@examples(5)
@given(data=st.data(), descending=st.booleans())
def test_sort_and_topk_value_grads_match_numeric(data, descending):
  a, dim = data.draw(small_float64())
  a = a + np.arange(a.size).reshape(a.shape) * 1e-3  # distinct values: the order does not flip under +-eps
  assert_grad_matches(lambda t: t.sort(dim, descending)[0], a)
  k = data.draw(st.integers(1, a.shape[dim]))
  assert_grad_matches(lambda t: t.topk(k, dim, largest=not descending)[0], a)

@examples(5)
@given(data=st.data())
def test_scatter_grads_match_numeric(data):
  a = data.draw(arrays_from("float64", (3, 4), elements("float64", lo=-3, hi=3)))
  perm = np.stack([np.random.default_rng(i).permutation(4)[:2] for i in range(3)])  # distinct targets per row
  src = data.draw(arrays_from("float64", (3, 2), elements("float64", lo=-3, hi=3)))
  assert_grad_matches(lambda x, s: x.scatter(1, Tensor(perm), s), a, src)
  assert_grad_matches(lambda x, s: x.scatter_reduce(1, Tensor(perm), s, "sum"), a, src)

@examples(5)
@given(data=st.data())
def test_masked_select_grad_matches_numeric(data):
  a, _ = data.draw(small_float64())
  m = data.draw(arrays_from("bool", a.shape, st.booleans()))
  m.flat[0] = True
  assert_grad_matches(lambda t: t.masked_select(Tensor(m)), a)

# ---------------------------------------------------------------- max_pool2d / avg_pool2d (torch's semantics)

def pool_ref(a: np.ndarray, kind: str, k, s, d, p, ceil_mode: bool, count_include_pad: bool) -> np.ndarray:
  """2-D pooling of a's last two dims spelled out window by window: window o starts at o*s - p and reads every d-th of
  k positions; ceil_mode adds a last, partial window that starts inside the input or its left padding. max ignores
  positions outside the input; avg divides by the taps inside the input (and its padding with count_include_pad).
  Checked against torch.nn.functional on 928 cases (dilation 1 for avg, which torch's avg_pool2d lacks)."""
  outs = []
  for i, kk, ss, dd, pp in zip(a.shape[-2:], k, s, d, p):
    span = i + 2 * pp - dd * (kk - 1) - 1
    n = (-(-span // ss) if ceil_mode else span // ss) + 1
    if ceil_mode and (n - 1) * ss >= i + pp: n -= 1
    outs.append(n)
  out = np.empty(a.shape[:-2] + tuple(outs))
  for oh in range(outs[0]):
    for ow in range(outs[1]):
      taps = [[o * ss - pp + j * dd for j in range(kk)] for o, ss, pp, dd, kk in zip((oh, ow), s, p, d, k)]
      inside = [[t for t in ts if 0 <= t < i] for ts, i in zip(taps, a.shape[-2:])]
      vals = a[..., inside[0], :][..., inside[1]].reshape(a.shape[:-2] + (-1,))
      if kind == "max": out[..., oh, ow] = vals.max(-1, initial=-np.inf)  # a dilated window can miss the input: -inf
      elif kind == "argmax":  # the flat input position of the first maximum (or last NaN) among the window's taps inside
        flat = np.array([h * a.shape[-1] + w for h in inside[0] for w in inside[1]])
        if vals.shape[-1]:
          last_nan = vals.shape[-1] - 1 - np.isnan(vals)[..., ::-1].argmax(-1)  # torch's CPU kernel keeps the last NaN
          best = np.where(np.isnan(vals).any(-1), last_nan, vals.argmax(-1))
        else: best = 0
        out[..., oh, ow] = flat[best] if flat.size else -1
      else:
        counted = [[t for t in ts if -pp <= t < i + pp] for ts, i, pp in zip(taps, a.shape[-2:], p)] if count_include_pad else inside
        with np.errstate(invalid="ignore"): out[..., oh, ow] = vals.sum(-1) / (len(counted[0]) * len(counted[1]))  # 0/0: NaN
  return out

@st.composite
def pool_case(draw):
  k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
  s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
  d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
  p = tuple(draw(st.integers(0, kk // 2)) for kk in k)  # torch's limit: at most half the kernel
  ceil_mode = draw(st.booleans())
  # ceil_mode: the one window may stick out past the end by less than the stride
  hw = tuple(draw(st.integers(max(1, dd * (kk - 1) + 1 - 2 * pp - (ss - 1 if ceil_mode else 0)), 7)) for kk, dd, pp, ss in zip(k, d, p, s))
  lead = draw(st.sampled_from([(), (2,), (1, 3)]))
  return lead + hw, k, s, d, p, ceil_mode, draw(st.booleans())

@examples(40)
@given(case=pool_case(), data=st.data())
def test_pool2d_matches_reference(case, data):
  shape, k, s, d, p, ceil_mode, count_include_pad = case
  a = data.draw(arrays_from("float32", shape, elements("float32", lo=-10, hi=10)))
  got = Tensor(a).max_pool2d(k, stride=s, dilation=d, padding=p, ceil_mode=ceil_mode).numpy()
  np.testing.assert_array_equal(got, pool_ref(a.astype(np.float64), "max", k, s, d, p, ceil_mode, False))
  got = Tensor(a).avg_pool2d(k, stride=s, dilation=d, padding=p, ceil_mode=ceil_mode, count_include_pad=count_include_pad).numpy()
  np.testing.assert_allclose(got, pool_ref(a.astype(np.float64), "avg", k, s, d, p, ceil_mode, count_include_pad), rtol=1e-5, atol=1e-5)

@examples(30)
@given(case=pool_case(), data=st.data())
def test_max_pool2d_indices_match_reference(case, data):
  shape, k, s, d, p, ceil_mode, _ = case
  a = data.draw(arrays_from("float32", shape, st.sampled_from([-1.0, 0.0, 2.0, -np.inf, np.nan])))  # ties, -inf, NaN
  vals, idx = Tensor(a).max_pool2d(k, stride=s, dilation=d, padding=p, ceil_mode=ceil_mode, return_indices=True)
  ref = pool_ref(a.astype(np.float64), "argmax", k, s, d, p, ceil_mode, False)
  valid = ref >= 0  # a dilated window wholly outside the input has no position
  assert idx.dtype == dtypes.int64
  np.testing.assert_array_equal(idx.numpy()[valid], ref[valid])
  np.testing.assert_array_equal(vals.numpy(), pool_ref(a.astype(np.float64), "max", k, s, d, p, ceil_mode, False))

def test_max_pool2d_indices_round_trip_through_max_unpool2d():
  a = np.random.default_rng(1).uniform(-1, 1, (2, 3, 6, 5)).astype(np.float32)
  vals, idx = Tensor(a).max_pool2d(2, stride=2, padding=1, ceil_mode=True, return_indices=True)
  i = idx.numpy()
  np.testing.assert_array_equal(np.take_along_axis(a.reshape(2, 3, -1), i.reshape(2, 3, -1), -1), vals.numpy().reshape(2, 3, -1))
  back = vals.max_unpool2d(idx, 2, stride=2, padding=1, output_size=(6, 5)).numpy().reshape(2, 3, -1)
  expected = np.zeros((2, 3, 30), np.float32)
  np.put_along_axis(expected, i.reshape(2, 3, -1), vals.numpy().reshape(2, 3, -1), -1)  # windows do not overlap here
  np.testing.assert_array_equal(back, expected)

@pytest.mark.parametrize("count_include_pad", [True, False])
def test_ceil_mode_pool_grads_match_numeric(count_include_pad):
  a = np.random.default_rng(0).uniform(-2, 2, (1, 2, 5, 6))  # distinct values: max's gradient is defined
  assert_grad_matches(lambda t: t.max_pool2d(2, stride=2, padding=1, ceil_mode=True), a)
  assert_grad_matches(lambda t: t.avg_pool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=count_include_pad), a)
  # the last window of 5 with kernel 2 and stride 2 reads 1 element: output 3 wide, not 2
  assert Tensor(a).max_pool2d(2, ceil_mode=True).shape == (1, 2, 3, 3)
  # a window wider than the input by less than the stride (torch: [5.] for both)
  one = Tensor(np.full((1, 1, 1, 1), 5.0, np.float32))
  assert one.max_pool2d(2, stride=2, ceil_mode=True).tolist() == [[[[5.0]]]] == one.avg_pool2d(2, stride=2, ceil_mode=True).tolist()

def test_max_pool2d_index_of_several_nans_is_the_last():
  # torch's CPU kernel takes every NaN it meets: the last one in the window
  x = Tensor(np.array([[[[np.nan, 1.0], [np.nan, 2.0]]]], np.float32))
  assert x.max_pool2d(2, return_indices=True)[1].item() == 2
