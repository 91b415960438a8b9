"""Symbolic shapes: a dimension bound to a Variable at run time; one compiled kernel serves every bound value."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from tinygrad import Tensor, Variable, TinyJit, dtypes
from tinygrad.engine import realize

def compiles(fn):
  """fn's result and how many kernels it compiled."""
  before = realize.stats["compiles"]
  out = fn()
  return out, realize.stats["compiles"] - before

A = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
B = np.random.default_rng(1).standard_normal((10, 5)).astype(np.float32)

# each case: (the computation on tensors a (6, 10) and b (10, 5) with a bound n, the numpy reference for n)
CASES = {
  "shrink_sum": (lambda a, b, n: a.shrink(((0, 6), (0, n))).sum(1), lambda n: A[:, :n].sum(1)),
  "shrink_rows_sum": (lambda a, b, n: a.shrink(((0, 6), (0, n))).sum(0), lambda n: A[:, :n].sum(0)),
  "mean": (lambda a, b, n: a.shrink(((0, 6), (0, n))).mean(1), lambda n: A[:, :n].mean(1)),
  "max": (lambda a, b, n: a.shrink(((0, 6), (0, n))).max(1), lambda n: A[:, :n].max(1)),
  "softmax": (lambda a, b, n: a.shrink(((0, 6), (0, n))).softmax(1),
              lambda n: np.exp(A[:, :n] - A[:, :n].max(1, keepdims=True)) / np.exp(A[:, :n] - A[:, :n].max(1, keepdims=True)).sum(1, keepdims=True)),
  "matmul": (lambda a, b, n: a.shrink(((0, 6), (0, n))) @ b.shrink(((0, n), (0, 5))), lambda n: A[:, :n] @ B[:n]),
  "elementwise": (lambda a, b, n: (a.shrink(((0, 6), (0, n))) * 2 + 1).relu(), lambda n: np.maximum(A[:, :n] * 2 + 1, 0)),
  "cat": (lambda a, b, n: a.shrink(((0, 6), (0, n))).cat(a, dim=1), lambda n: np.concatenate([A[:, :n], A], 1)),
  "window": (lambda a, b, n: a.shrink(((0, 6), (n, n + 1))), lambda n: A[:, n:n + 1]),
  "ones_sum": (lambda a, b, n: Tensor.ones(n).sum(), lambda n: np.float32(n)),
}

@pytest.mark.parametrize("name", list(CASES))
def test_symbolic_matches_numpy_and_compiles_once(name):
  fn, ref = CASES[name]
  a, b = Tensor(A).realize(), Tensor(B).realize()
  counts = []
  for n in (1, 4, 7, 9):
    out, k = compiles(lambda: fn(a, b, Variable("n", 1, 9).bind(n)).realize())
    np.testing.assert_allclose(out.numpy(), ref(n), rtol=1e-5, atol=1e-6)
    counts.append(k)
  assert counts[1:] == [0, 0, 0], f"{name}: compiled {counts} kernels for n = 1, 4, 7, 9; later values must reuse the first"

def test_reshape_compiles_once():
  # a whole buffer reshaped to a symbolic shape is read as a buffer of symbolic size: no kernel depends on the value
  counts = []
  for i in range(1, 6):
    x, y = Tensor.rand(3, i).realize(), Tensor.rand(i, 5).realize()
    vi = Variable("i", 1, 10).bind(i)
    out, k = compiles(lambda: (x.reshape(3, vi) @ y.reshape(vi, 5) + x.reshape(3, vi).sum(1, keepdim=True)).realize())
    np.testing.assert_allclose(out.numpy(), x.numpy() @ y.numpy() + x.numpy().sum(1, keepdims=True), rtol=1e-5)
    summed, k2 = compiles(lambda: (x.reshape(3, vi) + x.reshape(3, vi)).realize())
    assert summed.shape == (3, vi)
    np.testing.assert_allclose(summed.reshape(3, i).numpy(), 2 * x.numpy(), rtol=1e-6)
    counts.append(k + k2)
  assert counts[1:] == [0] * 4, counts

def test_result_of_symbolic_shape_feeds_the_next_computation():
  a = Tensor(A).realize()
  for n in (2, 6):
    v = Variable("n", 1, 9).bind(n)
    y = (a.shrink(((0, 6), (0, v))) * 2).realize()
    assert y.shape == (6, v)
    np.testing.assert_allclose((y + 1).sum(0).numpy(), (A[:, :n] * 2 + 1).sum(0), rtol=1e-5)

@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 9), name=st.sampled_from(["shrink_sum", "mean", "matmul", "elementwise", "cat"]))
def test_any_bound_value(n, name):
  fn, ref = CASES[name]
  if name == "mean" and n == 0: return  # numpy's mean of nothing warns; the n=0 loop is covered by test_zero_size_loop_does_not_run
  out = fn(Tensor(A), Tensor(B), Variable("n", 0, 9).bind(n)).realize()
  np.testing.assert_allclose(out.numpy(), ref(n), rtol=1e-5, atol=1e-6)

def test_zero_size_loop_does_not_run():
  a = Tensor(A).realize()
  v = Variable("n", 0, 9).bind(0)
  np.testing.assert_array_equal(a.shrink(((0, 6), (0, v))).sum(1).numpy(), np.zeros(6, np.float32))
  assert a.shrink(((0, Variable("m", 0, 6).bind(0)), (0, 10))).numpy().shape == (0, 10)  # rows: the range must fit 6

def test_gradient_through_symbolic_shrink():
  x = Tensor(A, requires_grad=True)
  for n in (3, 8):
    (x.shrink(((0, 6), (0, Variable("n", 1, 9).bind(n)))) * 3).sum().backward()
    expected = np.zeros_like(A)
    expected[:, :n] = 3
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    x.grad = None

def test_value_is_a_kernel_argument():
  a = Tensor(A).realize()
  var = Variable("n", 1, 9)
  t = a.shrink(((0, 6), (0, var.bind(4)))).sum(1)
  kernels, var_vals = t.linear_with_vars()
  assert var_vals == {var: 4}
  assert [v.arg.name for v in kernels[-1][0].variables] == ["n"]
  assert "i64 %var0" in kernels[-1][0].src

def test_variable_api():
  v = Variable("start_pos", 0, 64)
  assert (v.expr, v.vmin, v.vmax) == ("start_pos", 0, 64)
  b = v.bind(7)
  assert b.unbind() == (v, 7) and b.val == 7 and b.expr == "start_pos"
  assert Variable("start_pos", 0, 64).bind(7) is b  # hash-consed: equal bindings are one object, so shapes compare equal
  t = Tensor(A).shrink(((0, 6), (0, Variable("n", 1, 9).bind(3))))
  assert t.shape == (6, Variable("n", 1, 9).bind(3)) and repr(t.shape) == "(6, n=3)"

def test_errors():
  v = Variable("n", 1, 9)
  with pytest.raises(ValueError, match=r"bind: n must be an int in \[1, 9\], got 10"): v.bind(10)
  with pytest.raises(ValueError, match="bounds must be ints"): Variable("m", 5, 2)
  a = Tensor(A)
  with pytest.raises(ValueError, match="cannot reshape"): a.shrink(((0, 6), (0, v.bind(3)))).reshape(6, 4)
  with pytest.raises(ValueError, match="does not fit"): a.shrink(((0, 6), (0, Variable("k", 1, 20).bind(11))))
  with pytest.raises(ValueError, match="bound to both 3 and 4"):
    (a.shrink(((0, 6), (0, v.bind(3)))).sum() + a.shrink(((0, 6), (0, v.bind(4)))).sum()).realize()
  with pytest.raises(TypeError, match="cannot be decided"): bool(v.bind(3) < 5)  # depends on the value, not the bounds
  assert bool(v.bind(3) >= 1)  # decided by the bounds alone

def test_cuda_refuses_symbolic_kernels_clearly():
  from tinygrad.engine.realize import compile_kernel
  a = Tensor(A).realize()
  kernels, _ = a.shrink(((0, 6), (0, Variable("n", 1, 9).bind(4)))).sum(1).linear_with_vars()
  ck = kernels[-1][0]
  ast = next(k for k, ck2 in realize.kernel_cache.items() if ck2 is ck)[0]
  with pytest.raises(NotImplementedError, match="symbolic shapes .Variable n. run on the CPU backend only, not CUDA"): compile_kernel(ast, (), "CUDA")

def test_tinyjit_replays_with_new_variable_values():
  b = Tensor(B).realize()
  @TinyJit
  def step(x, n):
    y = x.shrink(((0, 6), (0, n)))
    return (y @ b.shrink(((0, n), (0, 5)))).realize(), (y * 2).realize()  # a fixed shape and a symbolic one
  var = Variable("n", 1, 9)
  for k, n in enumerate((3, 3, 5, 9, 1, 7)):
    x = Tensor(A * (k + 1)).realize()
    (mm, twice), new = compiles(lambda: step(x, var.bind(n)))
    np.testing.assert_allclose(mm.numpy(), (A * (k + 1))[:, :n] @ B[:n], rtol=1e-5, atol=1e-5)
    assert twice.shape == (6, var.bind(n))
    np.testing.assert_allclose(twice.numpy(), (A * (k + 1))[:, :n] * 2, rtol=1e-6)
    if k >= 2: assert new == 0, f"replay {k} compiled {new} kernels"
  assert len(step.captured) == 1  # one recording serves every value of n

def test_tinyjit_with_symbolic_tensor_argument():
  f = TinyJit(lambda x: (x * x).sum(1).realize())
  var = Variable("n", 1, 9)
  for n in (2, 2, 4, 8):
    x = Tensor(A[:, :n].copy()).realize()
    out = f(x.reshape(6, var.bind(n)))
    np.testing.assert_allclose(out.numpy(), (A[:, :n] ** 2).sum(1), rtol=1e-5)
  with pytest.raises(RuntimeError, match="expect shape .6, n."): f(Tensor(A[:3, :4].copy()).reshape(3, var.bind(4)))

def test_integer_tensor_mean_over_symbolic_axis():
  x = Tensor(np.arange(12, dtype=np.int32).reshape(3, 4))
  out = x.shrink(((0, 3), (0, Variable("n", 1, 4).bind(2)))).mean(1)
  assert out.dtype == dtypes.float32
  np.testing.assert_allclose(out.numpy(), [0.5, 4.5, 8.5])

def test_one_dim_symbolic_result_keeps_its_shape():
  x = Tensor(A[0]).realize()
  v = Variable("n", 1, 10).bind(4)
  y = (x.shrink(((0, v),)) * 2).realize()
  assert y.shape == (v,)
  np.testing.assert_allclose(y.numpy(), A[0, :4] * 2, rtol=1e-6)

def test_symbolic_size_in_canonical_form():
  from tinygrad.uop import sym_canon
  n = Variable("n", 1, 9).bind(3)
  assert sym_canon((n + 10) - n) == 10 and sym_canon(2 * n + n * 3 - 5 * n) == 0
  assert sym_canon(3 * n) is sym_canon(n * 3) and sym_canon(-(n * -2)) is sym_canon(n * 2)

def test_slicing_with_a_bound_variable_is_a_shrink():
  # a KV cache read up to the current position: x[:pos], x[pos:pos + 2], and slices of the symbolic result
  a = np.arange(30.0).reshape(10, 3)
  x = Tensor(a).realize()
  var = Variable("pos", 1, 8)
  for n in (2, 4, 7):
    pos = var.bind(n)
    assert x[:pos].shape == (pos, 3)
    np.testing.assert_array_equal(x[:pos].numpy(), a[:n])
    np.testing.assert_array_equal(x[pos:pos + 2, 1:].numpy(), a[n:n + 2, 1:])
    np.testing.assert_array_equal(x[:pos][1:].numpy(), a[1:n])
    np.testing.assert_array_equal(x[-9:pos + 2].numpy(), a[1:n + 2])  # a negative int start into a concrete dim
  with pytest.raises(IndexError, match="a slice with a Variable needs step 1"): x[:var.bind(4):2]
  with pytest.raises(IndexError, match="a negative index -1 into the symbolic dim"): x[:var.bind(4)][:-1]

def test_tinyjit_reads_a_cache_up_to_a_bound_position():
  cache = Tensor(np.arange(40.0).reshape(8, 5)).realize()
  f = TinyJit(lambda q, pos: (q @ cache[:pos].T).realize())
  var = Variable("pos", 1, 8)
  for n in (2, 3, 5, 8):
    q = Tensor(np.ones((1, 5))).realize()
    np.testing.assert_allclose(f(q, var.bind(n)).numpy(), np.ones((1, 5)) @ np.arange(40.0).reshape(8, 5)[:n].T)
  assert len(f.captured) == 1

def test_setitem_at_a_bound_position_in_a_jitted_cache():
  # a KV cache written at pos and read up to it, one recording for every pos
  cache = Tensor.zeros(6, 2).contiguous().realize()
  @TinyJit
  def write(val, pos):
    cache[pos:pos + 1] = val
    return cache[:pos + 1].sum(0).realize()
  var, ref = Variable("pos", 0, 5), np.zeros((6, 2))
  for n in range(6):
    row = np.array([[n + 1.0, 1.0]])
    ref[n] = row
    np.testing.assert_array_equal(write(Tensor(row).realize(), var.bind(n)).numpy(), ref[:n + 1].sum(0))
  np.testing.assert_array_equal(cache.numpy(), ref)
  assert len(write.captured) == 1

def test_shrink_must_fit_every_value_of_its_variables():
  # a jitted replay binds new values without building the graph again: cache[:pos] with pos up to 64 on 4 rows read past
  # the buffer on replay (silently wrong values), so the range is checked against the Variable's declared range
  cache = Tensor(np.arange(12.0).reshape(4, 3)).realize()
  with pytest.raises(ValueError, match=r"not for every value of its Variables' ranges"):
    cache[:Variable("pos", 1, 64).bind(2)]
  with pytest.raises(ValueError, match=r"not for every value of its Variables' ranges"):
    cache[Variable("p", 0, 4).bind(1):Variable("p", 0, 4).bind(1) + 1]  # p + 1 reaches 5
  np.testing.assert_array_equal(cache[:Variable("pos", 1, 4).bind(3)].numpy(), np.arange(9.0).reshape(3, 3))
