"""The composite movement, contraction and creation ops of tinygrad/mixin/movement.py against numpy (float64 reference):
gather, repeat_interleave, unfold, diag, diagonal, roll, rearrange, meshgrid, isclose/allclose, einsum, interpolate,
max_unpool2d, randperm, from_blob, from_url.

Values that only move are compared exactly; einsum and interpolate with the dtype's tolerance. Gradients of the
differentiable ones are checked against central differences (tests/gradcheck.py).
"""
import ctypes, gzip
import numpy as np
import pytest
from hypothesis import given, strategies as st
from tinygrad import Tensor, dtypes, Context
from strategies import (arrays, shapes, tensor, assert_matches, examples, widened, typed_array)
from gradcheck import assert_grad_matches


def _rand(*shape, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).uniform(-2, 2, size=shape)

# ---------------------------------------------------------------- gather

@examples(15)
@given(data=st.data())
def test_gather_matches_take_along_axis(data):
  d, a = data.draw(typed_array(shapes(min_dims=1, max_dims=3, min_side=1)))
  dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
  n = a.shape[dim]
  ishape = tuple(data.draw(st.integers(0, 4)) if j == dim % a.ndim else data.draw(st.integers(0, s)) for j, s in enumerate(a.shape))
  idx = data.draw(arrays("int32", ishape, lo=-n, hi=n - 1))
  sub = a[tuple(slice(None) if j == dim % a.ndim else slice(0, i) for j, i in enumerate(ishape))]
  out = tensor(a, d).gather(dim, Tensor(idx))
  assert_matches(out, widened(np.take_along_axis(sub, idx % n, dim % a.ndim), d), d)

@pytest.mark.parametrize("idt", ["int8", "uint8", "int64", "uint32"])
def test_gather_index_dtypes(idt):
  a = np.arange(300.0).reshape(2, 150)
  idx = np.array([[0, 120, 7], [100, 3, 127]], dtype=idt)
  np.testing.assert_array_equal(Tensor(a).gather(1, Tensor(idx)).numpy(), np.take_along_axis(a, idx.astype(np.int64), 1))

def test_gather_negative_int8_index_past_127():
  # n + index is computed wider than int8: -1 selects element 149, not a wrapped int8 sum
  a = np.arange(150.0)
  np.testing.assert_array_equal(Tensor(a).gather(0, Tensor(np.array([-1, -128], dtype=np.int8))).numpy(), [149.0, 22.0])

def test_gather_0d():
  assert Tensor(5.0).gather(0, Tensor(0)).item() == 5.0

def test_gather_out_of_range_index_gives_zero():
  assert Tensor([1.0, 2.0, 3.0]).gather(0, Tensor([3, -4, 1])).tolist() == [0.0, 0.0, 2.0]

def test_gather_is_one_load(capsys):
  # the one-hot sum over the 6000 candidates folds into one indexed load: no loop over them in the kernel
  x = Tensor(_rand(3, 6000).astype(np.float32))
  idx = np.random.default_rng(1).integers(0, 6000, (3, 16))
  with Context(DEBUG=6): out = x.gather(1, Tensor(idx)).realize()
  assert "[0, 6000)" not in capsys.readouterr().out
  np.testing.assert_array_equal(out.numpy(), np.take_along_axis(x.numpy(), idx, 1))

def test_gather_grad_accumulates_repeated_indices():
  idx = Tensor(np.array([[0, 0, 2], [1, 1, 1], [3, 0, 3]]))
  assert_grad_matches(lambda x: x.gather(1, idx), _rand(3, 4))
  assert_grad_matches(lambda x: x.gather(0, idx[:2]), _rand(4, 3))

def test_gather_errors():
  x = Tensor.ones(3, 4)
  with pytest.raises(ValueError, match=r"gather: index of shape \(3,\) must have as many dims as the input of shape \(3, 4\)"):
    x.gather(1, Tensor([0, 1, 2]))
  with pytest.raises(ValueError, match=r"gather: index of shape \(4, 2\) is larger than the input of shape \(3, 4\) in dim 0"):
    x.gather(1, Tensor.zeros(4, 2, dtype=dtypes.int32))
  with pytest.raises(TypeError, match="gather: index must have an integer dtype, got .*float"):
    x.gather(1, Tensor.zeros(3, 2))
  with pytest.raises(IndexError, match=r"gather: axis 2 is out of range for shape \(3, 4\)"):
    x.gather(2, Tensor.zeros(3, 2, dtype=dtypes.int32))

# ---------------------------------------------------------------- repeat_interleave, unfold

@examples(15)
@given(data=st.data(), repeats=st.integers(0, 3))
def test_repeat_interleave_matches_np_repeat(data, repeats):
  d, a = data.draw(typed_array(shapes(max_dims=3)))
  dim = data.draw(st.none() | st.integers(-max(a.ndim, 1), max(a.ndim, 1) - 1))
  ref = np.repeat(a, repeats, axis=None if a.ndim == 0 else dim)
  assert_matches(tensor(a, d).repeat_interleave(repeats, dim), widened(ref, d), d)

def test_repeat_interleave_grad_and_errors():
  assert_grad_matches(lambda x: x.repeat_interleave(3, -1), _rand(2, 3))
  with pytest.raises(ValueError, match="repeat_interleave: repeats must be a non-negative int, got -1"):
    Tensor.ones(2).repeat_interleave(-1)

@examples(15)
@given(data=st.data(), step=st.integers(1, 3))
def test_unfold_matches_sliding_windows(data, step):
  d, a = data.draw(typed_array(shapes(min_dims=1, max_dims=3)))
  dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
  size = data.draw(st.integers(0, a.shape[dim]))
  ref = np.lib.stride_tricks.sliding_window_view(a, size, axis=dim)
  ref = ref[tuple(slice(None, None, step) if j == dim % a.ndim else slice(None) for j in range(a.ndim))]
  assert_matches(tensor(a, d).unfold(dim, size, step), widened(ref, d), d)

def test_unfold_0d_and_grad():
  assert Tensor(7).unfold(0, 1, 1).tolist() == [7]
  assert_grad_matches(lambda x: x.unfold(1, 3, 2), _rand(2, 7))

def test_unfold_errors():
  with pytest.raises(ValueError, match=r"unfold: size 5 must be in \[0, 4\] \(dim 1 of shape \(2, 4\)\)"):
    Tensor.ones(2, 4).unfold(1, 5, 1)
  with pytest.raises(ValueError, match="unfold: step must be positive, got 0"):
    Tensor.ones(4).unfold(0, 2, 0)

# ---------------------------------------------------------------- diag, diagonal

@examples(8)
@given(data=st.data())
def test_diag_builds_diagonal_matrix(data):
  d, a = data.draw(typed_array(shapes(min_dims=1, max_dims=1, max_side=5)))
  assert_matches(tensor(a, d).diag(), widened(np.diag(a), d), d)

@examples(15)
@given(data=st.data(), offset=st.integers(-4, 4))
def test_diagonal_matches_numpy(data, offset):
  d, a = data.draw(typed_array(shapes(min_dims=2, max_dims=4)))
  d1, d2 = data.draw(st.lists(st.integers(-a.ndim, a.ndim - 1), min_size=2, max_size=2, unique_by=lambda v: v % a.ndim))
  assert_matches(tensor(a, d).diagonal(offset, d1, d2), widened(np.diagonal(a, offset, d1, d2), d), d)

def test_diagonal_defaults_and_grad():
  a = _rand(3, 4, 2)
  np.testing.assert_array_equal(Tensor(a).diagonal().numpy(), np.diagonal(a))
  assert_grad_matches(lambda x: x.diagonal(1, -1, 0), a)
  assert_grad_matches(lambda x: x.diag(), _rand(3))

def test_diag_diagonal_errors():
  with pytest.raises(ValueError, match=r"diag: needs a 1-D tensor, got shape \(2, 2\)"): Tensor.ones(2, 2).diag()
  with pytest.raises(ValueError, match=r"diagonal: needs at least 2 dims, got shape \(3,\)"): Tensor.ones(3).diagonal()
  with pytest.raises(ValueError, match="diagonal: dim1 and dim2 must differ, both are 1"): Tensor.ones(2, 2).diagonal(0, 1, -1)

# ---------------------------------------------------------------- roll

@examples(15)
@given(data=st.data())
def test_roll_matches_numpy(data):
  d, a = data.draw(typed_array(shapes(max_dims=3)))
  if a.ndim == 0 or data.draw(st.booleans()):
    shift = data.draw(st.integers(-7, 7))
    assert_matches(tensor(a, d).roll(shift), widened(np.roll(a, shift), d), d)
  else:
    dims = data.draw(st.lists(st.integers(-a.ndim, a.ndim - 1), min_size=1, max_size=3))
    shifts = data.draw(st.lists(st.integers(-7, 7), min_size=len(dims), max_size=len(dims)))
    assert_matches(tensor(a, d).roll(tuple(shifts), tuple(dims)), widened(np.roll(a, shifts, dims), d), d)

def test_roll_grad_and_errors():
  assert_grad_matches(lambda x: x.roll((1, -2), (0, 1)), _rand(3, 4))
  with pytest.raises(ValueError, match=r"roll: shifts \(1, 2\) and dims \(0,\) must have the same length"):
    Tensor.ones(2, 2).roll((1, 2), (0,))
  with pytest.raises(ValueError, match="roll: without dims, shifts must be a single int"):
    Tensor.ones(2, 2).roll((1, 2))

# ---------------------------------------------------------------- rearrange

A = np.arange(2 * 3 * 4 * 6).reshape(2, 3, 4, 6)
@pytest.mark.parametrize("formula, sizes, ref", [
  ("b c h w -> b h w c", {}, A.transpose(0, 2, 3, 1)),
  ("b c h (w1 w2) -> b (c w1) h w2", {"w2": 3}, A.reshape(2, 3, 4, 2, 3).transpose(0, 1, 3, 2, 4).reshape(2, 6, 4, 3)),
  ("b c (h1 h2) w -> (b h1) c h2 w", {"h1": 2, "h2": 2}, A.reshape(2, 3, 2, 2, 6).transpose(0, 2, 1, 3, 4).reshape(4, 3, 2, 6)),
  ("b ... w -> w (b ...)", {}, A.transpose(3, 0, 1, 2).reshape(6, 24)),
  ("... h w -> ... (w h)", {}, A.transpose(0, 1, 3, 2).reshape(2, 3, 24)),
  ("b c h w -> b 1 c () h w 1", {}, A.reshape(2, 1, 3, 1, 4, 6, 1)),
  ("b c h w->(b c h w)", {}, A.reshape(-1)),
  ("b c h w -> b c h w", {"b": 2}, A),
])
def test_rearrange_matches_numpy(formula, sizes, ref):
  np.testing.assert_array_equal(Tensor(A).rearrange(formula, **sizes).numpy(), ref)

def test_rearrange_removes_unit_dims():
  np.testing.assert_array_equal(Tensor(A[:, :1]).rearrange("b 1 h w -> b (h w)").numpy(), A[:, 0].reshape(2, 24))
  np.testing.assert_array_equal(Tensor(A[:, :1]).rearrange("b () h w -> w b h").numpy(), A[:, 0].transpose(2, 0, 1))

@pytest.mark.parametrize("formula, sizes, match", [
  ("b c h w", {}, "needs exactly one '->'"),
  ("b c h w -> b c h", {}, r"names \['w'\] on one side only"),
  ("b c h w -> b c h w w", {}, "an axis name is repeated on the right"),
  ("b c h -> b c h", {}, r"the left of .* has 3 dims, the tensor has shape \(2, 3, 4, 6\)"),
  ("b c h (w1 w2) -> b c h w1 w2", {}, r"give sizes for all but one of \['w1', 'w2'\]"),
  ("b c h (w1 w2) -> b c h w1 w2", {"w1": 4}, r"cannot split a dim of size 6 into \['w1', 'w2'\]"),
  ("b c h w -> b c h w", {"x": 2}, r"sizes given for \['x'\]"),
  ("b c h w -> b c h w", {"h": 5}, r"cannot split a dim of size 4 into \['h'\]"),
  ("(b ...) -> b ...", {}, "'...' cannot be inside parentheses on the left"),
  ("b c (h w -> b c h w", {}, r"unbalanced '\('"),
  ("b c h w -> b c h w2!", {}, "invalid axis name 'w2!'"),
])
def test_rearrange_errors(formula, sizes, match):
  with pytest.raises(ValueError, match="rearrange: .*" + match): Tensor(A).rearrange(formula, **sizes)

# ---------------------------------------------------------------- meshgrid

@pytest.mark.parametrize("indexing", ["ij", "xy"])
@pytest.mark.parametrize("lens", [(3,), (2, 3), (2, 0, 4), (1, 3, 2)])
def test_meshgrid_matches_numpy(indexing, lens):
  xs = [np.arange(n) * 10 + i for i, n in enumerate(lens)]
  got = Tensor(xs[0]).meshgrid(*[Tensor(x) for x in xs[1:]], indexing=indexing)
  for g, r in zip(got, np.meshgrid(*xs, indexing=indexing)): np.testing.assert_array_equal(g.numpy(), r)

def test_meshgrid_errors():
  with pytest.raises(ValueError, match="meshgrid: indexing must be 'ij' or 'xy', got 'ji'"): Tensor.ones(2).meshgrid(Tensor.ones(2), indexing="ji")
  with pytest.raises(ValueError, match=r"meshgrid: inputs must be 0-D or 1-D, got shape \(2, 2\)"): Tensor.ones(2).meshgrid(Tensor.ones(2, 2))

# ---------------------------------------------------------------- isclose, allclose

@examples(15)
@given(data=st.data(), equal_nan=st.booleans())
def test_isclose_matches_numpy(data, equal_nan):
  d = data.draw(st.sampled_from(["float32", "float64"]))
  a = data.draw(arrays(d, shapes(max_dims=2), specials=True))
  nudge = data.draw(arrays("float64", a.shape, lo=-1e-4, hi=1e-4))
  b = np.where(data.draw(arrays("bool", a.shape)), a, (a * (1 + nudge)).astype(a.dtype))
  kw = {"rtol": data.draw(st.sampled_from([1e-5, 1e-3])), "atol": data.draw(st.sampled_from([1e-8, 1e-2]))}
  np.testing.assert_array_equal(tensor(a, d).isclose(tensor(b, d), equal_nan=equal_nan, **kw).numpy(),
                                np.isclose(a, b, equal_nan=equal_nan, **kw))

def test_isclose_broadcasts_scalars_and_ints():
  a = np.array([[1.0, 2.0, np.inf], [-np.inf, np.nan, 0.0]])
  np.testing.assert_array_equal(Tensor(a).isclose(2.0000001).numpy(), np.isclose(a, 2.0000001))
  np.testing.assert_array_equal(Tensor(a).isclose(Tensor([1.0, 2.0, np.inf])).numpy(), np.isclose(a, [1.0, 2.0, np.inf]))
  np.testing.assert_array_equal(Tensor([1, 2, 3]).isclose(Tensor([1, 3, 3])).numpy(), [True, False, True])
  with pytest.raises(ValueError, match=r"isclose: cannot broadcast shapes \(2, 3\) and \(2,\)"): Tensor(a).isclose(Tensor([1.0, 2.0]))

def test_allclose_returns_python_bool():
  assert Tensor([1.0, 2.0]).allclose(Tensor([1.0, 2.00001])) is True
  assert Tensor([1.0, 2.0]).allclose(Tensor([1.0, 2.1])) is False
  assert Tensor([np.nan]).allclose(Tensor([np.nan])) is False
  assert Tensor([np.nan]).allclose(Tensor([np.nan]), equal_nan=True) is True
  assert Tensor.zeros(0).allclose(Tensor.ones(0)) is True

# ---------------------------------------------------------------- einsum

EINSUM_CASES = [
  ("ij,jk->ik", [(3, 4), (4, 5)]),
  ("ij,jk", [(3, 4), (4, 5)]),
  ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
  ("i,i->", [(5,), (5,)]),
  ("i,j->ij", [(3,), (4,)]),
  ("ij->ji", [(3, 4)]),
  ("ij->", [(3, 4)]),
  ("ii->i", [(4, 4)]),
  ("ii", [(4, 4)]),
  ("iji->j", [(3, 2, 3)]),
  ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
  ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
  ("...i,...i", [(2, 3), (3,)]),
  ("b...,b->...b", [(2, 3, 4), (2,)]),
  ("Ab,bA->bA", [(2, 3), (3, 2)]),
  ("ab,Ba", [(2, 3), (4, 2)]),
  ("i,i->i", [(1,), (3,)]),
  ("ij,jk->ik", [(0, 3), (3, 2)]),
  ("i,i->", [(0,), (0,)]),
]

@pytest.mark.parametrize("formula, shapes_", EINSUM_CASES)
def test_einsum_matches_numpy(formula, shapes_):
  xs = [_rand(*s, seed=i) for i, s in enumerate(shapes_)]
  out = Tensor.einsum(formula, *[Tensor(x) for x in xs])
  assert_matches(out, np.einsum(formula, *xs), "float64", kind="reduce")

def test_einsum_accepts_a_list_and_dtype():
  a, b = np.arange(6).reshape(2, 3), np.arange(12).reshape(3, 4)
  out = Tensor.einsum("ij,jk->ik", [Tensor(a, dtype=dtypes.int32), Tensor(b, dtype=dtypes.int32)])
  assert out.dtype == dtypes.int32 and np.array_equal(out.numpy(), a @ b)
  out = Tensor.einsum("ij,jk->ik", Tensor(a, dtype=dtypes.float16), Tensor(b, dtype=dtypes.float16), dtype=dtypes.float32)
  assert out.dtype == dtypes.float32 and np.array_equal(out.numpy(), a @ b)

def test_einsum_grad():
  assert_grad_matches(lambda x, y: Tensor.einsum("ij,jk->ik", x, y), _rand(2, 3), _rand(3, 4, seed=1))
  assert_grad_matches(lambda x, y: Tensor.einsum("bii,bj->bij", x, y), _rand(2, 3, 3), _rand(2, 2, seed=1))

@pytest.mark.parametrize("formula, shapes_, exc, match", [
  ("ij,jk->ik", [(3, 4)], ValueError, r"has 2 operands, got 1 tensors"),
  ("ij,jk->ik", [(3, 4), (5, 6)], ValueError, r"subscript 'j' of 'ij,jk->ik' has sizes 4 and 5"),
  ("ijk->i", [(3, 4)], ValueError, r"subscripts 'ijk' do not match an operand of shape \(3, 4\)"),
  ("ij->iz", [(3, 4)], ValueError, r"output 'iz' of 'ij->iz' must use distinct letters of the inputs"),
  ("ij->ii", [(3, 4)], ValueError, r"output 'ii' of 'ij->ii' must use distinct letters"),
  ("ii->i", [(3, 4)], ValueError, r"subscript 'i' of 'ii->i' has sizes 3 and 4 in one operand"),
  ("i1->i", [(3, 4)], ValueError, r"bad subscripts 'i1'"),
  ("...ij->ij", [(2, 3, 4)], ValueError, r"broadcasts over '...' but its output 'ij' has no '...'"),
  ("...i,...i->...", [(2, 3), (4, 3)], ValueError, r"einsum: cannot broadcast shapes \(2,\) and \(4,\)"),
  ("ij->i->j", [(3, 4)], ValueError, "more than one '->'"),
])
def test_einsum_errors(formula, shapes_, exc, match):
  with pytest.raises(exc, match=match): Tensor.einsum(formula, *[Tensor.ones(*s) for s in shapes_])

# ---------------------------------------------------------------- interpolate

def _interpolate_ref(a: np.ndarray, size, mode: str, align_corners: bool) -> np.ndarray:
  """torch.nn.functional.interpolate's source-index rules, one axis at a time, in float64."""
  x = a.astype(np.float64)
  for d, n_out in zip(range(a.ndim - len(size), a.ndim), size):
    n_in, k = a.shape[d], np.arange(n_out, dtype=np.float64)
    shape = [1] * a.ndim
    shape[d] = n_out
    if mode == "linear":
      if align_corners: src = k * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
      else: src = np.maximum((k + 0.5) * (n_in / n_out) - 0.5, 0)
      lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
      lam = (src - lo).reshape(shape)
      x = np.take(x, lo, d) * (1 - lam) + np.take(x, np.minimum(lo + 1, n_in - 1), d) * lam
    else:
      src = k * n_in // n_out if mode == "nearest" else (2 * k + 1) * n_in // (2 * n_out)
      x = np.take(x, src.astype(np.int64), d)
  return x

@examples(15)
@given(data=st.data(), mode=st.sampled_from(["linear", "nearest", "nearest-exact"]), d=st.sampled_from(["float32", "float64"]))
def test_interpolate_matches_torch_rules(data, mode, d):
  a = data.draw(arrays(d, shapes(min_dims=3, max_dims=5, min_side=1, max_side=4), lo=-10, hi=10))
  nsize = data.draw(st.integers(1, a.ndim - 2))
  size = tuple(data.draw(st.integers(1, 6)) for _ in range(nsize))
  ac = mode == "linear" and data.draw(st.booleans())
  out = tensor(a, d).interpolate(size, mode=mode, align_corners=ac)
  assert_matches(out, _interpolate_ref(a, size, mode, ac), d, rtol=1e-5 if d == "float32" else 1e-12, atol=1e-5 if d == "float32" else 1e-12)

def test_interpolate_known_values():
  x = Tensor([[[1.0, 2.0]]])
  np.testing.assert_allclose(x.interpolate((4,)).numpy(), [[[1.0, 1.25, 1.75, 2.0]]])
  np.testing.assert_allclose(x.interpolate((3,), align_corners=True).numpy(), [[[1.0, 1.5, 2.0]]])
  np.testing.assert_array_equal(x.interpolate((4,), mode="nearest").numpy(), [[[1.0, 1.0, 2.0, 2.0]]])
  np.testing.assert_array_equal(Tensor([[[1, 2, 3]]]).interpolate((2,), mode="nearest-exact").numpy(), [[[1, 3]]])
  img = Tensor(np.arange(4.0).reshape(1, 1, 2, 2))
  np.testing.assert_allclose(img.interpolate((3, 3), align_corners=True).numpy(), [[[[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]]]])

def test_interpolate_grad():
  assert_grad_matches(lambda x: x.interpolate((5, 3)), _rand(1, 2, 3, 4))
  assert_grad_matches(lambda x: x.interpolate((4, 2), align_corners=True), _rand(1, 1, 3, 3))

def test_interpolate_errors():
  x = Tensor.ones(1, 1, 4)
  with pytest.raises(ValueError, match="interpolate: mode must be 'linear', 'nearest' or 'nearest-exact', got 'cubic'"):
    x.interpolate((2,), mode="cubic")
  with pytest.raises(ValueError, match="interpolate: align_corners=True needs mode='linear'"): x.interpolate((2,), mode="nearest", align_corners=True)
  with pytest.raises(ValueError, match=r"interpolate: size \(2, 0\) must be 1 to 3 positive ints"): x.interpolate((2, 0))
  with pytest.raises(ValueError, match=r"interpolate: size \(1, 1, 1, 1\) must be 1 to 3 positive ints"): x.interpolate((1, 1, 1, 1))
  with pytest.raises(TypeError, match="interpolate: size must be a tuple of ints, got 4"): x.interpolate(4)
  with pytest.raises(ValueError, match=r"interpolate: cannot resample the empty dims of shape \(1, 1, 0\)"): Tensor.ones(1, 1, 0).interpolate((2,))

# ---------------------------------------------------------------- max_unpool2d

def _max_pool_with_indices(a: np.ndarray, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
  """torch's max_pool2d(return_indices=True): the maxima and their flat positions in each (H, W) plane."""
  n, c, h, w = a.shape
  oh, ow = (h - k) // s + 1, (w - k) // s + 1
  vals, idx = np.zeros((n, c, oh, ow)), np.zeros((n, c, oh, ow), dtype=np.int64)
  for i in range(oh):
    for j in range(ow):
      win = a[:, :, i * s:i * s + k, j * s:j * s + k].reshape(n, c, -1)
      am = win.argmax(-1)
      vals[:, :, i, j] = win.max(-1)
      idx[:, :, i, j] = (i * s + am // k) * w + j * s + am % k
  return vals, idx

def _unpool_ref(vals: np.ndarray, idx: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
  n, c = vals.shape[:2]
  out = np.zeros((n, c, out_hw[0] * out_hw[1]))
  for b in range(n):
    for ch in range(c): np.add.at(out[b, ch], idx[b, ch].reshape(-1), vals[b, ch].reshape(-1))
  return out.reshape(n, c, *out_hw)

@pytest.mark.parametrize("shape, k, s, out_size", [((1, 1, 4, 4), 2, None, None), ((2, 3, 6, 4), 2, 2, None),
                                                   ((1, 2, 5, 5), 3, 2, None), ((1, 1, 5, 7), 2, 2, (5, 7))])
def test_max_unpool2d_inverts_max_pool(shape, k, s, out_size):
  a = _rand(*shape)
  vals, idx = _max_pool_with_indices(a, k, s or k)
  out = Tensor(vals).max_unpool2d(Tensor(idx), kernel_size=k, stride=s, output_size=out_size)
  hw = out_size or tuple((i - 1) * (s or k) + k for i in vals.shape[2:])
  np.testing.assert_array_equal(out.numpy(), _unpool_ref(vals, idx, hw))

def test_max_unpool2d_grad_and_errors():
  vals, idx = _max_pool_with_indices(_rand(1, 2, 4, 4), 2, 2)
  assert_grad_matches(lambda x: Tensor(x).max_unpool2d(Tensor(idx)), vals)
  with pytest.raises(ValueError, match=r"max_unpool2d: indices of shape \(2, 2, 2\) must match the input's shape \(1, 2, 2, 2\)"):
    Tensor(vals).max_unpool2d(Tensor(idx[0]))
  with pytest.raises(TypeError, match="max_unpool2d: indices must have an integer dtype"):
    Tensor(vals).max_unpool2d(Tensor(vals))
  with pytest.raises(ValueError, match=r"max_unpool2d: output size \(0, 2\) must be 2 positive ints"):
    Tensor(vals).max_unpool2d(Tensor(idx), output_size=(0, 2))

# ---------------------------------------------------------------- randperm

@pytest.mark.parametrize("n", [0, 1, 2, 7, 300])
def test_randperm_is_a_permutation(n):
  p = Tensor.randperm(n)
  assert p.dtype == dtypes.int32 and p.shape == (n,)
  assert sorted(p.tolist()) == list(range(n))

def test_randperm_dtype_and_randomness():
  Tensor.manual_seed(3)
  perms = {tuple(Tensor.randperm(20, dtype=dtypes.int64).tolist()) for _ in range(3)}
  assert len(perms) == 3 and all(sorted(p) == list(range(20)) for p in perms)
  assert Tensor.randperm(5, dtype="int8").dtype == dtypes.int8
  with pytest.raises(ValueError, match="randperm: n must be a non-negative int, got -1"): Tensor.randperm(-1)

# ---------------------------------------------------------------- from_blob, from_url

@pytest.mark.parametrize("d, np_dt", [("float32", np.float32), ("int64", np.int64), ("uint8", np.uint8), ("float16", np.float16),
                                      ("bool", np.bool_)])
def test_from_blob_copies_host_memory(d, np_dt):
  src = (np.arange(12) % 3).astype(np_dt).reshape(3, 4)
  t = Tensor.from_blob(src.ctypes.data, (3, 4), dtype=d)
  assert t.dtype == getattr(dtypes, d)
  src[...] = 0  # a copy: later writes to the memory are not seen
  np.testing.assert_array_equal(t.numpy(), (np.arange(12) % 3).astype(np_dt).reshape(3, 4))

def test_from_blob_bfloat16_empty_and_errors():
  raw = (ctypes.c_uint16 * 2)(0x3F80, 0xC000)  # bfloat16 1.0 and -2.0
  assert Tensor.from_blob(ctypes.addressof(raw), (2,), dtype=dtypes.bfloat16).tolist() == [1.0, -2.0]
  assert Tensor.from_blob(0, (0, 3)).shape == (0, 3)
  with pytest.raises(ValueError, match=r"from_blob: null pointer for 8 bytes of shape \(2,\)"): Tensor.from_blob(0, (2,))

def test_from_url_refuses_network():
  with pytest.raises(RuntimeError, match="from_url: 'https://example.com/w.bin': this build does no network download"):
    Tensor.from_url("https://example.com/w.bin")

def test_from_url_reads_file_urls(tmp_path):
  f = tmp_path / "w.bin"
  f.write_bytes(np.arange(4, dtype=np.float32).tobytes())
  assert Tensor.from_url(f.as_uri()).tolist() == list(np.arange(4, dtype=np.float32).tobytes())
  assert Tensor.from_url(f.as_uri(), dtype=dtypes.float32).tolist() == [0.0, 1.0, 2.0, 3.0]
  g = tmp_path / "w.gz"
  g.write_bytes(gzip.compress(b"\x01\x02\x03"))
  assert Tensor.from_url(g.as_uri(), gunzip=True).tolist() == [1, 2, 3]
