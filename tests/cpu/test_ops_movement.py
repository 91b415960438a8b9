"""Movement ops against numpy: reshape, permute, transpose, expand, pad, shrink, flip, squeeze/unsqueeze, flatten,
getitem (ints, slices with negative steps, None, Ellipsis), cat, stack, and random chains of views.

Movement never changes values, so every comparison is exact; the dtype is drawn per example from all 13 dtypes so
loads and stores of every element width go through the view code.
"""
import math
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from tinygrad import Tensor
from gradcheck import assert_grad_matches
from strategies import (ALL_DTYPES, arrays, shapes, tensor, assert_matches, examples, widened, typed_array)


def _factorizations(draw, size: int) -> tuple:
  """A random shape with `size` elements (0 allowed), up to 4 dims."""
  ndim = draw(st.integers(0 if size == 1 else 1, 4))
  if size == 0:
    dims = [draw(st.integers(0, 3)) for _ in range(ndim)]
    dims[draw(st.integers(0, ndim - 1))] = 0
    return tuple(dims)
  dims = [1] * ndim
  n, p = size, 2
  primes = []
  while n > 1:
    while n % p == 0: primes.append(p); n //= p
    p += 1
  for f in primes: dims[draw(st.integers(0, ndim - 1))] *= f
  return tuple(dims)

# ---------------------------------------------------------------- reshape

@examples(25)
@given(data=st.data(), use_minus_one=st.booleans())
def test_reshape_matches_numpy(data, use_minus_one):
  d, a = data.draw(typed_array())
  new = _factorizations(data.draw, a.size)
  arg = new
  if use_minus_one and len(new) > 0 and a.size > 0:
    i = data.draw(st.integers(0, len(new) - 1))
    arg = new[:i] + (-1,) + new[i + 1:]
  assert_matches(tensor(a, d).reshape(arg), widened(a.reshape(new), d), d)

@examples(10)
@given(data=st.data())
def test_reshape_varargs_form_matches_tuple_form(data):
  d, a = data.draw(typed_array(shapes(min_dims=1)))
  new = _factorizations(data.draw, a.size)
  assume(len(new) >= 1)
  assert_matches(tensor(a, d).reshape(*new), widened(a.reshape(new), d), d)

# ---------------------------------------------------------------- permute / transpose

@examples(20)
@given(data=st.data(), varargs=st.booleans())
def test_permute_matches_numpy_transpose(data, varargs):
  d, a = data.draw(typed_array())
  order = tuple(data.draw(st.permutations(range(a.ndim))))
  t = tensor(a, d)
  out = t.permute(*order) if varargs and order else t.permute(order)
  assert_matches(out, widened(np.transpose(a, order), d), d)

@examples(15)
@given(data=st.data())
def test_transpose_swaps_two_axes_like_numpy(data):
  d, a = data.draw(typed_array(shapes(min_dims=1)))
  d0, d1 = data.draw(st.integers(-a.ndim, a.ndim - 1)), data.draw(st.integers(-a.ndim, a.ndim - 1))
  assert_matches(tensor(a, d).transpose(d0, d1), widened(np.swapaxes(a, d0, d1), d), d)

@examples(8)
@given(data=st.data())
def test_T_of_2d_is_numpy_T(data):
  d, a = data.draw(typed_array(shapes(min_dims=2, max_dims=2)))
  assert_matches(tensor(a, d).T, widened(a.T, d), d)

# ---------------------------------------------------------------- expand

@examples(20)
@given(data=st.data())
def test_expand_matches_numpy_broadcast_to(data):
  d, a = data.draw(typed_array(shapes(max_side=3)))
  grown = tuple(data.draw(st.integers(0, 3)) if s == 1 else s for s in a.shape)
  target = tuple(data.draw(st.lists(st.integers(0, 3), max_size=2))) + grown
  # -1 means "keep this dim's size", so it may stand only where the size does not change
  lead = len(target) - a.ndim
  arg = tuple(-1 if i >= lead and s == a.shape[i - lead] and data.draw(st.booleans()) else s for i, s in enumerate(target))
  assert_matches(tensor(a, d).expand(arg), widened(np.broadcast_to(a, target), d), d)

@examples(6)
@given(data=st.data())
def test_expand_varargs_form(data):
  d, a = data.draw(typed_array(shapes(min_dims=1, min_side=1, max_side=1)))
  target = tuple(data.draw(st.integers(1, 3)) for _ in a.shape)
  assert_matches(tensor(a, d).expand(*target), widened(np.broadcast_to(a, target), d), d)

# ---------------------------------------------------------------- pad

@examples(20)
@given(data=st.data(), value=st.sampled_from([0, 1, 3, -2]))
def test_pad_per_dim_pairs_matches_numpy(data, value):
  d, a = data.draw(typed_array(shapes(min_dims=1)))
  if d == "bool": value = bool(value)
  if d.startswith("uint"): value = abs(value)
  pads = [data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in range(a.ndim)]
  arg = tuple(None if p == (0, 0) and data.draw(st.booleans()) else p for p in pads)
  out = tensor(a, d).pad(arg, value=value)
  assert_matches(out, widened(np.pad(a, pads, constant_values=value), d), d)

@examples(15)
@given(data=st.data())
def test_pad_flat_torch_style_pads_last_dims_first(data):
  d, a = data.draw(typed_array(shapes(min_dims=1)))
  k = data.draw(st.integers(1, a.ndim))
  flat = [data.draw(st.integers(0, 2)) for _ in range(2 * k)]
  # (left_last, right_last, left_second_last, right_second_last, ...)
  pads = [(0, 0)] * (a.ndim - k) + [(flat[2 * j], flat[2 * j + 1]) for j in range(k)][::-1]
  assert_matches(tensor(a, d).pad(tuple(flat)), widened(np.pad(a, pads), d), d)

@examples(10)
@given(data=st.data())
def test_pad_negative_crops_like_slicing(data):
  d, a = data.draw(typed_array(shapes(min_dims=1, min_side=2)))
  pads = [(-data.draw(st.integers(0, 1)), data.draw(st.integers(0, 1))) for _ in range(a.ndim)]
  crop = tuple(slice(-b, None) for b, _ in pads)
  expected = np.pad(a[crop], [(0, af) for _, af in pads])
  assert_matches(tensor(a, d).pad(tuple(pads)), widened(expected, d), d)

NP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}

@examples(20)
@given(data=st.data(), mode=st.sampled_from(sorted(NP_PAD_MODE)))
def test_pad_modes_match_numpy(data, mode):
  # torch.nn.functional.pad's modes: reflect pads < size, circular <= size, replicate any amount
  d, a = data.draw(typed_array(shapes(min_dims=1, min_side=1)))
  limit = {"reflect": lambda n: n - 1, "circular": lambda n: n, "replicate": lambda n: 3}[mode]
  pads = [(data.draw(st.integers(0, min(2, limit(n)))), data.draw(st.integers(0, min(2, limit(n))))) for n in a.shape]
  assert_matches(tensor(a, d).pad(tuple(pads), mode=mode), widened(np.pad(a, pads, mode=NP_PAD_MODE[mode]), d), d)

@pytest.mark.parametrize("mode", sorted(NP_PAD_MODE))
def test_pad_modes_grad_matches_numeric(mode):
  a = np.random.default_rng(0).uniform(-2, 2, (2, 3, 4))
  assert_grad_matches(lambda t: t.pad((2, 1, 0, 2), mode=mode), a)

def test_pad_mode_errors_name_the_limit():
  x = Tensor.ones(2, 3)
  with pytest.raises(ValueError, match=r"pad: mode 'reflect' pads dim 1 of size 3 by at most 2 on a side, got \(3, 0\)"):
    x.pad(((0, 0), (3, 0)), mode="reflect")
  with pytest.raises(ValueError, match=r"pad: mode 'circular' needs non-negative int padding, got \(-1, 0\)"):
    x.pad(((-1, 0), (0, 0)), mode="circular")
  with pytest.raises(ValueError, match="pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got 'mirror'"):
    x.pad((1, 1), mode="mirror")

# ---------------------------------------------------------------- shrink / flip

@examples(20)
@given(data=st.data())
def test_shrink_matches_numpy_slicing(data):
  d, a = data.draw(typed_array())
  arg = []
  for s in a.shape:
    lo = data.draw(st.integers(0, s))
    arg.append(data.draw(st.one_of(st.none(), st.tuples(st.just(lo), st.integers(lo, s)))))
  sl = tuple(slice(None) if r is None else slice(*r) for r in arg)
  assert_matches(tensor(a, d).shrink(tuple(arg)), widened(a[sl], d), d)

@examples(20)
@given(data=st.data())
def test_flip_matches_numpy(data):
  d, a = data.draw(typed_array(shapes(min_dims=1)))
  axes = data.draw(st.lists(st.integers(-a.ndim, a.ndim - 1), min_size=1, max_size=a.ndim,
                            unique_by=lambda x: x % a.ndim))
  t = tensor(a, d)
  out = t.flip(axes[0]) if len(axes) == 1 else t.flip(tuple(axes))
  assert_matches(out, widened(np.flip(a, tuple(axes)), d), d)

# ---------------------------------------------------------------- squeeze / unsqueeze / flatten

@examples(15)
@given(data=st.data())
def test_squeeze_all_matches_numpy(data):
  d, a = data.draw(typed_array(shapes(max_side=2)))
  assert_matches(tensor(a, d).squeeze(), widened(np.squeeze(a), d), d)

@examples(15)
@given(data=st.data())
def test_squeeze_one_size1_dim_matches_numpy(data):
  d, a = data.draw(typed_array(shapes(min_dims=1, max_side=2)))
  ones = [i for i, s in enumerate(a.shape) if s == 1]
  assume(ones)
  i = data.draw(st.sampled_from(ones))
  dim = data.draw(st.sampled_from([i, i - a.ndim]))
  assert_matches(tensor(a, d).squeeze(dim), widened(np.squeeze(a, axis=dim), d), d)

@examples(15)
@given(data=st.data())
def test_unsqueeze_matches_numpy_expand_dims(data):
  d, a = data.draw(typed_array())
  dim = data.draw(st.integers(-a.ndim - 1, a.ndim))
  assert_matches(tensor(a, d).unsqueeze(dim), widened(np.expand_dims(a, dim), d), d)

@examples(15)
@given(data=st.data())
def test_flatten_matches_numpy_reshape(data):
  d, a = data.draw(typed_array(shapes(min_dims=1)))
  s = data.draw(st.integers(-a.ndim, a.ndim - 1))
  e = data.draw(st.integers(-a.ndim, a.ndim - 1))
  ps, pe = s % a.ndim, e % a.ndim
  assume(ps <= pe)
  new = a.shape[:ps] + (math.prod(a.shape[ps:pe + 1]),) + a.shape[pe + 1:]
  assert_matches(tensor(a, d).flatten(s, e), widened(a.reshape(new), d), d)

def test_flatten_0d_gives_one_element():
  assert_matches(Tensor(3.5).flatten(), np.array([3.5]), "float32")

# ---------------------------------------------------------------- getitem

@st.composite
def basic_index(draw, shape):
  """A numpy basic index for `shape`: ints (negative too), slices with any step, None and at most one Ellipsis.
  Entries before an Ellipsis index the leading dims, entries after it the trailing dims."""
  def one(s):
    if s > 0 and draw(st.booleans()): return draw(st.integers(-s, s - 1))
    bound = st.one_of(st.none(), st.integers(-s - 2, s + 2))
    return slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, -1, -2, -3])))
  k = draw(st.integers(0, len(shape)))  # how many dims get an int or a slice
  use_ellipsis = draw(st.booleans())
  p = draw(st.integers(0, k)) if use_ellipsis else k  # entries before the Ellipsis
  dims = list(range(p)) + list(range(len(shape) - (k - p), len(shape)))
  parts = [one(shape[d]) for d in dims]
  if use_ellipsis: parts.insert(p, Ellipsis)
  for _ in range(draw(st.integers(0, 2))): parts.insert(draw(st.integers(0, len(parts))), None)
  if len(parts) == 1 and draw(st.booleans()): return parts[0]
  return tuple(parts)

@examples(40)
@given(data=st.data())
def test_getitem_basic_indexing_matches_numpy(data):
  d, a = data.draw(typed_array(shapes(max_dims=3, max_side=5)))
  idx = data.draw(basic_index(a.shape))
  expected = a[idx]
  assert_matches(tensor(a, d)[idx], widened(expected, d), d)

@examples(10)
@given(data=st.data())
def test_getitem_negative_step_slice_1d(data):
  a = np.arange(data.draw(st.integers(0, 12)), dtype=np.int32)
  sl = slice(data.draw(st.one_of(st.none(), st.integers(-14, 14))), data.draw(st.one_of(st.none(), st.integers(-14, 14))),
             data.draw(st.sampled_from([-1, -2, -3, -5])))
  assert_matches(tensor(a, "int32")[sl], a[sl].astype(object), "int32")

# ---------------------------------------------------------------- cat / stack

@examples(20)
@given(data=st.data(), n=st.integers(1, 3))
def test_cat_matches_numpy_concatenate(data, n):
  d = data.draw(st.sampled_from(ALL_DTYPES))
  base = data.draw(shapes(min_dims=1, max_dims=3))
  dim = data.draw(st.integers(-len(base), len(base) - 1))
  arrs = []
  for _ in range(n):
    s = list(base); s[dim] = data.draw(st.integers(0, 3))
    arrs.append(data.draw(arrays(d, tuple(s))))
  ts = [tensor(x, d) for x in arrs]
  out = ts[0].cat(*ts[1:], dim=dim)
  assert_matches(out, widened(np.concatenate(arrs, axis=dim), d), d)

@examples(8)
@given(data=st.data())
def test_cat_called_on_the_class_matches_numpy(data):
  base = data.draw(shapes(min_dims=2, max_dims=2))
  a, b = data.draw(arrays("float32", base)), data.draw(arrays("float32", base))
  assert_matches(Tensor.cat(tensor(a, "float32"), tensor(b, "float32"), dim=1), np.concatenate([a, b], axis=1), "float32")

@examples(20)
@given(data=st.data(), n=st.integers(1, 3))
def test_stack_matches_numpy_stack(data, n):
  d = data.draw(st.sampled_from(ALL_DTYPES))
  base = data.draw(shapes(max_dims=3))
  dim = data.draw(st.integers(-len(base) - 1, len(base)))
  arrs = [data.draw(arrays(d, base)) for _ in range(n)]
  out = Tensor.stack(*[tensor(x, d) for x in arrs], dim=dim)
  assert_matches(out, widened(np.stack(arrs, axis=dim), d), d)

# ---------------------------------------------------------------- chains of views

@st.composite
def view_chain(draw, a):
  """Apply 2-5 random movement ops to numpy array `a`, returning the ops (for replay on a Tensor) and the result."""
  ops = []
  for _ in range(draw(st.integers(2, 5))):
    kind = draw(st.sampled_from(["reshape", "permute", "pad", "shrink", "flip", "expand"]))
    if kind == "reshape":
      new = _factorizations(draw, a.size)
      ops.append(lambda t, new=new: t.reshape(new)); a = a.reshape(new)
    elif kind == "permute":
      order = tuple(draw(st.permutations(range(a.ndim))))
      ops.append(lambda t, o=order: t.permute(o)); a = np.transpose(a, order)
    elif kind == "pad" and a.ndim:
      pads = tuple(draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in range(a.ndim))
      ops.append(lambda t, p=pads: t.pad(p)); a = np.pad(a, pads)
    elif kind == "shrink" and a.ndim:
      arg = []
      for s in a.shape:
        lo = draw(st.integers(0, s)); arg.append((lo, draw(st.integers(lo, s))))
      ops.append(lambda t, r=tuple(arg): t.shrink(r)); a = a[tuple(slice(*r) for r in arg)]
    elif kind == "flip" and a.ndim:
      ax = draw(st.integers(0, a.ndim - 1))
      ops.append(lambda t, ax=ax: t.flip(ax)); a = np.flip(a, ax)
    elif kind == "expand":
      new = (draw(st.integers(1, 3)),) + a.shape
      ops.append(lambda t, n=new: t.reshape((1,) + t.shape).expand(n)); a = np.broadcast_to(a[None], new)
    if a.size > 4096: break
  return ops, a

@examples(40)
@given(data=st.data())
def test_random_view_chain_matches_numpy(data):
  d, a = data.draw(typed_array(shapes(max_dims=3, max_side=4)))
  ops, expected = data.draw(view_chain(a))
  t = tensor(a, d)
  for op in ops: t = op(t)
  assert_matches(t, widened(expected, d), d)

@examples(20)
@given(data=st.data())
def test_view_chain_then_elementwise_matches_numpy(data):
  a = data.draw(shapes(max_dims=3, max_side=4).flatmap(lambda s: arrays("float32", s, lo=-100, hi=100)))
  ops, expected = data.draw(view_chain(a))
  t = tensor(a, "float32")
  for op in ops: t = op(t)
  assert_matches(t * 2 + 1, expected.astype(np.float64) * 2 + 1, "float32")
