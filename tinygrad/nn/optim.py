"""Optimizers. step() builds every parameter's update lazily (fused with the backward pass that made the grads) and
realizes all parameters and optimizer state in one call."""
from __future__ import annotations
from tinygrad.tensor import Tensor
from tinygrad.dtype import dtypes
from tinygrad.helpers import dedup

def _collect(params) -> list[Tensor]:
  """Trainable tensors from a Tensor, a list of Tensors, a module, or a list of modules."""
  from tinygrad.nn.state import get_parameters
  if not isinstance(params, (list, tuple)): params = [params]  # one Tensor or one module
  out: list[Tensor] = []
  for p in params:
    if isinstance(p, Tensor): out.append(p)
    else: out.extend(get_parameters(p))
  return dedup(out)

class Optimizer:
  def __init__(self, params, lr: float):
    ps = _collect(params)
    for p in ps:
      if p.requires_grad is None: p.requires_grad = True  # as tinygrad: handing a tensor to an optimizer makes it trainable
    self.params = [p for p in ps if p.requires_grad]
    if not self.params: raise ValueError("optimizer: no trainable parameters (every tensor given has requires_grad=False)")
    self.buffers = [p for p in ps if not p.requires_grad]
    self.lr = Tensor([lr], requires_grad=False) if not isinstance(lr, Tensor) else lr  # a buffer: changing it recompiles nothing
    self.device = self.params[0].device
  def zero_grad(self) -> None:
    for p in self.params: p.grad = None
  def _state(self, like: Tensor) -> Tensor: return Tensor.zeros(like.shape, dtype=like.dtype, device=like.device).contiguous().realize()
  def step(self) -> None:
    """Apply one update to every parameter that has a gradient; everything is computed in one realize."""
    prev, Tensor.no_grad = Tensor.no_grad, True
    try: Tensor.realize_all(self.schedule_step())
    finally: Tensor.no_grad = prev
  def schedule_step(self) -> list[Tensor]:
    prev, Tensor.no_grad = Tensor.no_grad, True
    try:
      missing = [i for i, p in enumerate(self.params) if p.grad is None]
      if len(missing) == len(self.params): raise RuntimeError("optimizer.step: no parameter has a gradient; call loss.backward() first")
      updated = self._step([i for i, p in enumerate(self.params) if p.grad is not None])
    finally: Tensor.no_grad = prev
    return updated + self.buffers
  def _step(self, idxs: list[int]) -> list[Tensor]:
    """Replace self.params[i] (and its state) by the updated values for i in idxs; return every tensor to realize."""
    raise NotImplementedError

class SGD(Optimizer):
  """p -= lr * (g + wd*p), with optional (Nesterov) momentum, as PyTorch."""
  def __init__(self, params, lr: float = 0.001, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, classic: bool = False):
    super().__init__(params, lr)
    self.momentum, self.wd, self.nesterov, self.classic = momentum, weight_decay, nesterov, classic
    self.b = [self._state(p) for p in self.params] if momentum else []
  def _step(self, idxs):
    out = []
    for i in idxs:
      p, g = self.params[i], self.params[i].grad
      g = g + self.wd * p.detach() if self.wd else g
      out += self._momentum_update(i, g)
    return out

  def _momentum_update(self, i: int, g: Tensor) -> list[Tensor]:
    """p -= lr * (g, or its (Nesterov) momentum buffer); returns the tensors that changed."""
    p, out = self.params[i], []
    if self.momentum:
      b = self.b[i]
      b.replace((b * self.momentum + g).detach())
      g = (g + self.momentum * b) if self.nesterov else b
      out.append(b)
    p.replace((p.detach() - self.lr.reshape(()) * g).cast(p.dtype).detach())
    return out + [p]

class LAMB(Optimizer):
  """LAMB (and, with adam=True, Adam/AdamW). Bias-corrected first and second moments; weight decay is decoupled."""
  def __init__(self, params, lr: float = 0.001, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6, weight_decay: float = 0.0, adam: bool = False):
    super().__init__(params, lr)
    self.b1, self.b2, self.eps, self.wd, self.adam = b1, b2, eps, weight_decay, adam
    self.b1_t, self.b2_t = Tensor([1.0], dtype=dtypes.float32), Tensor([1.0], dtype=dtypes.float32)
    self.m = [self._state(p) for p in self.params]
    self.v = [self._state(p) for p in self.params]
  def _step(self, idxs):
    self.b1_t.replace((self.b1_t * self.b1).detach())
    self.b2_t.replace((self.b2_t * self.b2).detach())
    out = [self.b1_t, self.b2_t]
    c1, c2 = 1 - self.b1_t.reshape(()), 1 - self.b2_t.reshape(())  # bias corrections, built once for all parameters
    for i in idxs:
      p, g = self.params[i], self.params[i].grad
      m, v = self.m[i], self.v[i]
      g = g.cast(m.dtype)
      m.replace((m * self.b1 + g * (1 - self.b1)).detach())
      v.replace((v * self.b2 + g.square() * (1 - self.b2)).detach())
      up = (m / c1) / ((v / c2).sqrt() + self.eps)
      if self.wd: up = up + self.wd * p.detach()  # as torch: no 0 * p term without weight decay (an inf weight stays inf)
      if not self.adam:
        r1, r2 = p.detach().square().sum().sqrt(), up.square().sum().sqrt()
        trust = ((r1 > 0) & (r2 > 0)).where(r1 / r2, 1.0)
        up = up * trust
      p.replace((p.detach() - self.lr.reshape(()) * up).cast(p.dtype).detach())
      out += [m, v, p]
    return out

def AdamW(params, lr: float = 0.001, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.01) -> LAMB:
  return LAMB(params, lr, b1, b2, eps, weight_decay, adam=True)
def Adam(params, lr: float = 0.001, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> LAMB:
  return LAMB(params, lr, b1, b2, eps, 0.0, adam=True)

class LARS(SGD):
  """SGD with layer-wise adaptive rate scaling (trust ratio tcoef * |p| / (|g| + wd*|p|))."""
  def __init__(self, params, lr: float = 0.001, momentum: float = 0.9, weight_decay: float = 1e-4, nesterov: bool = False, classic: bool = True, tcoef: float = 0.001):
    super().__init__(params, lr, momentum, weight_decay, nesterov, classic)
    self.tcoef = tcoef
  def _step(self, idxs):
    out = []
    for i in idxs:
      p, g = self.params[i], self.params[i].grad
      pn, gn = p.detach().square().sum().sqrt(), g.square().sum().sqrt()
      trust = ((pn > 0) & (gn > 0)).where(self.tcoef * pn / (gn + self.wd * pn), 1.0)
      out += self._momentum_update(i, (g + self.wd * p.detach()) * trust)
    return out

class OptimizerGroup(Optimizer):
  """Several optimizers stepped together."""
  def __init__(self, *optimizers: Optimizer):
    self.optimizers = optimizers
    self.params = [p for o in optimizers for p in o.params]
    self.buffers = [b for o in optimizers for b in o.buffers]
  def zero_grad(self) -> None:
    for o in self.optimizers: o.zero_grad()
  def schedule_step(self) -> list[Tensor]: return [t for o in self.optimizers for t in o.schedule_step()]
