"""TinyJit: replays equal eager runs (state, random numbers, BatchNorm statistics included), refuse mismatched inputs,
key on non-Tensor arguments, and skip graph building on replay."""
import numpy as np
import pytest
from tinygrad import Tensor, TinyJit, nn
from tinygrad.engine import realize
from tinygrad.nn.state import get_parameters

class _Net:
  def __init__(self):
    self.l1, self.bn, self.l2 = nn.Linear(6, 12), nn.BatchNorm(12), nn.Linear(12, 3)
  def __call__(self, x: Tensor) -> Tensor: return self.l2(self.bn(self.l1(x)).relu().dropout(0.2))

def _trainer(opt_cls):
  Tensor.manual_seed(3)
  net = _Net()
  opt = opt_cls(get_parameters(net), lr=0.05)
  def step(x: Tensor, y: Tensor) -> Tensor:
    with Tensor.train():
      opt.zero_grad()
      loss = net(x).sparse_categorical_crossentropy(y)
      loss.backward()
      opt.step()
    return loss
  return net, step

def _batches(n: int):
  rng = np.random.default_rng(0)
  for _ in range(n):
    x = rng.standard_normal((16, 6)).astype(np.float32)
    yield x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)

@pytest.mark.parametrize("opt_cls", [nn.optim.SGD, nn.optim.Adam])
def test_jitted_training_equals_eager(opt_cls):
  """Losses, parameters, BatchNorm running stats and the dropout masks (random key state) match an eager run."""
  net_e, step_e = _trainer(opt_cls)
  eager = [step_e(Tensor(x), Tensor(y)).item() for x, y in _batches(6)]
  net_j, step_j = _trainer(opt_cls)
  jstep = TinyJit(step_j)
  jitted = [jstep(Tensor(x), Tensor(y)).item() for x, y in _batches(6)]
  assert len(jstep.captured) == 1
  np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
  for (name, a), b in zip(nn.state.get_state_dict(net_e).items(), nn.state.get_state_dict(net_j).values()):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)

def test_replay_builds_no_graphs_and_runs_the_recorded_kernels():
  @TinyJit
  def f(a: Tensor, b: Tensor) -> Tensor: return ((a + b) * 2).sum(0).realize() + 1
  a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.ones((3, 4), np.float32)
  for _ in range(2): f(Tensor(a), Tensor(b))
  plans, hits = realize.stats["plans"], realize.stats["plan_hits"]
  for k in range(3):
    out = f(Tensor(a * k), Tensor(b))
    np.testing.assert_allclose(out.numpy(), ((a * k + b) * 2).sum(0) + 1)
  assert (realize.stats["plans"], realize.stats["plan_hits"]) == (plans, hits)  # no plan lookups at all on replay

def test_outputs_of_earlier_calls_stay_valid():
  f = TinyJit(lambda x: x * 3)
  outs = [f(Tensor([float(i)] * 4)) for i in range(5)]
  for i, o in enumerate(outs): np.testing.assert_equal(o.numpy(), [3.0 * i] * 4)

def test_shape_mismatch_is_refused():
  f = TinyJit(lambda x: x + 1)
  for _ in range(3): f(Tensor.ones(4, 2))
  with pytest.raises(RuntimeError, match=r"TinyJit: call 4 got input 0 of shape \(2, 4\).*expect shape \(4, 2\)"):
    f(Tensor.ones(2, 4))

def test_dtype_mismatch_is_refused():
  f = TinyJit(lambda x: x + 1)
  for _ in range(3): f(Tensor.ones(4))
  with pytest.raises(RuntimeError, match=r"dtypes.int on CPU; the captured kernels expect shape \(4,\) dtypes.float"):
    f(Tensor.ones(4, dtype="int32"))

def test_non_tensor_arguments_are_part_of_the_key():
  f = TinyJit(lambda x, scale: x * scale)
  for i in range(4):
    np.testing.assert_equal(f(Tensor([1.0, 2.0]), 2).numpy(), [2.0, 4.0])
    np.testing.assert_equal(f(Tensor([1.0, 2.0]), 5).numpy(), [5.0, 10.0])
  assert len(f.captured) == 2

def test_strided_view_input_is_copied_once():
  f = TinyJit(lambda x: x.sum(1))
  base = np.arange(24, dtype=np.float32).reshape(4, 6)
  for k in range(4):
    np.testing.assert_allclose(f(Tensor(base + k)[:, ::2]).numpy(), (base + k)[:, ::2].sum(1))

def test_jit_on_a_method():
  class Model:
    def __init__(self): self.w = Tensor([[1.0, 2.0], [3.0, 4.0]])
    @TinyJit
    def __call__(self, x: Tensor) -> Tensor: return x @ self.w
  m = Model()
  for k in range(4): np.testing.assert_allclose(m(Tensor([[k, 1.0]])).numpy(), [[k + 3.0, 2 * k + 4.0]])

def test_random_numbers_differ_across_replays():
  f = TinyJit(lambda x: x + Tensor.rand(8))
  outs = [f(Tensor.zeros(8)).numpy() for _ in range(5)]
  assert len({o.tobytes() for o in outs}) == 5

def test_state_not_realized_before_the_call_is_refused():
  acc = Tensor.zeros(3).contiguous().realize()
  def f(x):
    acc.assign(acc + x)
    return acc
  jf = TinyJit(f)
  jf(Tensor.ones(3))
  acc.replace(acc * 1)  # left unrealized (replace, unlike assign, is not realized with the next realize)
  with pytest.raises(RuntimeError, match="not realized before the call"):
    jf(Tensor.ones(3))

def test_accumulating_state_is_updated_on_every_replay():
  acc = Tensor.zeros(3).contiguous().realize()
  @TinyJit
  def f(x):
    acc.assign(acc + x)
    return acc * 1
  for i in range(5): out = f(Tensor([1.0, 2.0, 3.0]))
  np.testing.assert_equal(acc.numpy(), [5.0, 10.0, 15.0])
  np.testing.assert_equal(out.numpy(), [5.0, 10.0, 15.0])

def test_tensor_assigned_between_calls_is_read_on_replay():
  # a learning-rate schedule: lr.assign() outside the jitted step makes a new buffer; replays must read it
  lr = Tensor([1.0]).realize()
  f = TinyJit(lambda x: x * lr)
  for k in range(1, 6):
    lr.assign(Tensor([float(k)])).realize()
    np.testing.assert_equal(f(Tensor([2.0, 3.0])).numpy(), [2.0 * k, 3.0 * k])

def test_returned_views_are_replayed():
  w = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4)).realize()
  def fn(x):
    y = (x * w).realize()  # the returned values are views of a buffer the function computed
    return y.T, y[1:, ::2]
  f = TinyJit(fn)
  for k in range(4):
    a, b = f(Tensor.full((3, 4), float(k)))
    np.testing.assert_equal(a.numpy(), (k * w.numpy()).T)
    np.testing.assert_equal(b.numpy(), (k * w.numpy())[1:, ::2])

def _step_pair():
  """The same small training step, jitted twice over identical weights: one replay per call of each."""
  def make():
    Tensor.manual_seed(5)
    l1, l2 = nn.Linear(300, 600), nn.Linear(600, 4)  # the 256x600 hidden layer is big enough to split over threads
    opt = nn.optim.Adam(get_parameters([l1, l2]), lr=0.01)
    for p in get_parameters([l1, l2]): p.realize()
    @TinyJit
    def step(x, y):
      with Tensor.train():
        opt.zero_grad()
        loss = l2(l1(x).relu()).sparse_categorical_crossentropy(y)
        loss.backward()
        opt.step()
      return loss.realize()
    return step, l1
  return make(), make()

def test_replay_runs_every_kernel_in_one_native_call(monkeypatch):
  """A replay of CPU kernels without Variables goes through runtime.cpu.KernelBatch (one call into runtime.workers
  for all of them); with the workers busy it runs kernel by kernel. Both give the same losses and weights, and count
  the same kernels in GlobalCounters."""
  from runtime.cpu import KernelBatch
  from tinygrad.device import Device
  from tinygrad.helpers import GlobalCounters
  if Device["CPU"].threads == 1: pytest.skip("THREADS=1: no native workers, so no one-call replays")
  rng = np.random.default_rng(0)
  xs = [Tensor(rng.standard_normal((256, 300)).astype(np.float32)).realize() for _ in range(5)]
  ys = [Tensor(rng.integers(0, 4, 256).astype(np.int32)).realize() for _ in range(5)]
  (batched, l1a), (single, l1b) = _step_pair()
  for k in range(2): batched(xs[k], ys[k]), single(xs[k], ys[k])  # run, record
  calls, run = [], KernelBatch.run
  monkeypatch.setattr(KernelBatch, "run", lambda self, ptrs: (calls.append(len(ptrs)), run(self, ptrs))[1])
  for k in range(2, 5):
    c0 = GlobalCounters.kernel_count
    la = batched(xs[k], ys[k]).numpy()
    ca = GlobalCounters.kernel_count - c0
    monkeypatch.setattr(KernelBatch, "run", lambda self, ptrs: False)  # the workers busy: kernel by kernel
    c0 = GlobalCounters.kernel_count
    lb = single(xs[k], ys[k]).numpy()
    assert GlobalCounters.kernel_count - c0 == ca > 1
    monkeypatch.setattr(KernelBatch, "run", lambda self, ptrs: (calls.append(len(ptrs)), run(self, ptrs))[1])
    np.testing.assert_array_equal(la, lb)
  np.testing.assert_array_equal(l1a.weight.numpy(), l1b.weight.numpy())
  assert len(calls) == 3, calls

def test_replay_at_debug_2_times_each_kernel(capsys):
  from tinygrad import Context
  (step, _), _ = _step_pair()
  x, y = Tensor.ones(256, 300).contiguous().realize(), Tensor.zeros(256, dtype="int32").contiguous().realize()
  for _ in range(2): step(x, y)
  with Context(DEBUG=2): step(x, y)
  assert capsys.readouterr().out.count("GFLOP/s") > 1  # a line per kernel: the replay ran them one by one

def test_jit_returns_a_view_of_a_kernel_output():
  # a padded conv without gradients is realized as a view dropping the ends of its whole padded rows (tensor.py
  # _flat_windows): the first call returns that view; recording copies a returned view into a buffer of its own
  rng = np.random.default_rng(0)
  w = Tensor(rng.standard_normal((8, 3, 3, 3)).astype(np.float32)).realize()
  f = TinyJit(lambda x: x.conv2d(w, padding=1))
  for _ in range(4):
    xv = rng.standard_normal((2, 3, 14, 14)).astype(np.float32)
    out = f(Tensor(xv).realize())
    ref = Tensor(xv).conv2d(Tensor(w.numpy(), requires_grad=True), padding=1).numpy()
    assert out.shape == (2, 8, 14, 14)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)

def test_jit_state_assigned_a_view():
  # state assigned a value that realizes as a view (a transpose of an argument, a conv's whole rows) is copied into a
  # buffer of its own (Tensor.assign): the recording call finds every state tensor a whole buffer
  rng = np.random.default_rng(1)
  h, w = Tensor(rng.standard_normal((4, 4)).astype(np.float32)).realize(), Tensor(rng.standard_normal((3, 3, 3, 3)).astype(np.float32) * 0.2).realize()
  g = Tensor(rng.standard_normal((1, 3, 8, 8)).astype(np.float32)).realize()
  @TinyJit
  def step(x: Tensor) -> Tensor:
    h.assign((h + x).T)
    g.assign(g.conv2d(w, padding=1))
    return h.sum()
  href, gref = h.numpy().astype(np.float64), g.numpy()
  for i in range(4):
    s = step(Tensor(np.full((4, 4), i, np.float32)).realize())
    href = (href + i).T
    gref = Tensor(gref).conv2d(Tensor(w.numpy(), requires_grad=True), padding=1).numpy()
    np.testing.assert_allclose(h.numpy(), href, rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), gref, rtol=1e-4, atol=1e-5)
    assert abs(s.item() - href.sum()) < 1e-3
