"""Autograd: backward() of every differentiable op against central differences in float64, hand-derived gradients,
and the semantics of .grad, backward(), gradient(), detach() and requires_grad.

Numeric checks (tests/gradcheck.py) differentiate L = sum(op(x) * w) for a fixed pseudo-random cotangent w. Inputs
are float64 and kept away from kinks (0 for relu/abs, ties for max/min, the clip bounds) by at least 1e-2, far more
than the 1e-6 finite-difference step, so the numeric derivative is the one-sided derivative on both sides.
"""
import math
import numpy as np
import pytest
from hypothesis import given, assume, strategies as st
from hypothesis.extra import numpy as hnp
from strategies import examples, shapes, broadcastable_shapes, axes_for, normalize_axes, TOLERANCES
from gradcheck import assert_grad_matches
from tinygrad import Tensor, dtypes

F64 = dtypes.float64

# ---------------------------------------------------------------- strategies

def f64(lo: float, hi: float, away: tuple[float, ...] = (), margin: float = 1e-2) -> st.SearchStrategy[float]:
  """float64 values in [lo, hi], at least `margin` from every point in `away`."""
  s = st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
  return s.filter(lambda v: all(abs(v - p) >= margin for p in away)) if away else s

def arr(shape, lo=-3.0, hi=3.0, away=(), margin=1e-2) -> st.SearchStrategy[np.ndarray]:
  return hnp.arrays(np.float64, shape, elements=f64(lo, hi, away, margin))

def distinct(shape, lo=-3.0, hi=3.0, gap=0.05) -> st.SearchStrategy[np.ndarray]:
  """float64 arrays whose elements are pairwise at least `gap` apart (no ties for max/min/argmax-like grads)."""
  n = int(np.prod(shape)) if shape else 1
  span = hi - lo
  assert n * gap <= span, "test bug: range too small for that many distinct values"
  return st.permutations(range(n)).flatmap(lambda perm: hnp.arrays(np.float64, (n,), elements=st.floats(0, 0.5)).map(
    lambda jit: (lo + (np.asarray(perm, dtype=np.float64) + jit) * (span / n)).reshape(shape)))

small_shapes = shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)

# ---------------------------------------------------------------- unary ops

# name -> (fn, lo, hi, kinks to stay away from)
UNARY = {
  "neg": (lambda x: -x, -3, 3, ()),
  "neg_method": (lambda x: x.neg(), -3, 3, ()),
  "exp": (lambda x: x.exp(), -3, 3, ()),
  "exp2": (lambda x: x.exp2(), -3, 3, ()),
  "log": (lambda x: x.log(), 0.1, 5, ()),
  "log2": (lambda x: x.log2(), 0.1, 5, ()),
  "sqrt": (lambda x: x.sqrt(), 0.1, 5, ()),
  "rsqrt": (lambda x: x.rsqrt(), 0.1, 5, ()),
  "sin": (lambda x: x.sin(), -4, 4, ()),
  "cos": (lambda x: x.cos(), -4, 4, ()),
  "tan": (lambda x: x.tan(), -1.3, 1.3, ()),
  "reciprocal": (lambda x: x.reciprocal(), -4, 4, (0.0,)),
  "square": (lambda x: x.square(), -3, 3, ()),
  "pow_int_exponent": (lambda x: x ** 3, -2, 2, (0.0, 1.0)),
  "pow_frac_exponent": (lambda x: x ** 2.5, 0.1, 3, (1.0,)),
  "pow_neg_exponent": (lambda x: x ** -1.5, 0.2, 3, (1.0,)),
  "rpow": (lambda x: 2.0 ** x, -3, 3, ()),
  "rsub": (lambda x: 2.0 - x, -3, 3, ()),
  "rdiv": (lambda x: 3.0 / x, -4, 4, (0.0,)),
  "relu": (lambda x: x.relu(), -3, 3, (0.0,)),
  "sigmoid": (lambda x: x.sigmoid(), -6, 6, ()),
  "tanh": (lambda x: x.tanh(), -3, 3, ()),
  "gelu": (lambda x: x.gelu(), -4, 4, ()),
  "silu": (lambda x: x.silu(), -4, 4, ()),
  "leaky_relu": (lambda x: x.leaky_relu(0.1), -3, 3, (0.0,)),
  "elu": (lambda x: x.elu(), -3, 3, (0.0,)),
  "softplus": (lambda x: x.softplus(), -4, 4, ()),
  "abs": (lambda x: x.abs(), -3, 3, (0.0,)),
  "clip": (lambda x: x.clip(-1.0, 1.5), -3, 3, (-1.0, 1.5)),
  "logsigmoid": (lambda x: x.logsigmoid(), -4, 4, ()),
}

@pytest.mark.parametrize("op", sorted(UNARY))
@examples(6)
@given(data=st.data())
def test_unary_grad_matches_numeric(op, data):
  fn, lo, hi, away = UNARY[op]
  x = data.draw(small_shapes.flatmap(lambda s: arr(s, lo, hi, away)))
  assert_grad_matches(fn, x)

# ---------------------------------------------------------------- binary ops with broadcasting

def _no_ties(a, b, margin=1e-2) -> bool:
  return bool(np.all(np.abs(np.broadcast_arrays(a, b)[0] - np.broadcast_arrays(a, b)[1]) >= margin))

# name -> (fn, (lo, hi, away) of a, (lo, hi, away) of b, needs no ties)
BINARY = {
  "add": (lambda a, b: a + b, (-3, 3, ()), (-3, 3, ()), False),
  "sub": (lambda a, b: a - b, (-3, 3, ()), (-3, 3, ()), False),
  "mul": (lambda a, b: a * b, (-3, 3, ()), (-3, 3, ()), False),
  "div": (lambda a, b: a / b, (-3, 3, ()), (-3, 3, (0.0,)), False),
  "maximum": (lambda a, b: a.maximum(b), (-3, 3, ()), (-3, 3, ()), True),
  "minimum": (lambda a, b: a.minimum(b), (-3, 3, ()), (-3, 3, ()), True),
  "pow": (lambda a, b: a ** b, (0.2, 3, (1.0,)), (-2, 2, ()), False),
}

@pytest.mark.parametrize("op", sorted(BINARY))
@examples(6)
@given(data=st.data())
def test_binary_broadcast_grad_matches_numeric(op, data):
  fn, ra, rb, ties = BINARY[op]
  sa, sb = data.draw(broadcastable_shapes(2, max_dims=3, min_side=1, max_side=3))
  a, b = data.draw(arr(sa, *ra)), data.draw(arr(sb, *rb))
  if ties: assume(_no_ties(a, b))
  assert_grad_matches(fn, a, b)

@examples(6)
@given(data=st.data())
def test_where_grad_matches_numeric(data):
  sc, sx, sy = data.draw(broadcastable_shapes(3, max_dims=3, min_side=1, max_side=3))
  cond = data.draw(hnp.arrays(np.bool_, sc))
  x, y = data.draw(arr(sx)), data.draw(arr(sy))
  assert_grad_matches(lambda c, a, b: c.where(a, b), cond, x, y)

# ---------------------------------------------------------------- reductions over axes

REDUCE = {
  "sum": lambda x, ax, kd: x.sum(ax, keepdim=kd),
  "mean": lambda x, ax, kd: x.mean(ax, keepdim=kd),
  "max": lambda x, ax, kd: x.max(ax, keepdim=kd),
  "min": lambda x, ax, kd: x.min(ax, keepdim=kd),
  "prod": lambda x, ax, kd: x.prod(ax, keepdim=kd),
  "var": lambda x, ax, kd: x.var(ax, keepdim=kd),
  "std": lambda x, ax, kd: x.std(ax, keepdim=kd),
  "var_correction0": lambda x, ax, kd: x.var(ax, keepdim=kd, correction=0),
  "logsumexp": lambda x, ax, kd: x.logsumexp(ax, keepdim=kd),
}

@pytest.mark.parametrize("op", sorted(REDUCE))
@examples(8)
@given(data=st.data())
def test_reduce_grad_matches_numeric(op, data):
  shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
  axis = data.draw(axes_for(len(shape)))
  keepdim = data.draw(st.booleans())
  n_reduced = int(np.prod([shape[a] for a in normalize_axes(axis, len(shape))]))
  if op in ("var", "std"): assume(n_reduced >= 2)  # correction=1 divides by n-1
  if op in ("max", "min", "std", "var", "var_correction0"): x = data.draw(distinct(shape))  # no ties, std > 0
  elif op == "prod": x = data.draw(arr(shape, -2, 2, away=(0.0,), margin=0.3))
  else: x = data.draw(arr(shape))
  assert_grad_matches(lambda t: REDUCE[op](t, axis, keepdim), x)

@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@examples(8)
@given(data=st.data())
def test_softmax_grad_matches_numeric(op, data):
  shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
  axis = data.draw(st.integers(-len(shape), len(shape) - 1))
  x = data.draw(arr(shape, -4, 4))
  assert_grad_matches(lambda t: getattr(t, op)(axis), x)

# ---------------------------------------------------------------- matmul

MATMUL_SHAPES = [
  ((4,), (4,)),             # 1-D @ 1-D: a scalar
  ((4,), (4, 3)),           # 1-D @ 2-D: a vector
  ((2, 4), (4,)),           # 2-D @ 1-D: a vector
  ((2, 4), (4, 3)),
  ((2, 2, 4), (4, 3)),      # batched @ 2-D
  ((4,), (2, 4, 3)),        # 1-D @ batched
  ((2, 1, 2, 4), (3, 4, 2)),  # broadcast batch dims
]

@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
@examples(3)
@given(data=st.data())
def test_matmul_grad_matches_numeric(sa, sb, data):
  assert_grad_matches(lambda a, b: a @ b, data.draw(arr(sa)), data.draw(arr(sb)))

def test_dot_grad_matches_numeric():
  rng = np.random.default_rng(0)
  assert_grad_matches(lambda a, b: a.dot(b), rng.standard_normal((3, 4)), rng.standard_normal((4, 2)))

# ---------------------------------------------------------------- movement ops

# name -> (fn, input shapes)
MOVEMENT = {
  "reshape": (lambda x: x.reshape(3, 2, 2), [(2, 6)]),
  "reshape_minus1": (lambda x: x.reshape(-1, 4), [(2, 3, 2)]),
  "permute": (lambda x: x.permute(2, 0, 1), [(2, 3, 4)]),
  "expand": (lambda x: x.expand(2, 3, 4), [(3, 1)]),
  "pad": (lambda x: x.pad(((1, 2), (0, 1))), [(2, 3)]),
  "pad_value": (lambda x: x.pad(((1, 0), (2, 1)), value=1.5), [(2, 3)]),
  "pad_negative_crops": (lambda x: x.pad(((-1, 1), (0, -1))), [(3, 3)]),
  "shrink": (lambda x: x.shrink(((1, 3), (0, 2))), [(4, 3)]),
  "flip": (lambda x: x.flip(0), [(3, 4)]),
  "flip_both": (lambda x: x.flip((0, 1)), [(3, 4)]),
  "getitem_int": (lambda x: x[1], [(3, 4)]),
  "getitem_negative_int": (lambda x: x[-1, 2], [(3, 4)]),
  "getitem_slice": (lambda x: x[:, 1:3], [(3, 4)]),
  "getitem_step": (lambda x: x[::2, 1::2], [(5, 4)]),
  "getitem_negative_step": (lambda x: x[::-1, ::-2], [(3, 5)]),
  "getitem_none_ellipsis": (lambda x: x[..., None, 1:], [(2, 3)]),
  "cat": (lambda a, b: a.cat(b, dim=1), [(2, 3), (2, 2)]),
  "cat_three": (lambda a, b, c: a.cat(b, c, dim=0), [(1, 3), (2, 3), (1, 3)]),
  "stack": (lambda a, b: Tensor.stack(a, b, dim=1), [(2, 3), (2, 3)]),
  "squeeze": (lambda x: x.squeeze(1), [(3, 1, 2)]),
  "squeeze_all": (lambda x: x.squeeze(), [(1, 3, 1)]),
  "unsqueeze": (lambda x: x.unsqueeze(-1), [(3, 2)]),
  "transpose": (lambda x: x.transpose(0, 2), [(2, 3, 4)]),
  "T": (lambda x: x.T, [(2, 3)]),
  "flatten": (lambda x: x.flatten(1), [(2, 3, 2)]),
  "repeat": (lambda x: x.repeat(2, 3), [(2, 2)]),
  "split_second": (lambda x: x.split([1, 2], dim=1)[1], [(2, 3)]),
  "chunk_first": (lambda x: x.chunk(2, dim=0)[0] * 2, [(4, 2)]),
  "same_input_twice": (lambda x: x * x.flip(0) + x.T.T, [(3, 2)]),
}

@pytest.mark.parametrize("op", sorted(MOVEMENT))
@examples(2)
@given(data=st.data())
def test_movement_grad_matches_numeric(op, data):
  fn, in_shapes = MOVEMENT[op]
  assert_grad_matches(fn, *[data.draw(arr(s)) for s in in_shapes])

# ---------------------------------------------------------------- gather via Tensor indexing

@examples(4)
@given(data=st.data())
def test_tensor_index_grad_matches_numeric(data):
  x = data.draw(arr((4, 3)))
  idx = data.draw(hnp.arrays(np.int32, data.draw(st.integers(1, 6)), elements=st.integers(-4, 3)))
  assert_grad_matches(lambda t: t[Tensor(idx)], x)

@examples(10)
@given(data=st.data())
def test_large_table_index_grad_is_the_scatter_of_the_upstream_gradient(data):
  # 32+ rows: the weight gradient is a scatter (codegen/opt.py scatter_onehot_reduce); ids repeat, negatives wrap
  V, D = data.draw(st.integers(32, 70), label="rows"), data.draw(st.integers(1, 20), label="width")
  ids = data.draw(hnp.arrays(np.int32, (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 9))), elements=st.integers(-V, V - 1)))
  g = data.draw(arr(ids.shape + (D,)))
  x = Tensor(np.zeros((V, D), np.float32), requires_grad=True)
  (x[Tensor(ids)] * Tensor(g.astype(np.float32))).sum().backward()
  expected = np.zeros((V, D))
  np.add.at(expected, ids % V, g.astype(np.float32).astype(np.float64))
  np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-5, atol=1e-5)

def test_tensor_index_repeated_rows_accumulate():
  x = Tensor(np.zeros((3, 2)), requires_grad=True)
  x[Tensor([0, 2, 0, 0])].sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [[3, 3], [0, 0], [1, 1]])

# ---------------------------------------------------------------- conv, pools

# (x shape, w shape, kwargs)
CONV = {
  "plain": ((2, 2, 5, 5), (3, 2, 3, 3), {}),
  "stride2_pad1": ((1, 2, 6, 5), (2, 2, 3, 3), {"stride": 2, "padding": 1}),
  "dilation2": ((1, 1, 7, 6), (2, 1, 3, 2), {"dilation": 2}),
  "groups2": ((1, 4, 5, 5), (4, 2, 3, 3), {"groups": 2}),
  "depthwise": ((1, 3, 4, 4), (3, 1, 2, 2), {"groups": 3, "padding": 1}),
  "asymmetric": ((1, 2, 5, 6), (2, 2, 2, 3), {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)}),
  "conv1d": ((2, 2, 7), (3, 2, 3), {"stride": 2, "padding": 1}),
}

@pytest.mark.parametrize("cfg", sorted(CONV))
@examples(2)
@given(data=st.data())
def test_conv2d_grad_matches_numeric(cfg, data):
  xs, ws, kw = CONV[cfg]
  x, w, b = data.draw(arr(xs, -2, 2)), data.draw(arr(ws, -1, 1)), data.draw(arr((ws[0],), -1, 1))
  assert_grad_matches(lambda x, w, b: x.conv2d(w, b, **kw), x, w, b)

TCONV = {  # ConvTranspose2d without dilation is the windows adjoint of the products (tensor.py); with dilation a convolution
  "s2_p1_op1": ((1, 2, 3, 3), (2, 3, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
  "s3_k2x4_groups": ((1, 4, 2, 3), (4, 1, 2, 4), {"stride": 3, "groups": 2}),
  "s1_p1": ((2, 1, 3, 2), (1, 2, 3, 3), {"padding": 1}),
  "s2_dilation2": ((1, 2, 3, 3), (2, 2, 2, 2), {"stride": 2, "dilation": 2, "output_padding": 1}),
}

@pytest.mark.parametrize("cfg", sorted(TCONV))
def test_conv_transpose2d_grad_matches_numeric(cfg):
  xs, ws, kw = TCONV[cfg]
  rng = np.random.default_rng(1)
  assert_grad_matches(lambda x, w: x.conv_transpose2d(w, **kw), rng.uniform(-2, 2, xs), rng.uniform(-1, 1, ws))

POOL = {
  "max_k2": (lambda x: x.max_pool2d(2), (1, 2, 4, 4)),
  "max_k3_s2_pad1": (lambda x: x.max_pool2d(3, stride=2, padding=1), (1, 1, 5, 5)),
  "max_k2_s1_dil2": (lambda x: x.max_pool2d(2, stride=1, dilation=2), (1, 1, 5, 4)),
  "avg_k2": (lambda x: x.avg_pool2d(2), (1, 2, 4, 4)),
  "avg_k3_s1_pad1_exclude_pad": (lambda x: x.avg_pool2d(3, stride=1, padding=1, count_include_pad=False), (1, 1, 4, 4)),
  "avg_k3_s2_pad1_include_pad": (lambda x: x.avg_pool2d(3, stride=2, padding=1), (1, 1, 5, 5)),
  # windows that do not overlap (stride >= kernel) take the movement-only adjoint (gradient._disjoint_windows_grad):
  # sizes that leave a tail outside every window, gaps between windows, padding, unequal kernel and stride per axis
  "max_k2_odd_size": (lambda x: x.max_pool2d(2), (1, 2, 5, 7)),
  "max_k2_s3_gaps": (lambda x: x.max_pool2d(2, stride=3), (1, 1, 7, 8)),
  "max_k2x3_s3x4": (lambda x: x.max_pool2d((2, 3), stride=(3, 4)), (1, 1, 7, 9)),
  "avg_k3_s3_pad1": (lambda x: x.avg_pool2d(3, stride=3, padding=1), (1, 1, 7, 5)),
}

@pytest.mark.parametrize("cfg", sorted(POOL))
@examples(3)
@given(data=st.data())
def test_pool_grad_matches_numeric(cfg, data):
  fn, shape = POOL[cfg]
  assert_grad_matches(fn, data.draw(distinct(shape)))  # distinct values: no tied window maxima

# ---------------------------------------------------------------- normalisation, losses, attention

@pytest.mark.parametrize("axis", [-1, (1, 2)])
@examples(3)
@given(data=st.data())
def test_layernorm_grad_matches_numeric(axis, data):
  assert_grad_matches(lambda x: x.layernorm(axis), data.draw(arr((2, 3, 4))))

def _labels(data, n, c): return data.draw(hnp.arrays(np.int32, n, elements=st.integers(0, c - 1)))

@examples(4)
@given(data=st.data())
def test_cross_entropy_int_labels_grad_matches_numeric(data):
  assert_grad_matches(lambda x, y: x.cross_entropy(y), data.draw(arr((3, 5))), _labels(data, 3, 5))

@examples(3)
@given(data=st.data())
def test_cross_entropy_class_dim1_grad_matches_numeric(data):
  y = data.draw(hnp.arrays(np.int32, (2, 3), elements=st.integers(0, 3)))
  assert_grad_matches(lambda x, y: x.cross_entropy(y, reduction="sum"), data.draw(arr((2, 4, 3))), y)

@examples(4)
@given(data=st.data())
def test_cross_entropy_probabilities_grad_matches_numeric(data):
  p = data.draw(arr((3, 4), 0.05, 1.0))
  p = p / p.sum(-1, keepdims=True)
  assert_grad_matches(lambda x, y: x.cross_entropy(y, label_smoothing=0.1), data.draw(arr((3, 4))), Tensor(p))

@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.2}, {"ignore_index": 1}, {"reduction": "none"}],
                         ids=["mean", "label_smoothing", "ignore_index", "none"])
@examples(3)
@given(data=st.data())
def test_sparse_categorical_crossentropy_grad_matches_numeric(kw, data):
  assert_grad_matches(lambda x, y: x.sparse_categorical_crossentropy(y, **kw), data.draw(arr((4, 3))), _labels(data, 4, 3))

@examples(4)
@given(data=st.data())
def test_binary_crossentropy_grad_matches_numeric(data):
  p, y = data.draw(arr((2, 3), 0.05, 0.95)), data.draw(arr((2, 3), 0.0, 1.0))
  assert_grad_matches(lambda p, y: p.binary_crossentropy(y), p, Tensor(y))

@pytest.mark.parametrize("pos_weight", [None, 2.0])
@examples(4)
@given(data=st.data())
def test_binary_crossentropy_logits_grad_matches_numeric(pos_weight, data):
  x, y = data.draw(arr((2, 3), -4, 4)), data.draw(arr((2, 3), 0.0, 1.0))
  pw = None if pos_weight is None else Tensor(np.full((3,), pos_weight))
  assert_grad_matches(lambda x, y: x.binary_crossentropy_logits(y, pos_weight=pw), x, Tensor(y))

SDPA = {
  "plain": {},
  "causal": {"is_causal": True},
  "bool_mask": {"attn_mask": np.array([[True, False, True, True], [True, True, False, True], [False, True, True, True]])},
  "float_mask": {"attn_mask": np.linspace(-1, 1, 12).reshape(3, 4)},
}

@pytest.mark.parametrize("cfg", sorted(SDPA))
@examples(2)
@given(data=st.data())
def test_scaled_dot_product_attention_grad_matches_numeric(cfg, data):
  kw = {k: Tensor(v) for k, v in SDPA[cfg].items()} if SDPA[cfg] else {}
  L, S = (3, 3) if cfg == "causal" else (3, 4)
  q, k, v = data.draw(arr((2, L, 4), -2, 2)), data.draw(arr((2, S, 4), -2, 2)), data.draw(arr((2, S, 3), -2, 2))
  assert_grad_matches(lambda q, k, v: q.scaled_dot_product_attention(k, v, **kw), q, k, v)

def test_grouped_query_attention_grad_matches_numeric():
  rng = np.random.default_rng(0)
  q, k, v = rng.uniform(-2, 2, (1, 4, 3, 4)), rng.uniform(-2, 2, (1, 2, 3, 4)), rng.uniform(-2, 2, (1, 2, 3, 2))
  assert_grad_matches(lambda q, k, v: q.scaled_dot_product_attention(k, v, is_causal=True, enable_gqa=True), q, k, v)

# ---------------------------------------------------------------- casts

def test_grad_through_cast_to_float32_comes_back_float64():
  w = np.array([0.5, -1.25, 3.0])
  x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
  (x.cast(dtypes.float32) * Tensor(w.astype(np.float32))).sum().backward()
  assert x.grad.dtype == F64
  np.testing.assert_array_equal(x.grad.numpy(), w)

def test_grad_through_cast_to_float64_comes_back_float32():
  w = np.array([0.5, -1.25, 3.0])
  x = Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
  (x.cast(F64) * Tensor(w)).sum().backward()
  assert x.grad.dtype == dtypes.float32
  np.testing.assert_array_equal(x.grad.numpy(), w.astype(np.float32))

@examples(4)
@given(data=st.data())
def test_grad_through_float32_segment_matches_analytic(data):
  # float64 -> float32 exp -> float64: the gradient w * exp(x) is computed in float32 and cast back
  x = data.draw(arr((2, 3)))
  t = Tensor(x, requires_grad=True)
  w = np.arange(1.0, 7.0).reshape(2, 3)
  (t.cast(dtypes.float32).exp().cast(F64) * Tensor(w)).sum().backward()
  rtol, atol = TOLERANCES["transcendental"]["float32"]
  np.testing.assert_allclose(t.grad.numpy(), w * np.exp(x), rtol=rtol, atol=atol)

@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_low_precision_grad_matches_float64_reference(dtype):
  x = np.array([-1.5, 0.25, 1.0, 2.0])
  w = np.array([1.0, -2.0, 0.5, 3.0])
  t = Tensor(x, dtype=getattr(dtypes, dtype), requires_grad=True)
  (t.exp() * Tensor(w, dtype=getattr(dtypes, dtype))).sum().backward()
  assert t.grad.dtype == getattr(dtypes, dtype)
  rtol, atol = TOLERANCES["transcendental"][dtype]
  # two roundings into dtype: exp(x), then the product with the upstream gradient
  np.testing.assert_allclose(t.grad.numpy().astype(np.float64), w * np.exp(x), rtol=2 * rtol, atol=atol)

def test_cast_to_int_blocks_gradient():
  x = Tensor([1.5, 2.5], requires_grad=True)
  (x.cast(dtypes.int32).cast(dtypes.float32) * x).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])  # only the direct path: int(x)

# ---------------------------------------------------------------- hand-derived values

def test_broadcast_column_add_grad_is_row_length():
  a = Tensor(np.ones((3, 1)), requires_grad=True)
  (a + Tensor(np.ones((3, 4)))).sum().backward()
  np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 1), 4.0))

def test_broadcast_row_mul_grad_sums_columns():
  a = Tensor([[1.0, 2.0, 3.0]], requires_grad=True)
  b = np.arange(6.0).reshape(2, 3)
  (a * Tensor(b)).sum().backward()
  np.testing.assert_array_equal(a.grad.numpy(), [[3.0, 5.0, 7.0]])

def test_scalar_tensor_broadcast_grad_is_numel():
  s = Tensor(2.0, requires_grad=True)
  (s * Tensor.ones(2, 5)).sum().backward()
  assert s.grad.shape == () and s.grad.item() == 10.0

def test_sum_axis_grad_is_ones():
  x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
  (x.sum(1) * Tensor([1.0, 10.0])).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [[1, 1, 1], [10, 10, 10]])

def test_mean_axis_grad_is_one_over_n():
  x = Tensor(np.arange(8.0).reshape(2, 4), requires_grad=True)
  x.mean(0).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 4), 0.5))

def test_mean_all_grad_is_one_over_numel():
  x = Tensor(np.arange(8.0).reshape(2, 4), requires_grad=True)
  x.mean().backward()
  np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 4), 1 / 8))

def test_max_axis_grad_goes_to_argmax():
  x = Tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
  x.max(1).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])

def test_max_tie_grad_is_split_equally():
  x = Tensor([3.0, 1.0, 3.0], requires_grad=True)
  x.max().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [0.5, 0.0, 0.5])

def test_min_axis_grad_goes_to_argmin():
  x = Tensor([[4.0, 5.0], [7.0, -1.0], [6.0, 9.0]], requires_grad=True)
  x.min(0).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [[1, 0], [0, 1], [0, 0]])

def test_prod_grad_is_product_of_others():
  x = Tensor([2.0, 3.0, 4.0], requires_grad=True)
  x.prod().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [12.0, 8.0, 6.0])

def test_relu_grad_is_step():
  x = Tensor([-2.0, -0.5, 0.5, 3.0], requires_grad=True)
  x.relu().sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 1, 1])

def test_matmul_grad_is_transposed_operand():
  a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
  ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
  (ta @ tb).sum().backward()
  np.testing.assert_array_equal(ta.grad.numpy(), np.ones((2, 4)) @ b.T)
  np.testing.assert_array_equal(tb.grad.numpy(), a.T @ np.ones((2, 4)))

def test_pow_grad_at_base_one():
  # d/dx x**p = p * x**(p-1): at x = 1 that is p, whatever the exponent
  x = Tensor([1.0, 1.0, 1.0], dtype=F64, requires_grad=True)
  (x ** 3).sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0, 3.0], rtol=1e-12)

def test_pow_tensor_exponent_grad_at_base_one():
  # d/dx x**y at x = 1 is y; d/dy is log(1) = 0
  x, y = Tensor([1.0, 1.0], dtype=F64, requires_grad=True), Tensor([2.5, -1.5], dtype=F64, requires_grad=True)
  (x ** y).sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), [2.5, -1.5], rtol=1e-12)

def test_pow_grad_wrt_exponent_at_zero():
  # d/dy b**y = b**y * log(b): at y = 0 that is log(b)
  y = Tensor([0.0, 0.0], dtype=F64, requires_grad=True)
  (Tensor([2.0, 3.0], dtype=F64) ** y).sum().backward()
  np.testing.assert_allclose(y.grad.numpy(), [math.log(2), math.log(3)], rtol=1e-12)

def test_pow_grad_at_zero_base_positive_integer_exponent():
  # x**3 is smooth at 0 with derivative 0 (torch gives 0, not nan)
  x = Tensor([0.0, 2.0], dtype=F64, requires_grad=True)
  (x ** 3).sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), [0.0, 12.0], rtol=1e-12)

def test_pow_grad_negative_base_integer_exponent():
  x = Tensor([-2.0, -0.5], dtype=F64, requires_grad=True)
  (x ** 3).sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), [12.0, 0.75], rtol=1e-12)

def test_sqrt_grad_is_half_inverse_sqrt():
  x = Tensor([4.0, 0.25], dtype=F64, requires_grad=True)
  x.sqrt().sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), [0.25, 1.0], rtol=1e-15)

# ---------------------------------------------------------------- semantics of backward, .grad and gradient()

def test_backward_of_sum_times_two_is_two():
  x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
  (x * 2).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])

def test_grad_has_param_shape_and_dtype():
  x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
  (x * 3).sum().backward()
  assert x.grad.shape == (2, 3) and x.grad.dtype == dtypes.float32

def test_grad_accumulates_across_backward_calls():
  x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
  (x * 2).sum().backward()
  (x * x).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [2 + 2, 2 + 4, 2 + 6])

def test_grad_none_resets_accumulation():
  x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
  (x * 2).sum().backward()
  x.grad = None
  (x * 5).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [5, 5, 5])

def test_optimizer_zero_grad_resets_accumulation():
  from tinygrad.nn.optim import SGD
  x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
  opt = SGD([x], lr=0.0)
  (x * 2).sum().backward()
  opt.zero_grad()
  (x * 5).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [5, 5, 5])

def test_accumulated_grad_after_realize_still_accumulates():
  x = Tensor([1.0, 2.0], requires_grad=True)
  (x * 2).sum().backward()
  x.grad.numpy()  # realize the first gradient
  (x * 3).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [5, 5])

def test_detach_gets_no_gradient():
  x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
  (x.detach() * x).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [1, 2, 3])  # only through the non-detached factor

def test_requires_grad_false_gets_no_grad():
  x, c = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0], requires_grad=False)
  (x * c).sum().backward()
  assert c.grad is None

def test_tensor_without_requires_grad_gets_no_grad():
  x, c = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0])
  (x * c).sum().backward()
  assert c.grad is None

def test_backward_on_non_scalar_raises_naming_shape():
  x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
  with pytest.raises(RuntimeError, match=r"\(2, 2\)"):
    (x * 2).backward()

def test_backward_with_explicit_gradient_on_non_scalar():
  x = Tensor([1.0, 2.0], requires_grad=True)
  (x * 3).backward(Tensor([1.0, -2.0]))
  np.testing.assert_array_equal(x.grad.numpy(), [3.0, -6.0])

def test_backward_twice_through_same_graph_raises():
  x = Tensor([1.0, 2.0], requires_grad=True)
  y = (x * x).sum()
  y.backward()
  with pytest.raises(RuntimeError, match="retain_graph"):
    y.backward()

def test_backward_twice_with_retain_graph_accumulates():
  x = Tensor([1.0, 2.0], requires_grad=True)
  y = (x * x).sum()
  y.backward(retain_graph=True)
  y.backward()
  np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])

def test_backward_on_rebuilt_identical_graph_accumulates():
  # building the same expression again makes a new graph (torch semantics), even while the old loss is alive
  x = Tensor([1.0, 2.0], requires_grad=True)
  first = (x * 2).sum()
  first.backward()
  second = (x * 2).sum()
  second.backward()
  np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])

def test_backward_gradient_of_wrong_shape_raises():
  x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
  with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
    x.sum(0).backward(Tensor([1.0, 2.0, 3.0]))

def test_backward_without_grad_tensors_raises():
  with pytest.raises(RuntimeError):
    (Tensor([1.0, 2.0]) * 2).sum().backward()

def test_gradient_returns_grads_without_touching_grad():
  x, y = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 5.0], requires_grad=True)
  gx, gy = (x * y).sum().gradient(x, y)
  np.testing.assert_array_equal(gx.numpy(), [3.0, 5.0])
  np.testing.assert_array_equal(gy.numpy(), [1.0, 2.0])
  assert x.grad is None and y.grad is None

def test_gradient_leaves_existing_grad_unchanged():
  x = Tensor([1.0, 2.0], requires_grad=True)
  (x * 7).sum().backward()
  (x * x).sum().gradient(x)[0].numpy()
  np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0])

def test_gradient_of_target_not_in_graph_raises():
  x, z = Tensor([1.0, 2.0], requires_grad=True), Tensor([1.0, 2.0], requires_grad=True)
  with pytest.raises(RuntimeError):
    (x * 2).sum().gradient(z)

def test_gradient_of_intermediate():
  x = Tensor([1.0, 2.0], requires_grad=True)
  h = x * 3
  (g,) = (h * h).sum().gradient(h)
  np.testing.assert_array_equal(g.numpy(), [6.0, 12.0])

def test_backward_after_numpy_on_intermediate():
  x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
  h = x * x
  np.testing.assert_array_equal(h.numpy(), [1, 4, 9])  # forward value realized first
  (h * 2).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [4, 8, 12])

def test_backward_after_realizing_loss():
  x = Tensor([1.0, 2.0], requires_grad=True)
  loss = (x * x * x).sum()
  assert loss.item() == 9.0
  loss.backward()
  np.testing.assert_array_equal(x.grad.numpy(), [3.0, 12.0])

def test_grad_of_shared_subexpression_sums_paths():
  x = Tensor([2.0], requires_grad=True)
  h = x * x
  (h + h * 3).sum().backward()  # d/dx 4x^2 = 8x
  np.testing.assert_array_equal(x.grad.numpy(), [16.0])

def test_grad_flows_only_to_used_inputs():
  x, unused = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
  (x * 2).sum().backward()
  assert unused.grad is None

def test_non_leaf_intermediate_gets_no_grad_attribute():
  x = Tensor([1.0, 2.0], requires_grad=True)
  h = x * 2
  (h * h).sum().backward()
  assert h.grad is None

def test_requires_grad_set_twice_or_toggled():
  # unfreezing a parameter set requires_grad=True on a tensor already tracked: that compared tensors elementwise and
  # raised "the truth value of a Tensor with 2 elements is ambiguous"
  x = Tensor([1.0, 2.0], requires_grad=True)
  x.requires_grad = False
  x.requires_grad = True
  x.requires_grad_()
  (x * 4).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])

def test_second_backward_through_a_non_scalar_names_retain_graph():
  x = Tensor([1.0, 2.0], requires_grad=True)
  y = x * 2
  y.backward(Tensor([1.0, 1.0]))
  with pytest.raises(RuntimeError, match="retain_graph"):
    y.backward(Tensor([1.0, 1.0]))

def test_requires_grad_set_after_creation():
  x = Tensor([1.0, 2.0])
  x.requires_grad = True
  (x * 4).sum().backward()
  np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])

class _CountingSet(set):
  """The grad nodes, counting how many graph nodes are checked against them."""
  checks = 0
  def __contains__(self, u): _CountingSet.checks += 1; return super().__contains__(u)

def _frozen_backbone_checks(monkeypatch, depth: int) -> int:
  import tinygrad.tensor as tensor_module
  from tinygrad import nn
  real = tensor_module._grad_nodes
  monkeypatch.setattr(tensor_module, "_grad_nodes", lambda: _CountingSet(real()))
  convs = [nn.Conv2d(4, 4, 3, padding=1) for _ in range(depth)]
  for c in convs: c.weight.requires_grad = c.bias.requires_grad = False
  head = nn.Linear(4, 3)
  _CountingSet.checks = 0
  h = Tensor.rand(1, 4, 6, 6)
  for c in convs: h = c(h).relu()
  head(h.mean((2, 3))).sum().backward()
  assert convs[0].weight.grad is None and head.weight.grad is not None
  return _CountingSet.checks

def test_frozen_backbone_walks_linearly(monkeypatch):
  # each frozen conv asks whether a gradient could flow through its input: the graph below is walked once in all, not
  # once per conv (quadratic: 80 frozen convs took 49 ms to build)
  shallow, deep = _frozen_backbone_checks(monkeypatch, 10), _frozen_backbone_checks(monkeypatch, 40)
  assert deep < 5 * shallow, (shallow, deep)

def test_loss_realized_after_the_optimizer_step_is_not_walked():
  # the parameters' new values are newer than the loss: nothing below the loss can be one of them, so realize does not
  # walk the loss's graph looking for a tensor requiring grad (1.3 ms of a ResNet step)
  from tinygrad.tensor import _reaches
  from tinygrad import nn
  layers = [nn.Linear(4, 4) for _ in range(6)]
  opt = nn.optim.SGD([p for l in layers for p in (l.weight, l.bias)], lr=0.1)
  h = Tensor.rand(2, 4)
  for l in layers: h = l(h).relu()
  loss = h.sum().backward()
  new_values = _CountingSet(t.uop for t in opt.schedule_step())
  _CountingSet.checks = 0
  assert not _reaches(loss.uop, new_values)
  assert _CountingSet.checks <= len(new_values) + 1, _CountingSet.checks  # the grad-node set's change, then the root

def test_unfreezing_after_a_frozen_forward_gets_the_gradient():
  w, other = Tensor([1.0, 2.0]), Tensor([1.0], requires_grad=True)  # other: so that graphs are walked at all
  assert other.requires_grad
  h = Tensor([3.0, 4.0]) * w
  h.sum().realize()  # h's graph is found not to reach a tensor requiring grad
  w.requires_grad = True
  loss = (h * 2).sum()
  loss.realize()  # h's graph reaches w now: the graph must be kept for backward
  loss.backward()
  np.testing.assert_array_equal(w.grad.numpy(), [6.0, 8.0])

@pytest.mark.parametrize("stride,kernel", [((1, 1), (3, 3)), ((2, 2), (3, 3)), ((2, 1), (1, 2))])
def test_windows_adjoint_from_the_cache_is_the_same_graph(stride, kernel):
  # gradient.windows_adjoint builds the adjoint once per shape with a stand-in for g and substitutes g: the graph must
  # be the very one built directly (same nodes, so the same kernels and plans)
  from tinygrad.gradient import windows_adjoint, _windows_adjoint
  src_shape = (2, 3, 7, 6)
  outs = tuple((s - k) // st + 1 for s, k, st in zip(src_shape[2:], kernel, stride))
  for seed in range(2):  # the first call fills the cache, the second reads it
    g = Tensor(np.random.default_rng(seed).standard_normal((2, 3) + outs + kernel).astype(np.float32)) * 2
    assert windows_adjoint(g, stride, src_shape).uop is _windows_adjoint(g, stride, src_shape).uop

def test_conv_gradient_through_the_cached_adjoint_matches_numeric():
  # the same conv twice: the second backward reads the cached adjoint
  w = np.random.default_rng(0).standard_normal((4, 3, 3, 3))
  for seed in range(2):
    x = np.random.default_rng(seed + 1).standard_normal((2, 3, 7, 7))
    assert_grad_matches(lambda t, k: t.conv2d(k, stride=2, padding=1).relu(), x, w)

def test_loss_built_before_its_parameter_was_realized_keeps_its_gradient():
  # printing values while debugging: the parameter is realized (w.numpy()) after the loss was built from its lazy
  # graph, then the loss (loss.item()); the loss's graph reaches w through the node w was, so it is kept for backward
  w = Tensor.randn(3, requires_grad=True)
  loss = (w * w).sum()
  w_np = w.numpy()
  assert loss.item() > 0
  loss.backward()
  np.testing.assert_allclose(w.grad.numpy(), 2 * w_np, rtol=1e-6)
