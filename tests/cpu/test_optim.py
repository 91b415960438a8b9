"""Optimizers against float64 numpy implementations of their update rules over several steps, zero_grad, and the
three ways of handing parameters over (a list of Tensors, a module, a list of modules).

The problem is a small least-squares fit, so gradients change from step to step and momentum / moment estimates
matter. The library trains float32 parameters; the reference runs the same rule in float64 from the same starting
values, and after 5 steps the two agree to float32 accuracy.
"""
import numpy as np
import pytest
from tinygrad import Tensor, nn
from tinygrad.nn.optim import SGD, Adam, AdamW, LAMB
from tinygrad.nn.state import get_parameters

STEPS = 5
RTOL, ATOL = 1e-5, 1e-6  # float32 parameters after STEPS updates (each update is a handful of rounded float32 ops)

RNG = np.random.default_rng(42)
X = RNG.uniform(-1, 1, (6, 4)).astype(np.float32)
Y = RNG.uniform(-1, 1, (6, 3)).astype(np.float32)
W0 = RNG.uniform(-1, 1, (3, 4)).astype(np.float32)
B0 = RNG.uniform(-1, 1, (3,)).astype(np.float32)

def loss_tensor(w: Tensor, b: Tensor) -> Tensor: return ((Tensor(X) @ w.T + b - Tensor(Y)) ** 2).mean()

def grads_np(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  r = X.astype(np.float64) @ w.T + b - Y
  scale = 2 / r.size
  return scale * r.T @ X.astype(np.float64), scale * r.sum(0)

def run_library(make_opt) -> list[np.ndarray]:
  w, b = Tensor(W0.copy(), requires_grad=True), Tensor(B0.copy(), requires_grad=True)
  opt = make_opt([w, b])
  for _ in range(STEPS):
    opt.zero_grad()
    loss_tensor(w, b).backward()
    opt.step()
  return [w.numpy(), b.numpy()]

def run_reference(update) -> list[np.ndarray]:
  """update(i, params, grads, state, t) -> new params; state is a dict per parameter index."""
  ps = [W0.astype(np.float64), B0.astype(np.float64)]
  state = [{}, {}]
  for t in range(1, STEPS + 1):
    gs = grads_np(*ps)
    ps = [update(p, g, state[i], t) for i, (p, g) in enumerate(zip(ps, gs))]
  return ps

def assert_params_close(got, ref):
  for name, g, r in zip(("weight", "bias"), got, ref):
    assert g.dtype == np.float32
    np.testing.assert_allclose(g.astype(np.float64), r, rtol=RTOL, atol=ATOL, err_msg=name)

# ---------------------------------------------------------------- reference update rules (float64 numpy)

def sgd_ref(lr, momentum=0.0, weight_decay=0.0, nesterov=False):
  def update(p, g, s, t):
    g = g + weight_decay * p
    if momentum:
      s["b"] = momentum * s.get("b", 0.0) + g  # torch: the buffer starts as the first gradient (dampening 0)
      g = g + momentum * s["b"] if nesterov else s["b"]
    return p - lr * g
  return update

def adam_ref(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, lamb=False):
  def update(p, g, s, t):
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    m_hat, v_hat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
    up = m_hat / (np.sqrt(v_hat) + eps) + weight_decay * p  # decoupled weight decay (AdamW / LAMB)
    if lamb:
      r1, r2 = np.linalg.norm(p), np.linalg.norm(up)
      up = up * (r1 / r2 if r1 > 0 and r2 > 0 else 1.0)
    return p - lr * up
  return update

# ---------------------------------------------------------------- update rules

SGD_CASES = {
  "plain": dict(lr=0.1),
  "momentum": dict(lr=0.05, momentum=0.9),
  "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
  "weight_decay": dict(lr=0.1, weight_decay=0.1),
  "momentum_weight_decay": dict(lr=0.05, momentum=0.8, weight_decay=0.05),
}

@pytest.mark.parametrize("case", sorted(SGD_CASES))
def test_sgd_matches_numpy(case):
  kw = SGD_CASES[case]
  assert_params_close(run_library(lambda ps: SGD(ps, **kw)), run_reference(sgd_ref(**kw)))

def test_adam_matches_numpy():
  assert_params_close(run_library(lambda ps: Adam(ps, lr=0.01)), run_reference(adam_ref(0.01)))

def test_adam_custom_betas_matches_numpy():
  kw = dict(lr=0.02, b1=0.8, b2=0.99, eps=1e-6)
  assert_params_close(run_library(lambda ps: Adam(ps, **kw)), run_reference(adam_ref(**kw)))

def test_adamw_matches_numpy():
  assert_params_close(run_library(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1)),
                      run_reference(adam_ref(0.01, weight_decay=0.1)))

def test_adamw_default_weight_decay_is_0_01():
  assert_params_close(run_library(lambda ps: AdamW(ps, lr=0.01)), run_reference(adam_ref(0.01, weight_decay=0.01)))

def test_lamb_matches_numpy():
  assert_params_close(run_library(lambda ps: LAMB(ps, lr=0.05, weight_decay=0.01)),
                      run_reference(adam_ref(0.05, eps=1e-6, weight_decay=0.01, lamb=True)))

def test_sgd_first_step_is_lr_times_grad():
  w = Tensor([1.0, -2.0, 3.0], requires_grad=True)
  (w * Tensor([0.5, 1.0, -1.0])).sum().backward()
  SGD([w], lr=0.1).step()
  np.testing.assert_allclose(w.numpy(), [0.95, -2.1, 3.1], rtol=1e-6)

def test_adam_first_step_moves_each_param_by_lr():
  # after one step m_hat = g and v_hat = g^2, so the update is lr * sign(g) (up to eps)
  w = Tensor([1.0, -2.0, 3.0], requires_grad=True)
  (w * Tensor([0.5, 4.0, -1.0])).sum().backward()
  Adam([w], lr=0.01).step()
  np.testing.assert_allclose(w.numpy(), [0.99, -2.01, 3.01], rtol=1e-6)

def test_adam_without_weight_decay_keeps_an_infinite_weight():
  # as torch: without weight decay the update has no 0 * p term, so an inf weight is not turned into NaN
  w = Tensor([float("inf"), 1.0], requires_grad=True)
  (w * Tensor([0.0, 2.0])).sum().backward()
  Adam([w], lr=0.01).step()
  out = w.numpy()
  assert out[0] == np.inf and abs(out[1] - 0.99) < 1e-6

# ---------------------------------------------------------------- zero_grad, params without grads

def test_zero_grad_clears_every_grad():
  w, b = Tensor(W0.copy(), requires_grad=True), Tensor(B0.copy(), requires_grad=True)
  opt = SGD([w, b], lr=0.1)
  loss_tensor(w, b).backward()
  opt.zero_grad()
  assert w.grad is None and b.grad is None

def test_step_without_any_grad_raises():
  opt = SGD([Tensor([1.0, 2.0], requires_grad=True)], lr=0.1)
  with pytest.raises(RuntimeError, match="backward"):
    opt.step()

def test_step_leaves_param_without_grad_unchanged():
  used, unused = Tensor([1.0, 2.0], requires_grad=True), Tensor([5.0, 6.0], requires_grad=True)
  opt = SGD([used, unused], lr=0.5)
  (used * 2).sum().backward()
  opt.step()
  np.testing.assert_array_equal(used.numpy(), [0.0, 1.0])
  np.testing.assert_array_equal(unused.numpy(), [5.0, 6.0])

def test_without_zero_grad_grads_accumulate_into_step():
  w = Tensor([0.0], requires_grad=True)
  opt = SGD([w], lr=1.0)
  for _ in range(2):
    (w * 3).sum().backward()
    opt.step()
  np.testing.assert_array_equal(w.numpy(), [-9.0])  # -3, then -(3+3)

def test_optimizer_with_no_trainable_params_raises():
  with pytest.raises(ValueError):
    SGD([Tensor([1.0], requires_grad=False)], lr=0.1)

def test_optimizer_makes_undecided_tensors_trainable():
  t = Tensor([1.0, 2.0])
  SGD([t], lr=0.1)
  assert t.requires_grad is True

# ---------------------------------------------------------------- how params are handed over

class TinyNet:
  def __init__(self):
    self.l1, self.l2 = nn.Linear(4, 5), nn.Linear(5, 3)
  def __call__(self, x: Tensor) -> Tensor: return self.l2(self.l1(x).relu())

def _sgd_step_changes(make_params) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """One SGD step with lr=0.1 on TinyNet: (params after the step, params - 0.1 * grad computed beforehand)."""
  Tensor.manual_seed(3)
  net = TinyNet()
  opt = SGD(make_params(net), lr=0.1)
  assert len(opt.params) == 4
  opt.zero_grad()
  ((net(Tensor(X)) - Tensor(Y)) ** 2).mean().backward()
  ps = [net.l1.weight, net.l1.bias, net.l2.weight, net.l2.bias]
  expected = [p.numpy() - 0.1 * p.grad.numpy() for p in ps]
  opt.step()
  return [p.numpy() for p in ps], expected

@pytest.mark.parametrize("form", ["tensor_list", "module", "module_list", "get_parameters"])
def test_params_forms_update_every_param(form):
  make = {"tensor_list": lambda n: [n.l1.weight, n.l1.bias, n.l2.weight, n.l2.bias], "module": lambda n: n,
          "module_list": lambda n: [n.l1, n.l2], "get_parameters": get_parameters}[form]
  got, expected = _sgd_step_changes(make)
  for g, e in zip(got, expected): np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)

def test_adam_accepts_list_containing_model():
  Tensor.manual_seed(4)
  net = TinyNet()
  opt = nn.optim.Adam([net], lr=0.01)
  assert {id(p) for p in opt.params} == {id(p) for p in get_parameters(net)}

def test_duplicate_params_are_stepped_once():
  w = Tensor([1.0], requires_grad=True)
  opt = SGD([w, w], lr=1.0)
  (w * 2).sum().backward()
  opt.step()
  np.testing.assert_array_equal(w.numpy(), [-1.0])

def test_optimizer_on_module_skips_batchnorm_running_stats():
  # running_mean/running_var are buffers: handing the module to an optimizer must not make them trainable
  bn = nn.BatchNorm2d(3)
  opt = SGD([bn], lr=0.1)
  assert all(p is not bn.running_mean and p is not bn.running_var for p in opt.params)

def test_eval_mode_training_step_leaves_running_stats_unchanged():
  prev = Tensor.training
  try:
    Tensor.training = False
    bn = nn.BatchNorm2d(3)
    opt = SGD([bn], lr=0.1)
    bn(Tensor(np.random.default_rng(0).uniform(-1, 1, (2, 3, 2, 2)).astype(np.float32))).sum().backward()
    opt.step()
    np.testing.assert_array_equal(bn.running_mean.numpy(), [0, 0, 0])
    np.testing.assert_array_equal(bn.running_var.numpy(), [1, 1, 1])
  finally:
    Tensor.training = prev

def test_training_reduces_loss():
  Tensor.manual_seed(5)
  net = TinyNet()
  opt = Adam(get_parameters(net), lr=0.05)
  def loss(): return ((net(Tensor(X)) - Tensor(Y)) ** 2).mean()
  first = loss().item()
  for _ in range(30):
    opt.zero_grad()
    loss().backward()
    opt.step()
  assert loss().item() < 0.5 * first
