"""Symbolic simplification of index arithmetic and constant folding (codegen.symbolic)."""
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

def evaluate(u, env):
  if u in env: return env[u]
  if u.op is Ops.CONST: return u.arg
  s = [evaluate(x, env) for x in u.src]
  if u.op is Ops.ADD: return s[0] + s[1]
  if u.op is Ops.MUL: return s[0] * s[1]
  if u.op is Ops.IDIV: return s[0] // s[1]
  if u.op is Ops.MOD: return s[0] % s[1]
  raise NotImplementedError(u.op)
