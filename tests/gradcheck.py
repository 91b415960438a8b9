"""Numeric-gradient helpers for the autograd tests (tests/cpu/test_gradient.py and friends).

`assert_grad_matches(fn, *arrays)` checks the library's backward() against central differences of the library's own
forward pass, both in float64:

* the loss is L(x...) = sum(fn(x...) * w) with a fixed pseudo-random cotangent w (so every output element gets its
  own weight and a wrong broadcast or transpose in a gradient rule cannot cancel out);
* the analytic gradient is x.grad after L.backward() on tensors made with requires_grad=True;
* the numeric gradient is (L(x + eps e_i) - L(x - eps e_i)) / (2 eps) for every element i of every float input.

Inputs that are not float64 arrays (integer labels, bool masks) are passed through as constant tensors and not
differentiated. Repeated forward evaluations only change buffer contents, so they hit the plan cache: the cost of a
check is dominated by compiling the forward and backward kernels once.
"""
from __future__ import annotations
from typing import Callable, Sequence
import numpy as np
from tinygrad import Tensor, dtypes

EPS = 1e-6
# (rtol, atol) between the analytic gradient and the central difference. float64: central differences with eps=1e-6
# on inputs of magnitude <= ~5 are accurate to ~1e-9 relative; the margin covers cancellation in the loss sum.
GRAD_TOL = {"float64": (1e-5, 1e-6)}

def cotangent(shape: tuple[int, ...], seed: int = 1234) -> np.ndarray:
  """Fixed weights for the loss sum(out * w): magnitudes in [0.5, 1.5], both signs, never zero."""
  rng = np.random.default_rng(seed + 7919 * len(shape) + sum(shape))
  return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)

def _is_diff(a) -> bool: return isinstance(a, np.ndarray) and a.dtype == np.float64

def _tensors(arrays: Sequence, requires_grad: bool) -> list:
  return [Tensor(a, requires_grad=True if requires_grad and _is_diff(a) else None) if isinstance(a, np.ndarray) else a
          for a in arrays]

def _loss(fn: Callable, arrays: Sequence, w: np.ndarray | None, requires_grad: bool):
  ts = _tensors(arrays, requires_grad)
  out = fn(*ts)
  assert out.dtype == dtypes.float64, f"test bug: fn must return float64, got {out.dtype}"
  if w is None: w = cotangent(out.shape)
  return ts, (out * Tensor(w)).sum(), w

def analytic_grads(fn: Callable, arrays: Sequence) -> tuple[list[np.ndarray], np.ndarray]:
  """x.grad of every float64 input after backward() of sum(fn(...) * w), and the cotangent w used."""
  ts, loss, w = _loss(fn, arrays, None, True)
  loss.backward()
  out = []
  for a, t in zip(arrays, ts):
    if not _is_diff(a): continue
    assert t.grad is not None, f"no gradient reached an input of shape {a.shape}"
    assert t.grad.shape == a.shape, f"grad shape {t.grad.shape} != input shape {a.shape}"
    assert t.grad.dtype == dtypes.float64, f"grad dtype {t.grad.dtype} != float64"
    out.append(t.grad.numpy())
  return out, w

def numeric_grads(fn: Callable, arrays: Sequence, w: np.ndarray, eps: float = EPS) -> list[np.ndarray]:
  """Central differences of sum(fn(...) * w) with respect to every element of every float64 input."""
  def loss_at(arrs) -> float: return float(_loss(fn, arrs, w, False)[1].numpy())
  out = []
  for k, a in enumerate(arrays):
    if not _is_diff(a): continue
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
      arrs = list(arrays)
      plus, minus = a.copy(), a.copy()
      plus[idx] += eps
      minus[idx] -= eps
      arrs[k] = plus
      lp = loss_at(arrs)
      arrs[k] = minus
      g[idx] = (lp - loss_at(arrs)) / (2 * eps)
    out.append(g)
  return out

def assert_grad_matches(fn: Callable, *arrays, dtype: str = "float64", rtol: float | None = None, atol: float | None = None) -> None:
  """backward() of sum(fn(*arrays) * w) agrees with central differences for every float64 input."""
  r, a = GRAD_TOL[dtype]
  analytic, w = analytic_grads(fn, arrays)
  numeric = numeric_grads(fn, arrays, w)
  assert analytic, "test bug: no float64 input to differentiate"
  for i, (ga, gn) in enumerate(zip(analytic, numeric)):
    np.testing.assert_allclose(ga, gn, rtol=r if rtol is None else rtol, atol=a if atol is None else atol,
                               err_msg=f"gradient of input {i} (shape {gn.shape})")
