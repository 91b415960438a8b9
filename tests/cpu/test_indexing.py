"""Advanced __getitem__ (several integer Tensors, boolean masks, mixed with ints/slices/None/...) and __setitem__
against numpy's indexing rules, including where the broadcast index dims land and repeated writes."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from tinygrad import Tensor
from strategies import examples

def _t(ix):
  return tuple(Tensor(i) if isinstance(i, np.ndarray) else i for i in ix) if isinstance(ix, tuple) else \
    (Tensor(ix) if isinstance(ix, np.ndarray) else ix)

A = np.arange(120, dtype=np.float32).reshape(4, 5, 6)
I2 = np.array([[0, 3], [2, 1]])
J = np.array([4, -1])
CASES = [
  (I2,), (I2, J), (slice(None), J), (1, J, slice(1, 4)), (I2, slice(None), J), (Ellipsis, J), (None, I2),
  (slice(1, 3), I2, J), (A[:, :, 0] > 50,), (A > 100,), (np.array([True, False, True, True]), 2), ([0, 0, 3],),
]

@pytest.mark.parametrize("ix", CASES, ids=range(len(CASES)))
def test_advanced_getitem_matches_numpy(ix):
  exp = A[tuple(np.array(i) if isinstance(i, list) else i for i in ix)]
  got = Tensor(A)[_t(ix)].numpy()
  assert got.shape == exp.shape
  np.testing.assert_array_equal(got, exp)

@examples(25)
@given(data=st.data())
def test_gather_with_random_index_tensors(data):
  shape = data.draw(st.tuples(*[st.integers(1, 5)] * 3))
  a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  bshape = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
  i = np.array(data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=bshape[1], max_size=bshape[1])))
  j = np.array(data.draw(st.lists(st.integers(-shape[2], shape[2] - 1), min_size=bshape[1], max_size=bshape[1])))
  np.testing.assert_array_equal(Tensor(a)[Tensor(i), :, Tensor(j)].numpy(), a[i, :, j])
  np.testing.assert_array_equal(Tensor(a)[:, Tensor(i % shape[1])].numpy(), a[:, i % shape[1]])

SET_CASES = [
  ((1, slice(None), 2), 7.0), ((Ellipsis, -1), -3.0), ((slice(0, 2), 1), np.arange(6, dtype=np.float32)),
  ((slice(None), slice(None, None, 2), 1), 9.0), ((np.array([0, 2]),), np.ones((5, 6), np.float32)),
  ((A > 100,), 0.0), ((np.array([1, 3]), slice(None), np.array([0, 5])), np.array([[1.0], [2.0]], np.float32).repeat(5, 1)),
  ((slice(3, 1),), 5.0),
]

@pytest.mark.parametrize("ix,v", SET_CASES, ids=range(len(SET_CASES)))
def test_setitem_matches_numpy(ix, v):
  exp = A.copy()
  exp[ix] = v
  t = Tensor(A.copy())
  t[_t(ix)] = Tensor(v) if isinstance(v, np.ndarray) else v
  np.testing.assert_array_equal(t.numpy(), exp)

def test_setitem_repeated_index_last_write_wins():
  t = Tensor(np.zeros(5, np.float32))
  t[Tensor([1, 3, 1])] = Tensor([10.0, 20.0, 30.0])
  np.testing.assert_array_equal(t.numpy(), [0, 30, 0, 20, 0])

def test_setitem_keeps_views_taken_before():
  t = Tensor(np.arange(4, dtype=np.float32))
  before = t[1:3]
  t[1] = 100.0
  np.testing.assert_array_equal(before.numpy(), [1, 2])
  np.testing.assert_array_equal(t.numpy(), [0, 100, 2, 3])

def test_setitem_gradient_flows_to_the_value():
  v = Tensor([2.0, 3.0], requires_grad=True)
  t = Tensor(np.ones(4, np.float32))
  t[1:3] = v
  (t * Tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
  np.testing.assert_array_equal(v.grad.numpy(), [2.0, 3.0])

def test_setitem_shape_mismatch_is_an_error():
  t = Tensor(np.zeros((3, 4), np.float32))
  with pytest.raises(ValueError, match=r"setitem: cannot broadcast shapes \(2,\) and \(3,\)"):
    t[0, 1:3] = Tensor([1.0, 2.0, 3.0])

def test_getitem_float_tensor_index_is_an_error():
  with pytest.raises(IndexError, match="tensor indices must be integers or booleans"):
    Tensor(A)[Tensor([0.5])]
