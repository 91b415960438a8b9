"""Symbolic simplification of index arithmetic and constant folding (codegen.symbolic)."""
import math
from hypothesis import given, settings, strategies as st
from tinygrad.uop import UOp, Ops, RangeArg
from tinygrad.dtype import dtypes
from tinygrad.rewrite import graph_rewrite
from codegen.symbolic import pm_symbolic

def rng(i, n): return UOp(Ops.RANGE, dtypes.index, (), RangeArg(i, n, "global"))
def simp(u): return graph_rewrite(u, pm_symbolic)
def c(v): return UOp.const(dtypes.index, v)

def test_fold_constants():
  assert simp(c(3) * c(4) + c(5)) is c(17)

def test_fold_add_zero_and_mul_one():
  r = rng(0, 8)
  assert simp(r + 0) is r and simp(r * 1) is r

def test_divmod_of_flattened_index_recovers_axes():
  i, j = rng(0, 7), rng(1, 1024)
  flat = i * 1024 + j
  assert simp(flat // 1024) is i
  assert simp(flat % 1024) is j

def test_divmod_lane_split_keeps_vector_lanes_inside_a_row():
  # (r*16 + lane) // 1024 == r // 64 when 16 | 1024 and lane < 16
  r = rng(0, 4096)
  lane = UOp(Ops.LANE, dtypes.index.vec(16), (), 16)
  assert simp((r * 16 + lane) // 1024) is simp(r // 64)

def test_fold_bounds_pins_size_one_loops():
  assert simp(rng(0, 1) * 5) is c(0)
  assert simp(rng(0, 10) < 10) is UOp.const(dtypes.bool, True)

def test_fold_cast():
  assert simp(UOp(Ops.CAST, dtypes.float32, (UOp.const(dtypes.int32, 3),))) is UOp.const(dtypes.float32, 3.0)

@settings(max_examples=200, deadline=None)
@given(a=st.integers(1, 40), b=st.integers(1, 40), d=st.integers(1, 50), k=st.integers(0, 30), m=st.integers(1, 5))
def test_divmod_simplification_is_exact(a, b, d, k, m):
  """Whatever the simplifier does, the expression still evaluates to the same numbers for every loop value."""
  i, j = rng(0, a), rng(1, b)
  e = i * (m * d) + j * m + k
  for expr, f in ((e // d, lambda v: v // d), (e % d, lambda v: v % d)):
    s = simp(expr)
    for iv in range(a):
      for jv in range(b):
        assert evaluate(s, {i: iv, j: jv}) == f(iv * m * d + jv * m + k)

def test_divmod_reduce_coefficients():
  # a sliding window over a padded row of 58: (kw*59 + ow) % 58 is kw + ow when kw + ow < 58 (conv2d's _windows)
  kw, ow = rng(0, 3), rng(1, 56)
  assert simp((kw * 59 + ow) % 58) is simp(kw + ow)
  assert simp((kw * 59 + ow) // 58) is kw

@settings(max_examples=200, deadline=None)
@given(a=st.integers(1, 12), b=st.integers(1, 12), ca=st.integers(-60, 60), cb=st.integers(-60, 60), d=st.integers(1, 30), k=st.integers(0, 700))
def test_divmod_with_any_coefficients_is_exact(a, b, ca, cb, d, k):
  """Coefficients larger than the divisor or negative (the expression kept non-negative by the constant)."""
  i, j = rng(0, a), rng(1, b)
  e = i * ca + j * cb + k
  lo = min(0, ca * (a - 1)) + min(0, cb * (b - 1)) + k
  if lo < 0: return  # the kernels only divide non-negative indices
  for expr, f in ((e // d, lambda v: v // d), (e % d, lambda v: v % d)):
    s = simp(expr)
    for iv in range(a):
      for jv in range(b):
        assert evaluate(s, {i: iv, j: jv}) == f(iv * ca + jv * cb + k)

def test_flatten_of_unflattened_index_is_affine():
  # a (128, 32, 6, 6) activation read through its flattened (128, 1152) view: the buffer's flat index is b*1152 + r
  b, r = rng(0, 128), rng(1, 1152)
  e = b * 1152 + ((r // 36) % 32) * 36 + ((r // 6) % 6) * 6 + r % 6
  assert simp(e) is simp(b * 1152 + r)
  j = rng(2, 50)
  assert simp((j // 7) * 14 + (j % 7) * 2 + 3) is simp(j * 2 + 3), "a common factor k"
  assert simp((j // 7) * 7 + j % 5) is not simp(j), "unrelated divisors stay"

@settings(max_examples=200, deadline=None)
@given(dims=st.lists(st.integers(1, 7), min_size=1, max_size=4), outer=st.integers(1, 5), k=st.integers(1, 3), data=st.data())
def test_unflatten_then_flatten_is_exact(dims, outer, k, data):
  """An index unflattened into (outer, *dims) and flattened again, its terms added in any order and times k: no division
  is left, and it is k times the index for every value."""
  from codegen.lower import unflat_index, strides_for
  size = math.prod(dims)
  o, x = rng(0, outer), rng(1, size)
  shape = (outer, *dims)
  parts = [p * s_ for p, s_ in zip(unflat_index(o * size + x, shape), strides_for(shape))]
  e = None
  for p in data.draw(st.permutations(parts), label="order"): e = p * k if e is None else e + p * k
  s = simp(e)
  assert not any(u.op in (Ops.IDIV, Ops.MOD) for u in s.toposort())
  for ov in range(outer):
    for xv in range(size): assert evaluate(s, {o: ov, x: xv}) == (ov * size + xv) * k

def evaluate(u, env):
  if u in env: return env[u]
  if u.op is Ops.CONST: return u.arg
  s = [evaluate(x, env) for x in u.src]
  if u.op is Ops.ADD: return s[0] + s[1]
  if u.op is Ops.MUL: return s[0] * s[1]
  if u.op is Ops.IDIV: return s[0] // s[1]
  if u.op is Ops.MOD: return s[0] % s[1]
  raise NotImplementedError(u.op)
