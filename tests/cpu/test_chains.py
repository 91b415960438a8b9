"""Random expression DAGs compared as a whole against numpy.

Hypothesis builds a program of 3-8 ops over 2-3 broadcastable inputs. Each op takes its operands from any value
computed so far (so intermediates get several consumers), and some intermediates are .realize()d midway, which
splits kernels at different places: fusion, CSE and buffer reuse are exercised, not just single ops. The same
program runs in float64 numpy; the tolerance is relative to the largest intermediate magnitude, since error
accumulates through the chain.
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from tinygrad import Tensor
from strategies import arrays, broadcastable_shapes, tensor, to_numpy, is_float, examples

# (name, arity, tensor fn, numpy fn); every op is defined on all finite inputs of bounded magnitude
FLOAT_OPS = [
  ("add", 2, lambda a, b: a + b, lambda a, b: a + b),
  ("sub", 2, lambda a, b: a - b, lambda a, b: a - b),
  ("mul", 2, lambda a, b: a * b, lambda a, b: a * b),
  ("maximum", 2, lambda a, b: a.maximum(b), np.maximum),
  ("minimum", 2, lambda a, b: a.minimum(b), np.minimum),
  # continuous at a == b, so a comparison flipped by rounding cannot change the result by more than rounding
  ("where_gt", 2, lambda a, b: (a > b).where(a - b, (b - a) * 0.5), lambda a, b: np.where(a > b, a - b, (b - a) * 0.5)),
  ("neg", 1, lambda a: -a, lambda a: -a),
  ("relu", 1, lambda a: a.relu(), lambda a: np.maximum(a, 0)),
  ("abs", 1, lambda a: a.abs(), np.abs),
  ("tanh", 1, lambda a: a.tanh(), np.tanh),
  ("sigmoid", 1, lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
  ("sin", 1, lambda a: a.sin(), np.sin),
  ("log1p_abs", 1, lambda a: (a.abs() + 1).log(), lambda a: np.log(np.abs(a) + 1)),
  ("sqrt_abs", 1, lambda a: a.abs().sqrt(), lambda a: np.sqrt(np.abs(a))),
  ("affine", 1, lambda a: a * 0.5 + 1.5, lambda a: a * 0.5 + 1.5),
  ("exp_neg_sq", 1, lambda a: (-(a * a) * 0.1).exp(), lambda a: np.exp(-(a * a) * 0.1)),
  ("sum", "reduce", lambda a, ax: a.sum(axis=ax, keepdim=True), lambda a, ax: a.sum(axis=ax, keepdims=True)),
  ("mean", "reduce", lambda a, ax: a.mean(axis=ax, keepdim=True), lambda a, ax: a.mean(axis=ax, keepdims=True)),
  ("max", "reduce", lambda a, ax: a.max(axis=ax, keepdim=True), lambda a, ax: a.max(axis=ax, keepdims=True)),
  ("flip", "axis", lambda a, ax: a.flip(ax), lambda a, ax: np.flip(a, ax)),
  ("softmax", "axis", lambda a, ax: a.softmax(ax), lambda a, ax: (lambda e: e / e.sum(axis=ax, keepdims=True))(np.exp(a - a.max(axis=ax, keepdims=True)))),
]

INT_OPS = [
  ("add", 2, lambda a, b: a + b, lambda a, b: a + b),
  ("sub", 2, lambda a, b: a - b, lambda a, b: a - b),
  ("mul", 2, lambda a, b: a * b, lambda a, b: a * b),
  ("maximum", 2, lambda a, b: a.maximum(b), np.maximum),
  ("minimum", 2, lambda a, b: a.minimum(b), np.minimum),
  ("where_lt", 2, lambda a, b: (a < b).where(b, a - 1), lambda a, b: np.where(a < b, b, a - 1)),
  ("neg", 1, lambda a: -a, lambda a: -a),
  ("floordiv3", 1, lambda a: a // 3, lambda a: a // 3),
  ("mod5", 1, lambda a: a % 5, lambda a: a % 5),
  ("sum", "reduce", lambda a, ax: a.sum(axis=ax, keepdim=True), lambda a, ax: a.sum(axis=ax, keepdims=True)),
  ("max", "reduce", lambda a, ax: a.max(axis=ax, keepdim=True), lambda a, ax: a.max(axis=ax, keepdims=True)),
  ("flip", "axis", lambda a, ax: a.flip(ax), lambda a, ax: np.flip(a, ax)),
]

@st.composite
def program(draw, dtype):
  """(inputs, steps) where a step is (op index, operand indices, axis, realize?) over a growing value list."""
  n_in = draw(st.integers(2, 3))
  in_shapes = draw(broadcastable_shapes(num_shapes=n_in, max_dims=3, max_side=4))
  kw = dict(lo=-3, hi=3) if is_float(dtype) else dict(lo=-10, hi=10)
  inputs = [draw(arrays(dtype, s, **kw)) for s in in_shapes]
  ops = FLOAT_OPS if is_float(dtype) else INT_OPS
  vals = [np.asarray(x, dtype=np.float64 if is_float(dtype) else object) for x in inputs]
  steps, biggest = [], max([1.0] + [float(np.max(np.abs(v))) for v in vals if v.size])
  for _ in range(draw(st.integers(3, 8))):
    i = draw(st.integers(0, len(ops) - 1))
    name, arity, _, npf = ops[i]
    if arity == 2:
      args = (draw(st.integers(0, len(vals) - 1)), draw(st.integers(0, len(vals) - 1)))
      out, axis = npf(vals[args[0]], vals[args[1]]), None
    else:
      args = (draw(st.integers(0, len(vals) - 1)),)
      x = vals[args[0]]
      axis = None
      if arity in ("reduce", "axis"):
        if x.ndim == 0: continue
        axis = draw(st.integers(-x.ndim, x.ndim - 1))
        if name in ("max", "softmax") and x.shape[axis] == 0: continue  # no identity for an empty max
      with np.errstate(all="ignore"):
        out = npf(x) if axis is None and arity not in ("reduce", "axis") else npf(x, axis)
    out = np.asarray(out)
    if not is_float(dtype):
      out = out.astype(object)
      if out.size and max(abs(int(v)) for v in out.reshape(-1)) > 2**30: continue  # keep int32 from overflowing
    elif out.size:
      biggest = max(biggest, float(np.max(np.abs(out))))
    vals.append(out)
    steps.append((i, args, axis, draw(st.integers(0, 3)) == 0))
  assume(len(steps) >= 3)
  return inputs, steps, vals, biggest

def run_program(inputs, steps, dtype, ops):
  vals = [tensor(x, dtype) for x in inputs]
  for i, args, axis, realize in steps:
    name, arity, tf, _ = ops[i]
    t = tf(*[vals[a] for a in args]) if arity in (1, 2) else tf(vals[args[0]], axis)
    if realize: t = t.realize()
    vals.append(t)
  return vals

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@examples(40)
@given(data=st.data())
def test_random_float_program_matches_numpy(dtype, data):
  inputs, steps, ref_vals, biggest = data.draw(program(dtype))
  vals = run_program(inputs, steps, dtype, FLOAT_OPS)
  got, expected = to_numpy(vals[-1]), ref_vals[-1]
  assert got.shape == expected.shape
  tol = {"float32": 1e-4, "float64": 1e-10}[dtype]
  np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * biggest)

@pytest.mark.parametrize("dtype", ["float32"])
@examples(25)
@given(data=st.data())
def test_every_intermediate_of_a_random_program_is_correct(dtype, data):
  # realizing the last value first, then reading the earlier ones: fusion must not have clobbered any of them
  inputs, steps, ref_vals, biggest = data.draw(program(dtype))
  vals = run_program(inputs, steps, dtype, FLOAT_OPS)
  vals[-1].realize()
  for t, e in zip(vals[len(inputs):], ref_vals[len(inputs):]):
    np.testing.assert_allclose(to_numpy(t), e, rtol=1e-4, atol=1e-4 * biggest)

@examples(40)
@given(data=st.data())
def test_random_int_program_matches_python_ints(data):
  inputs, steps, ref_vals, _ = data.draw(program("int32"))
  vals = run_program(inputs, steps, "int32", INT_OPS)
  got = vals[-1].numpy()
  assert got.shape == ref_vals[-1].shape and got.dtype == np.int32
  np.testing.assert_array_equal(got.astype(object), ref_vals[-1])

@examples(15)
@given(data=st.data())
def test_realize_several_outputs_together(data):
  inputs, steps, ref_vals, biggest = data.draw(program("float32"))
  vals = run_program(inputs, steps, "float32", FLOAT_OPS)
  outs = vals[len(inputs):]
  Tensor.realize(*outs)  # one schedule for all of them
  for t, e in zip(outs, ref_vals[len(inputs):]):
    np.testing.assert_allclose(to_numpy(t), e, rtol=1e-4, atol=1e-4 * biggest)

@examples(10)
@given(data=st.data())
def test_same_program_twice_gives_identical_results(data):
  # the second run hits every cache (graph signature, compiled kernels) and must compute the same bits
  inputs, steps, _, _ = data.draw(program("float32"))
  first = run_program(inputs, steps, "float32", FLOAT_OPS)[-1].numpy()
  second = run_program(inputs, steps, "float32", FLOAT_OPS)[-1].numpy()
  np.testing.assert_array_equal(first, second)
