"""Several logical CPU devices: Tensor.shard / shard_ / to, ops on sharded tensors (elementwise, reductions over the
sharded axis and others, matmul, movement), and a data-parallel training step equal to the single-device one."""
import numpy as np
import pytest
from tinygrad import Tensor, nn
from tinygrad.nn.state import get_parameters

DEVS = ("CPU", "CPU:1")
A = np.arange(42, dtype=np.float32).reshape(7, 6) / 7

@pytest.mark.parametrize("axis", [None, 0, 1])
def test_shard_round_trip(axis):
  t = Tensor(A).shard(DEVS, axis=axis)
  assert t.device == DEVS and t.shape == A.shape
  np.testing.assert_equal(t.numpy(), A)
  np.testing.assert_equal(t.to("CPU:1").numpy(), A)

@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("name,fn", [
  ("elementwise", lambda t, a: ((t * 2 + 1).relu(), (a * 2 + 1).clip(0))),
  ("sum0", lambda t, a: (t.sum(0), a.sum(0))), ("sum1", lambda t, a: (t.sum(1), a.sum(1))),
  ("sum", lambda t, a: (t.sum(), a.sum())), ("max0", lambda t, a: (t.max(0), a.max(0))),
  ("softmax", lambda t, a: (t.softmax(1), np.exp(a - a.max(1, keepdims=True)) / np.exp(a - a.max(1, keepdims=True)).sum(1, keepdims=True))),
  ("permute", lambda t, a: (t.T * 3, a.T * 3)), ("reshape", lambda t, a: (t.reshape(7, 1, 6).sum(1), a)),
  ("mixed", lambda t, a: (t + Tensor(np.ones(6, np.float32)), a + 1)),
])
def test_ops_on_sharded_tensors_match_numpy(axis, name, fn):
  got, exp = fn(Tensor(A).shard(DEVS, axis=axis), A)
  np.testing.assert_allclose(got.numpy(), exp, rtol=1e-5, atol=1e-6)

def test_matmul_with_batch_sharded_and_weights_replicated():
  w = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
  out = Tensor(A).shard(DEVS, axis=0) @ Tensor(w).shard(DEVS)
  np.testing.assert_allclose(out.numpy(), A @ w, rtol=1e-5, atol=1e-5)
  g = Tensor(A).shard(DEVS, axis=0).T @ Tensor(A).shard(DEVS, axis=0)  # a reduce over the sharded axis: all-reduce
  np.testing.assert_allclose(g.numpy(), A.T @ A, rtol=1e-5, atol=1e-4)

def test_unsupported_movement_is_a_clear_error():
  with pytest.raises(RuntimeError, match="splits or merges the sharded axis"):
    Tensor(A).shard(DEVS, axis=0).reshape(42).numpy()

class _MLP:
  def __init__(self):
    self.l1, self.l2 = nn.Linear(6, 16), nn.Linear(16, 3)
  def __call__(self, x): return self.l2(self.l1(x).relu())

@pytest.mark.parametrize("opt_cls", [nn.optim.SGD, nn.optim.Adam])
def test_data_parallel_step_equals_single_device(opt_cls):
  rng = np.random.default_rng(1)
  X = rng.standard_normal((4, 8, 6)).astype(np.float32)
  Y = rng.integers(0, 3, (4, 8)).astype(np.int32)
  def train(shard: bool):
    Tensor.manual_seed(5)
    net = _MLP()
    params = get_parameters(net)
    Tensor.realize_all(params)
    if shard:
      for p in params: p.shard_(DEVS)
    opt = opt_cls(params, lr=0.05)
    losses = []
    with Tensor.train():
      for x, y in zip(X, Y):
        xt, yt = Tensor(x), Tensor(y)
        if shard: xt, yt = xt.shard(DEVS, axis=0), yt.shard(DEVS, axis=0)
        opt.zero_grad()
        loss = net(xt).sparse_categorical_crossentropy(yt)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.numpy() for p in params]
  (l1, p1), (l2, p2) = train(False), train(True)
  np.testing.assert_allclose(l2, l1, rtol=1e-5, atol=1e-6)
  for a, b in zip(p1, p2): np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
