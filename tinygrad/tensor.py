"""Tensor: a lazy, immutable handle on a UOp graph. It never computes by itself; realize() schedules kernels."""
from __future__ import annotations
import math, itertools, os
from typing import Any, Callable, ClassVar, Sequence
from tinygrad.uop import UOp, Ops, ReduceArg, WindowArg, sym_eval, sym_canon, arg_key
from tinygrad.dtype import DType, dtypes, ConstType, least_upper_dtype, least_upper_float, to_dtype
from tinygrad.device import Device, Buffer
from tinygrad.helpers import prod, ceildiv
from codegen.lower import strides_for
from tinygrad.mixin import MovementMixin, ProcessingMixin
from tinygrad.engine import realize as _realize
from tinygrad.engine.realize import buffer_uop, realize_uops, plan_for, new_buffers
from tinygrad.engine.schedule import is_view_of_buffer

def _shape_arg(shape: tuple) -> tuple:
  """Accept f(2, 3) and f((2, 3))."""
  return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)

def _is_dim(s) -> bool:
  """A dimension size: a non-negative int, or a symbolic size (an expression of bound Variables)."""
  return (isinstance(s, int) and not isinstance(s, bool) and s >= 0) or (isinstance(s, UOp) and s.dtype == dtypes.index)

def _canon_shape(shape: tuple) -> tuple:
  return shape if all(type(s) is int for s in shape) else tuple(sym_canon(s) for s in shape)

def _concrete(shape: tuple) -> tuple[int, ...]:
  """shape with every symbolic size replaced by its bound value."""
  return tuple(sym_eval(s) for s in shape)

def _broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
  nd = max(len(s) for s in shapes)
  padded = [(1,) * (nd - len(s)) + tuple(s) for s in shapes]
  out = []
  for dims in zip(*padded):
    non1 = {d for d in dims if d != 1}
    if len(non1) > 1:
      raise ValueError(f"{op}: cannot broadcast shapes {' and '.join(str(tuple(s)) for s in shapes)}: dimension sizes {sorted(non1)} differ")
    out.append(non1.pop() if non1 else 1)
  return tuple(out)

def sum_acc_dtype(dt: DType) -> DType:
  if dtypes.is_unsigned(dt): return least_upper_dtype(dt, dtypes.uint32)
  if dtypes.is_int(dt) or dt == dtypes.bool: return least_upper_dtype(dt, dtypes.int32)
  return least_upper_dtype(dt, dtypes.float32)

def _np_to_dtype(arr) -> DType:
  return to_dtype(arr.dtype)

class Tensor(MovementMixin, ProcessingMixin):
  """A lazy n-dimensional array. Operations build a UOp graph; `realize()`, `.numpy()`, `.item()`, `.tolist()` compute it."""
  __slots__ = ("uop", "device", "_requires_grad", "grad", "__weakref__")
  __hash__ = object.__hash__
  training: ClassVar[bool] = False
  no_grad: ClassVar[bool] = False
  _seed: ClassVar[int] = 0

  def __init__(self, data: Any, device: str | tuple[str, ...] | None = None, dtype: DType | str | None = None, requires_grad: bool | None = None):
    if isinstance(device, (tuple, list)):  # created on the first device, then copied to all (replicated)
      s = Tensor(data, device[0], dtype).shard(device)
      self.uop, self.device, self.grad = s.uop, s.device, None
      self.requires_grad = requires_grad
      return
    if isinstance(data, os.PathLike):  # a file's bytes: a uint8 tensor on DISK, mapped, not read (runtime/disk.py)
      from runtime import disk
      data = disk.file_tensor(data, device, dtype)
      device, dtype = data.device, None
    device = Device.canonicalize(device)
    if device.startswith("DISK") and data is not None and not isinstance(data, (UOp, Tensor, bool, int, float)):
      raise TypeError(f"Tensor: cannot create a tensor from {type(data).__name__} on {device}: that would write it into the file. "
                      f"Write a file with Tensor(data).to({device!r}) or disk_tensor.assign(data); compute after .to('CPU')")
    dtype = to_dtype(dtype) if dtype is not None else None
    if isinstance(data, UOp): uop = data if dtype is None or data.dtype == dtype else data.cast(dtype)
    elif isinstance(data, Tensor): uop = data.uop if dtype is None else data.uop.cast(dtype)
    elif data is None: uop = buffer_uop(Buffer(device, 0, dtype or dtypes.default_float), (0,))
    elif isinstance(data, (bool, int, float)):
      dt = dtype or dtypes.from_py(data)
      uop = UOp.const(dt, data)
    elif isinstance(data, (list, tuple)): uop = _from_list(data, device, dtype)
    elif isinstance(data, (bytes, bytearray, memoryview)):
      import numpy as np
      uop = _from_numpy(np.frombuffer(bytes(data), dtype=np.uint8), device)
      if dtype is not None: uop = uop.cast(dtype)
    else:
      import numpy as np
      if isinstance(data, np.generic): data = np.asarray(data)
      if not isinstance(data, np.ndarray): raise TypeError(f"Tensor: cannot create a Tensor from {type(data).__name__} (expected a number, nested list, numpy array, bytes or Tensor)")
      uop = _from_numpy(data, device)
      if dtype is not None and dtype != uop.dtype: uop = uop.cast(dtype)
    self.uop, self.device, self.grad = uop, device, None
    self.requires_grad = requires_grad

  @staticmethod
  def _wrap(uop: UOp, device: str, requires_grad: bool | None = None) -> Tensor:
    t = object.__new__(Tensor)
    t.uop, t.device, t.grad, t._requires_grad = uop, device, None, None
    if requires_grad is not None: t.requires_grad = requires_grad
    return t
  def _new(self, uop: UOp) -> Tensor: return Tensor._wrap(uop, self.device)
  def _on_disk(self) -> bool: return isinstance(self.device, str) and self.device.startswith("DISK")

  # ---------------------------------------------------------------- autograd
  @property
  def requires_grad(self) -> bool | None: return self._requires_grad
  @requires_grad.setter
  def requires_grad(self, v: bool | None) -> None:
    self._requires_grad = v
    if v: _GRAD_TENSORS[id(self)] = self
  def requires_grad_(self, requires_grad: bool = True) -> Tensor:
    self.requires_grad = requires_grad
    return self
  def _grad_targets(self, only: Sequence[Tensor] | None = None) -> dict[UOp, list[Tensor]]:
    """The tensors to differentiate with respect to, keyed by the node standing for them in self's graph."""
    nodes = self.uop.toposort()
    in_graph = set(nodes)
    alias = {x.realized: x for x in nodes if x.realized is not None}  # realized after the graph was built
    out: dict[UOp, list[Tensor]] = {}
    for t in (only if only is not None else list(_GRAD_TENSORS.values())):
      if only is None and not t.requires_grad: continue
      node = t.uop if t.uop in in_graph else alias.get(t.uop)
      if node is not None: out.setdefault(node, []).append(t)
    return out
  def _root_grad(self, gradient: Tensor | None, op: str) -> Tensor:
    if gradient is None:
      if self.numel() != 1:
        raise RuntimeError(f"{op}: called on a tensor of shape {self.shape}; pass gradient= of that shape or reduce to a scalar first (e.g. .sum())")
      return Tensor.full(self.shape, 1.0, self.dtype if dtypes.is_float(self.dtype) else dtypes.default_float, self.device)
    if gradient.shape != self.shape: raise ValueError(f"{op}: gradient of shape {gradient.shape} for a tensor of shape {self.shape}")
    return gradient
  def backward(self, gradient: Tensor | None = None, retain_graph: bool = False) -> Tensor:
    """Accumulate d(self)/d(t) into t.grad for every tensor t with requires_grad in self's graph (lazily)."""
    from tinygrad.gradient import compute_gradient
    root_grad = self._root_grad(gradient, "backward")
    if id(self) in _BACKWARD_DONE:
      raise RuntimeError("backward: this graph was already differentiated by an earlier backward(); "
                         "pass retain_graph=True to the first call to backward through it twice")
    targets = self._grad_targets()
    if not targets: raise RuntimeError(f"backward: no tensor in the graph of this {self.shape} tensor requires grad")
    grads = compute_gradient(self.uop, root_grad, set(targets))
    for node, ts in targets.items():
      if (g := grads.get(node)) is None: continue
      for t in ts:
        g_t = g.cast(t.dtype) if g.dtype != t.dtype else g
        t.grad = g_t if t.grad is None else t.grad + g_t
    if not retain_graph: _BACKWARD_DONE[id(self)] = self
    return self
  def gradient(self, *targets: Tensor, gradient: Tensor | None = None) -> list[Tensor]:
    """d(self)/d(target) for each target, as lazy tensors (does not touch .grad)."""
    from tinygrad.gradient import compute_gradient
    root_grad = self._root_grad(gradient, "gradient")
    found = self._grad_targets(list(targets))
    grads = compute_gradient(self.uop, root_grad, set(found))
    out = []
    for t in targets:
      node = next((n for n, ts in found.items() if any(x is t for x in ts)), None)
      if node is None or node not in grads: raise RuntimeError(f"gradient: the target of shape {t.shape} is not in this tensor's graph")
      out.append(grads[node])
    return out
  @staticmethod
  def train(mode: bool = True) -> "_TrainMode": return _TrainMode(mode)
  @staticmethod
  def test() -> "_TrainMode": return _TrainMode(False)

  # ---------------------------------------------------------------- properties
  @property
  def shape(self) -> tuple[int, ...]: return self.uop.shape
  @property
  def dtype(self) -> DType: return self.uop.dtype
  @property
  def ndim(self) -> int: return len(self.shape)
  def numel(self) -> int: return prod(self.shape)
  def element_size(self) -> int: return self.dtype.itemsize
  def nbytes(self) -> int: return self.numel() * self.element_size()
  def is_floating_point(self) -> bool: return dtypes.is_float(self.dtype)
  def size(self, dim: int | None = None) -> int | tuple[int, ...]:
    return self.shape if dim is None else self.shape[self._axis("size", dim)]
  def __len__(self) -> int:
    if not self.shape: raise TypeError("len() of a 0-d tensor")
    return self.shape[0]
  @property
  def T(self) -> Tensor: return self.transpose()
  @property
  def lazydata(self) -> UOp: return self.uop

  # ---------------------------------------------------------------- realize and data out
  def realize(self, *lst: Tensor) -> Tensor:
    Tensor.realize_all([self, *lst])
    return self
  @staticmethod
  def realize_all(tensors: Sequence[Tensor]) -> None:
    if _PENDING:  # state updated lazily in place (BatchNorm running stats) is computed with the next realize
      tensors = list(tensors) + _PENDING
      _PENDING.clear()
    by_dev: dict[str | tuple[str, ...], list[Tensor]] = {}
    for t in tensors:
      if not _is_buffer(u := _resolved(t.uop)) and not (u.op is Ops.MULTI and all(_is_buffer(s) for s in u.src)):
        by_dev.setdefault(t.device, []).append(t)
    grad_nodes = _grad_nodes()
    for dev, ts in by_dev.items():
      if isinstance(dev, tuple):
        from tinygrad.multi import realize_multi
        done = realize_multi([t.uop for t in ts], dev)
      else: done = realize_uops([t.uop for t in ts], dev)
      for t, u in zip(ts, done):
        # a graph that reaches a tensor requiring grad is kept (its value is served from the realized buffer), so
        # backward() still works after .numpy(); anything else becomes its buffer and lets its history go
        if not grad_nodes or not _reaches(t.uop, grad_nodes):
          # a tensor requiring grad remembers (weakly) the node it was: graphs built before its realize reach it there
          if t.requires_grad and u is not t.uop: _REALIZED_FROM[u] = weakref.ref(t.uop)
          t.uop = u
        elif isinstance(dev, tuple): t.uop.realized = u
  def schedule_linear(self, *lst: Tensor) -> list:
    """The kernels realize() would run for these tensors, in order, without running them: a list of
    (CompiledKernel or BufferCopy, the buffers it reads and writes, output first). Compiles what is not cached."""
    out = []
    for t in (self, *lst):
      if _is_buffer(_resolved(t.uop)) or isinstance(t.device, tuple): continue
      plan, inputs, var_vals = plan_for([t.uop], t.device)
      slots = inputs + new_buffers(plan, t.device, var_vals)
      out += [(ck, [slots[i] for i in s]) for ck, s in plan.kernels]
    return out
  def linear_with_vars(self, *lst: Tensor) -> tuple[list, dict]:
    """schedule_linear and the values of the Variables its kernels take (the bound symbolic dimensions)."""
    var_vals: dict = {}
    for t in (self, *lst):
      if not _is_buffer(_resolved(t.uop)) and not isinstance(t.device, tuple): var_vals.update(plan_for([t.uop], t.device)[2])
    return self.schedule_linear(*lst), var_vals
  def _buffer(self) -> Buffer:
    """The realized, contiguous buffer holding this tensor's elements in order."""
    if isinstance(self.device, tuple): return self.to(self.device[0])._buffer()
    self.realize()
    if not _is_buffer(u := _resolved(self.uop)): u = _resolved(self.contiguous().realize().uop)
    return (u if u.op is Ops.BUFFER else u.src[0]).arg.buf
  def numpy(self):
    """The values as a new numpy array (a copy); symbolic sizes take their bound values."""
    return self._buffer().numpy().reshape(_concrete(self.shape))
  def item(self) -> ConstType:
    if self.numel() != 1: raise ValueError(f"item: a Tensor with {self.numel()} elements cannot be converted to a Python scalar (shape {self.shape})")
    return self._pyvalues().reshape(()).item()
  def _pyvalues(self):
    a = self.numpy()
    return a.astype("float32") if self.dtype == dtypes.bfloat16 else a
  def tolist(self) -> Any: return self._pyvalues().tolist()
  def data(self) -> memoryview:
    return memoryview(self.numpy()) if self.dtype != dtypes.bfloat16 else memoryview(self.numpy().view("uint16"))
  def __repr__(self) -> str:
    import numpy as np
    if self.numel() > 0: body = np.array2string(self._pyvalues(), separator=", ", threshold=1000, prefix="tensor(")
    else: body = f"[], size={self.shape}"
    extra = "" if self.dtype in (dtypes.float32, dtypes.int32, dtypes.bool) else f", dtype={self.dtype}"
    dev = "" if self.device == "CPU" else f", device='{self.device}'"
    return f"tensor({body}{extra}{dev})"
  def __bool__(self) -> bool:
    if self.numel() != 1: raise RuntimeError(f"bool: the truth value of a Tensor with {self.numel()} elements is ambiguous")
    return bool(self.item())
  def __iter__(self):
    if not self.shape: raise TypeError("iteration over a 0-d tensor")
    return (self[i] for i in range(self.shape[0]))

  def detach(self) -> Tensor: return self._new(UOp(Ops.DETACH, self.dtype, (self.uop,)))
  def contiguous(self) -> Tensor: return self._new(UOp(Ops.CONTIGUOUS, self.dtype, (self.uop,)))
  def contiguous_backward(self) -> Tensor: return self._new(UOp(Ops.CONTIGUOUS_BACKWARD, self.dtype, (self.uop,)))
  def clone(self) -> Tensor: return self.contiguous()
  def to(self, device: str | None) -> Tensor:
    if isinstance(device, (tuple, list)): return self.shard(device)
    device = Device.canonicalize(device)
    if device == self.device: return self
    if isinstance(self.device, tuple):  # gather the shards onto one device
      self.realize()
      m = _resolved(self.uop)
      if m.arg.axis is None:  # replicated: one copy is the whole tensor
        i = m.arg.devices.index(device) if device in m.arg.devices else 0
        return Tensor._wrap(m.src[i], m.arg.devices[i]).to(device)
      pieces = [Tensor._wrap(s, d).to(device) for s, d in zip(m.src, m.arg.devices)]
      return pieces[0].cat(*pieces[1:], dim=m.arg.axis)
    if self._on_disk():  # a lazy graph over disk views: copy the views, compute on `device` (runtime/disk.py)
      from runtime import disk
      if (moved := disk.to(self, device)) is not None: return moved
    # the source is computed on its own device first; the COPY is then a transfer of one whole buffer
    src = self if _is_buffer(_resolved(self.uop)) and _resolved(self.uop).size == self.numel() else self.contiguous()
    src.realize()
    b = _resolved(src.uop)
    b = b if b.op is Ops.BUFFER else b.src[0]
    copy = UOp(Ops.COPY, self.dtype, (b,), device)
    return Tensor._wrap(copy if copy.shape == self.shape else UOp(Ops.RESHAPE, self.dtype, (copy,), self.shape), device)
  def shard(self, devices: tuple[str, ...] | list[str], axis: int | None = None) -> Tensor:
    """This tensor split along axis over devices (each holds one contiguous piece), or copied to every device
    (axis=None, replicated). Ops on sharded tensors run on every device; reductions over the sharded axis combine
    the devices' partial results (tinygrad/multi.py)."""
    from tinygrad.multi import MultiArg, shard_bounds
    devs = tuple(Device.canonicalize(d) for d in devices)
    if isinstance(self.device, tuple): raise RuntimeError(f"shard: the tensor is already sharded over {self.device}; gather it with .to(device) first")
    if len(set(devs)) != len(devs) or not devs: raise ValueError(f"shard: devices {devs} must be distinct and at least one")
    if axis is None: arg = MultiArg(None, devs, ((0, 0),) * len(devs))
    else:
      axis = self._axis("shard", axis)
      if self.shape[axis] < len(devs): raise ValueError(f"shard: axis {axis} of shape {self.shape} has fewer than {len(devs)} elements")
      arg = MultiArg(axis, devs, shard_bounds(self.shape[axis], len(devs)))
    pieces = [self if axis is None else self.shrink(tuple(b if i == axis else None for i in range(self.ndim))) for b in arg.bounds]
    pieces = [p.to(d) for p, d in zip(pieces, devs)]
    return Tensor._wrap(UOp(Ops.MULTI, self.dtype, tuple(p.uop for p in pieces), arg), devs, self.requires_grad)
  def shard_(self, devices: tuple[str, ...] | list[str], axis: int | None = None) -> Tensor:
    """shard in place: this Tensor object (a parameter an optimizer holds) becomes the sharded tensor."""
    s = self.shard(devices, axis)
    self.uop, self.device = s.uop, s.device
    return self
  def to_(self, device: str | None) -> Tensor:
    new = self.to(device)
    self.uop, self.device = new.uop, new.device
    return self

  # ---------------------------------------------------------------- creation
  @staticmethod
  def full(shape: tuple[int, ...] | int, fill_value: ConstType, dtype: DType | str | None = None, device: str | None = None, **kw) -> Tensor:
    shape = (shape,) if isinstance(shape, (int, UOp)) else _canon_shape(tuple(shape))
    if not all(_is_dim(s) for s in shape): raise ValueError(f"full: shape {shape} must be non-negative integers or bound Variables")
    dt = to_dtype(dtype) if dtype is not None else dtypes.from_py(fill_value)
    return Tensor._wrap(_const_view(dt, fill_value, shape), _canonical(device), kw.get("requires_grad"))
  @staticmethod
  def zeros(*shape, dtype=None, device=None, **kw) -> Tensor:
    return Tensor.full(_shape_arg(shape), 0.0, dtype or dtypes.default_float, device, **kw)
  @staticmethod
  def ones(*shape, dtype=None, device=None, **kw) -> Tensor:
    return Tensor.full(_shape_arg(shape), 1.0, dtype or dtypes.default_float, device, **kw)
  @staticmethod
  def empty(*shape, dtype=None, device=None, **kw) -> Tensor:
    shape, device = _shape_arg(shape), _canonical(device)
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    if isinstance(device, tuple): return Tensor.empty(shape, dtype=dt, device=device[0]).shard(device)
    return Tensor._wrap(buffer_uop(Buffer(device, prod(shape), dt), shape), device, kw.get("requires_grad"))
  def full_like(self, fill_value: ConstType, **kw) -> Tensor:
    return Tensor.full(self.shape, fill_value, kw.pop("dtype", self.dtype), kw.pop("device", self.device), **kw)
  def zeros_like(self, **kw) -> Tensor: return self.full_like(0, **kw)
  def ones_like(self, **kw) -> Tensor: return self.full_like(1, **kw)
  @staticmethod
  def arange(start: int | float, stop: int | float | None = None, step: int | float = 1, dtype=None, device=None, **kw) -> Tensor:
    if stop is None: start, stop = 0, start
    if step == 0: raise ValueError("arange: step must not be zero")
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float if any(isinstance(x, float) for x in (start, stop, step)) else dtypes.default_int
    n = max(0, math.ceil((stop - start) / step))
    iota = Tensor._wrap(UOp(Ops.IOTA, dt, (), n), _canonical(device), kw.get("requires_grad"))
    return iota * step + start if (step, start) != (1, 0) else iota
  @staticmethod
  def linspace(start: int | float, stop: int | float, steps: int, dtype=None, device=None) -> Tensor:
    if steps < 0: raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    if steps == 1: return Tensor.full((1,), start, dt, device)
    iota = Tensor._wrap(UOp(Ops.IOTA, dtypes.float64 if dt == dtypes.float64 else dtypes.float32, (), steps), _canonical(device))
    return (iota * ((stop - start) / (steps - 1)) + start).cast(dt)
  @staticmethod
  def eye(n: int, m: int | None = None, dtype=None, device=None, **kw) -> Tensor:
    m = n if m is None else m
    if n < 0 or m < 0: raise ValueError(f"eye: sizes must be non-negative, got n={n}, m={m}")
    r, c = Tensor.arange(n, device=device).reshape(n, 1), Tensor.arange(m, device=device).reshape(1, m)
    out = (r == c).cast(to_dtype(dtype) if dtype is not None else dtypes.default_float)
    out.requires_grad = kw.get("requires_grad")
    return out

  # random numbers: a counter-based hash of (seed, call counter, element index) computed in a kernel. The counter is a
  # 1-element tensor per device that each call advances lazily (an assign), so a TinyJit replay advances it too and a
  # repeated training step reuses one plan.
  @staticmethod
  def manual_seed(seed: int = 0) -> None:
    Tensor._seed = seed
    _RNG_COUNTERS.clear()
  @staticmethod
  def _random_bits(shape: tuple[int, ...], device: str | None) -> Tensor:
    device = _canonical(device)
    if (counter := _RNG_COUNTERS.get(device)) is None: counter = _RNG_COUNTERS[device] = Tensor([0], device=device, dtype=dtypes.uint32)
    n = prod(shape)
    k0, k1 = (Tensor._seed * 0x9E3779B1 + 0x85EBCA6B) & 0xFFFFFFFF, Tensor._wrap(counter.uop, device).expand(n)  # not counter: expand to (1,) is counter itself
    counter.assign(counter + 1)
    idx = Tensor._wrap(UOp(Ops.IOTA, dtypes.uint32, (), n), device)
    return _mix32(_mix32(idx ^ k0) + k1 * 0x2545F491 ^ k0).reshape(shape)
  @staticmethod
  def rand(*shape, dtype=None, device=None, **kw) -> Tensor:
    shape = _shape_arg(shape)
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    out = ((Tensor._random_bits(shape, device) >> 8).cast(dtypes.float32) * (1.0 / (1 << 24))).cast(dt)
    out.requires_grad = kw.get("requires_grad")
    return out
  def rand_like(self, **kw) -> Tensor: return Tensor.rand(self.shape, dtype=kw.pop("dtype", self.dtype), device=kw.pop("device", self.device), **kw)
  @staticmethod
  def randn(*shape, dtype=None, device=None, **kw) -> Tensor:
    shape = _shape_arg(shape)
    u = Tensor.rand((2,) + shape, dtype=dtypes.float32, device=device)
    # Box-Muller: sqrt(-2 ln(1-u1)) * cos(2 pi u2); 1-u1 lies in (0, 1]
    out = ((1 - u[0]).log() * -2).sqrt() * (u[1] * (2 * math.pi)).cos()
    out = out.cast(to_dtype(dtype) if dtype is not None else dtypes.default_float)
    out.requires_grad = kw.get("requires_grad")
    return out
  def randn_like(self, **kw) -> Tensor: return Tensor.randn(self.shape, dtype=kw.pop("dtype", self.dtype), device=kw.pop("device", self.device), **kw)
  @staticmethod
  def randint(*shape, low: int = 0, high: int = 10, dtype=dtypes.int32, device=None) -> Tensor:
    if high <= low: raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    shape = _shape_arg(shape)
    return (Tensor.rand(shape, dtype=dtypes.float64, device=device) * (high - low)).floor().cast(to_dtype(dtype)) + low
  @staticmethod
  def uniform(*shape, low: float = 0.0, high: float = 1.0, dtype=None, device=None, **kw) -> Tensor:
    dt = to_dtype(dtype) if dtype is not None else dtypes.default_float
    out = (Tensor.rand(*shape, dtype=dtypes.float32, device=device) * (high - low) + low).cast(dt)
    out.requires_grad = kw.get("requires_grad")
    return out
  @staticmethod
  def normal(*shape, mean: float = 0.0, std: float = 1.0, dtype=None, device=None, **kw) -> Tensor:
    out = (std * Tensor.randn(*shape, dtype=dtype, device=device)) + mean
    out.requires_grad = kw.get("requires_grad")
    return out
  @staticmethod
  def scaled_uniform(*shape, **kw) -> Tensor:
    b = prod(_shape_arg(shape)) ** -0.5
    return Tensor.uniform(*shape, low=-b, high=b, **kw)
  @staticmethod
  def glorot_uniform(*shape, **kw) -> Tensor:
    s = _shape_arg(shape)
    b = (6 / (s[0] + prod(s[1:]))) ** 0.5
    return Tensor.uniform(*shape, low=-b, high=b, **kw)
  @staticmethod
  def kaiming_uniform(*shape, a: float = 0.01, **kw) -> Tensor:
    s = _shape_arg(shape)
    bound = math.sqrt(3.0) * math.sqrt(2.0 / (1 + a ** 2)) / math.sqrt(prod(s[1:]))
    return Tensor.uniform(*shape, low=-bound, high=bound, **kw)
  @staticmethod
  def kaiming_normal(*shape, a: float = 0.01, **kw) -> Tensor:
    s = _shape_arg(shape)
    std = math.sqrt(2.0 / (1 + a ** 2)) / math.sqrt(prod(s[1:]))
    return Tensor.normal(*shape, mean=0.0, std=std, **kw)

  # ---------------------------------------------------------------- movement (views: never copy)
  def _axis(self, op: str, axis: int, ndim: int | None = None) -> int:
    nd = self.ndim if ndim is None else ndim
    if not isinstance(axis, int): raise TypeError(f"{op}: axis must be an int, got {type(axis).__name__}")
    if not -max(nd, 1) <= axis < max(nd, 1): raise IndexError(f"{op}: axis {axis} is out of range for shape {self.shape} (valid: {-max(nd, 1)}..{max(nd, 1) - 1})")
    return axis + nd if axis < 0 else axis
  def reshape(self, shape, *args) -> Tensor:
    shape = _shape_arg((shape,) + args)
    if all(type(s) is int and s >= 0 for s in shape) and all(type(s) is int for s in self.shape): return self._reshape_to(shape)
    # None (keep the size), -1 (infer it) or symbolic sizes
    shape = _canon_shape(tuple(self.shape[i] if s is None else s for i, s in enumerate(shape)))
    if sum(1 for s in shape if s == -1) > 1: raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
    if not all(s == -1 or _is_dim(s) for s in shape): raise ValueError(f"reshape: invalid shape {shape}")
    if any(isinstance(s, UOp) for s in self.shape + shape):  # symbolic: the sizes must agree for the bound values
      if -1 in shape: raise ValueError(f"reshape: -1 cannot be combined with symbolic sizes, got {shape} for {self.shape}")
      if sym_eval(prod(shape)) != sym_eval(self.numel()):
        raise ValueError(f"reshape: cannot reshape {self.shape} ({sym_eval(self.numel())} elements) to {shape} ({sym_eval(prod(shape))} elements)")
      return self if shape == self.shape else self._new(UOp(Ops.RESHAPE, self.dtype, (self.uop,), shape))
    if -1 in shape:
      known = prod(s for s in shape if s != -1)
      if known == 0 or self.numel() % known: raise ValueError(f"reshape: cannot reshape {self.shape} ({self.numel()} elements) to {shape}")
      shape = tuple(self.numel() // known if s == -1 else s for s in shape)
    return self._reshape_to(shape)
  def _reshape_to(self, shape: tuple[int, ...]) -> Tensor:
    """The reshape to concrete non-negative sizes, checked against the element count."""
    if prod(shape) != self.numel():
      raise ValueError(f"reshape: cannot reshape {self.shape} ({self.numel()} elements) to {shape} ({prod(shape)} elements)")
    if shape == self.shape: return self
    if self._on_disk():  # a disk buffer stays one buffer node (runtime/disk.py)
      from runtime import disk
      if (v := disk.reshape(self, shape)) is not None: return v
    return self._new(UOp(Ops.RESHAPE, self.dtype, (self.uop,), shape))
  def view(self, shape, *args) -> Tensor: return self.reshape(shape, *args)
  def permute(self, order, *args) -> Tensor:
    order = tuple(self._axis("permute", a) for a in _shape_arg((order,) + args))
    if sorted(order) != list(range(self.ndim)): raise ValueError(f"permute: {order} is not a permutation of the {self.ndim} axes of {self.shape}")
    return self if order == tuple(range(self.ndim)) else self._new(UOp(Ops.PERMUTE, self.dtype, (self.uop,), order))
  def expand(self, shape, *args) -> Tensor:
    shape = _canon_shape(_shape_arg((shape,) + args))
    if len(shape) < self.ndim: raise ValueError(f"expand: cannot expand {self.shape} to fewer dimensions {shape}")
    src = (1,) * (len(shape) - self.ndim) + self.shape
    new = tuple(s if n == -1 else n for s, n in zip(src, shape))
    for s, n in zip(src, new):
      if s != n and s != 1: raise ValueError(f"expand: cannot expand {self.shape} to {shape}: only size-1 dimensions can grow")
    x = self.reshape(src) if src != self.shape else self
    return x if new == x.shape else x._new(UOp(Ops.EXPAND, self.dtype, (x.uop,), new))
  def _broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
    return self if self.shape == shape else self.expand(shape)
  def shrink(self, arg) -> Tensor:
    if len(arg) != self.ndim: raise ValueError(f"shrink: {len(arg)} ranges for {self.ndim} dims of {self.shape}")
    arg = tuple((0, s) if a is None else tuple(a) for a, s in zip(arg, self.shape))
    for (b, e), s in zip(arg, self.shape):
      if not 0 <= sym_eval(b) <= sym_eval(e) <= sym_eval(s): raise ValueError(f"shrink: range {(b, e)} does not fit in a dimension of size {s} (shape {self.shape})")
      # a jitted replay binds other values without building the graph again: the range must fit for all of them
      if any(isinstance(x, UOp) for x in (b, e, s)) and not all(_never_negative(x) for x in (b, e - b, s - e)):
        raise ValueError(f"shrink: range {(b, e)} fits in the dimension of size {s} for the bound values, not for every value of "
                         f"its Variables' ranges (shape {self.shape}); narrow the Variable's range (Variable(name, min, max))")
    if all(a == (0, s) for a, s in zip(arg, self.shape)): return self
    if self._on_disk():  # a byte range of a disk buffer is a new buffer view (runtime/disk.py)
      from runtime import disk
      if (v := disk.shrink(self, arg)) is not None: return v
    return self._new(UOp(Ops.SHRINK, self.dtype, (self.uop,), arg))
  def pad(self, padding, mode: str = "constant", value: ConstType = 0.0) -> Tensor:
    """Pad with `value` (mode "constant"; a negative padding crops), or with the tensor's own elements: mirrored without
    the edge ("reflect"), the edge repeated ("replicate") or the other end ("circular"), as torch.nn.functional.pad."""
    if mode not in ("constant", "reflect", "replicate", "circular"):
      raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    if all(isinstance(p, int) for p in padding):  # torch style: (left, right, top, bottom, ...) from the last dim
      if len(padding) % 2 or len(padding) // 2 > self.ndim: raise ValueError(f"pad: flat padding {padding} needs pairs for at most {self.ndim} dims")
      pairs = [(0, 0)] * (self.ndim - len(padding) // 2) + [tuple(padding[i:i + 2]) for i in range(0, len(padding), 2)][::-1]
    else:
      if len(padding) != self.ndim: raise ValueError(f"pad: {len(padding)} (before, after) pairs for {self.ndim} dims of {self.shape}")
      pairs = [(0, 0) if p is None else tuple(p) for p in padding]
    if mode != "constant": return self._pad_from_self(pairs, mode)
    # negative padding crops (a symbolic padding is never negative)
    def crop(v): return max(0, -v) if isinstance(v, int) else 0
    x = self.shrink(tuple((crop(b), s - crop(a)) for (b, a), s in zip(pairs, self.shape)))
    pos = tuple((b + crop(b), a + crop(a)) for b, a in pairs)
    if all(p == (0, 0) for p in pos): return x
    out = x._new(UOp(Ops.PAD, x.dtype, (x.uop,), pos))
    if value == 0: return out
    mask = Tensor.full(x.shape, True, dtypes.bool, x.device).pad(pos)
    return mask.where(out, value)
  def _pad_from_self(self, pairs: list, mode: str) -> Tensor:
    """pad's reflect, replicate and circular modes: each padded dim is the concatenation of shrunk (and for reflect,
    flipped) pieces of itself, so gradients flow back to the elements copied."""
    x = self
    for dim, ((b, a), size) in enumerate(zip(pairs, self.shape)):
      if not (isinstance(b, int) and isinstance(a, int) and b >= 0 and a >= 0):
        raise ValueError(f"pad: mode {mode!r} needs non-negative int padding, got {(b, a)} for dim {dim} of {self.shape}")
      if b == a == 0: continue
      if not isinstance(size, int): raise NotImplementedError(f"pad: mode {mode!r} along dim {dim} of symbolic size {size} is not supported")
      limit = size - 1 if mode == "reflect" else size if mode == "circular" else None
      if size == 0 or (limit is not None and max(b, a) > limit):
        raise ValueError(f"pad: mode {mode!r} pads dim {dim} of size {size} by at most {limit if size else 0} on a side, got {(b, a)}")
      def piece(lo: int, hi: int) -> Tensor: return x.shrink(tuple((lo, hi) if i == dim else None for i in range(x.ndim)))
      def edge(at: int, n: int) -> Tensor: return piece(at, at + 1).expand(tuple(n if i == dim else s for i, s in enumerate(x.shape)))
      if mode == "reflect": before, after = piece(1, b + 1).flip(dim), piece(size - 1 - a, size - 1).flip(dim)
      elif mode == "circular": before, after = piece(size - b, size), piece(0, a)
      else: before, after = edge(0, b), edge(size - 1, a)
      x = before.cat(x, after, dim=dim)
    return x
  def flip(self, axis, *args) -> Tensor:
    axes = {self._axis("flip", a) for a in _shape_arg((axis,) + args)}
    return self._new(UOp(Ops.FLIP, self.dtype, (self.uop,), tuple(i in axes for i in range(self.ndim)))) if axes else self
  def squeeze(self, dim: int | None = None) -> Tensor:
    if dim is None: return self.reshape(tuple(s for s in self.shape if s != 1))
    d = self._axis("squeeze", dim)
    return self if not self.shape or self.shape[d] != 1 else self.reshape(self.shape[:d] + self.shape[d + 1:])
  def unsqueeze(self, dim: int) -> Tensor:
    d = self._axis("unsqueeze", dim, self.ndim + 1)
    return self.reshape(self.shape[:d] + (1,) + self.shape[d:])
  def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if not self.shape: return self.reshape(1)
    s, e = self._axis("flatten", start_dim), self._axis("flatten", end_dim)
    return self.reshape(self.shape[:s] + (prod(self.shape[s:e + 1]),) + self.shape[e + 1:])
  def unflatten(self, dim: int, sizes: tuple[int, ...]) -> Tensor:
    d = self._axis("unflatten", dim)
    return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])
  def transpose(self, dim0: int = 1, dim1: int = 0) -> Tensor:
    if self.ndim < 2 and (dim0, dim1) == (1, 0): return self
    order = list(range(self.ndim))
    a, b = self._axis("transpose", dim0), self._axis("transpose", dim1)
    order[a], order[b] = order[b], order[a]
    return self.permute(order)
  def _stride(self, dim: int, step: int) -> Tensor:
    """Every step-th element along dim, starting at 0."""
    if step == 1: return self
    n = ceildiv(self.shape[dim], step)
    x = self.pad(tuple((0, n * step - s) if i == dim else (0, 0) for i, s in enumerate(self.shape)))
    x = x.reshape(self.shape[:dim] + (n, step) + self.shape[dim + 1:])
    x = x.shrink(tuple((0, 1) if i == dim + 1 else None for i in range(x.ndim)))
    return x.reshape(self.shape[:dim] + (n,) + self.shape[dim + 1:])

  def __getitem__(self, indices) -> Tensor:
    if not isinstance(indices, tuple): indices = (indices,)
    if any(isinstance(i, (Tensor, list)) for i in indices): return self._getitem_advanced(indices)
    n_real = sum(1 for i in indices if i is not None and i is not Ellipsis)
    if sum(1 for i in indices if i is Ellipsis) > 1: raise IndexError("getitem: an index can only have a single ellipsis")
    if n_real > self.ndim: raise IndexError(f"getitem: too many indices ({n_real}) for a tensor of shape {self.shape}")
    indices = _expand_ellipsis(indices, self.ndim)
    # every dim's range first, then one flip (negative steps), one shrink and the strides: one op of each kind, not one per
    # index (m[0] took 18 us)
    rngs: list = [None] * self.ndim
    flips, strides = [], []
    for dim, ix in enumerate(i for i in indices if i is not None):
      s = self.shape[dim]
      if isinstance(ix, bool) or not isinstance(ix, (int, slice)):
        try: ix = int(ix)  # numpy integers
        except TypeError: raise IndexError(f"getitem: unsupported index {ix!r} (use ints, slices, None, ..., or Tensors)") from None
      if isinstance(ix, int):
        if not -s <= ix < s: raise IndexError(f"getitem: index {ix} is out of bounds for dimension {dim} with size {s} (shape {self.shape})")
        ix = ix + s if ix < 0 else ix
        rngs[dim] = (ix, ix + 1)
      elif (rng := _symbolic_slice(ix, s, "getitem")) is not None: rngs[dim] = rng  # evaluated with the bound value
      elif ix != slice(None):
        start, stop, step = ix.indices(s)
        n = len(range(start, stop, step))
        if step < 0:
          flips.append(dim)
          start, step = s - 1 - start, -step
        rngs[dim] = (start, start + (n - 1) * step + 1) if n else (0, 0)
        if n and step > 1: strides.append((dim, step))
    x = self.flip(*flips) if flips else self
    x = x.shrink(tuple(rngs)) if any(r is not None for r in rngs) else x
    for dim, step in strides: x = x._stride(dim, step)
    # drop integer-indexed dims, insert None dims
    shape_out, d = [], 0
    for ix in indices:
      if ix is None: shape_out.append(1)
      elif isinstance(ix, slice): shape_out.append(x.shape[d]); d += 1
      else: d += 1
    return x.reshape(tuple(shape_out))

  def _getitem_advanced(self, indices) -> Tensor:
    """numpy-style advanced indexing: integer Tensors or lists, and boolean masks, mixed with ints, slices, None and
    `...`. The index tensors broadcast together; their dims replace the indexed dims where those were adjacent, and
    go first otherwise. Each element is one gather (a one-hot reduction the compiler folds into a single load)."""
    idx: list = []
    for i in indices:
      if isinstance(i, list): i = Tensor(i, device=self.device)
      if isinstance(i, Tensor) and i.dtype == dtypes.bool:  # a mask selects along as many dims as it has
        if i.ndim == 0: raise IndexError("getitem: a 0-d boolean index is not supported; use where()")
        nz = i.nonzero()
        idx.extend(nz[:, k] for k in range(i.ndim))
      elif isinstance(i, Tensor) and not dtypes.is_int(i.dtype): raise IndexError(f"getitem: tensor indices must be integers or booleans, got {i.dtype}")
      else: idx.append(i)
    basic, tpos, tens, out_dim = [], [], [], 0
    for i in idx:  # the tensor-indexed dims stay whole in the basic indexing; remember where they land
      if isinstance(i, Tensor): basic.append(slice(None)); tpos.append(out_dim); tens.append(i); out_dim += 1
      elif i is Ellipsis:
        n_real = sum(1 for j in idx if j is not None and j is not Ellipsis)
        basic.append(i); out_dim += self.ndim - n_real
      else:
        basic.append(i)
        out_dim += 0 if i is not None and not isinstance(i, slice) else 1
    x = self[tuple(basic)]
    sizes = [x.shape[p] for p in tpos]
    shape = _broadcast_shape("getitem", *(t.shape for t in tens))
    it = dtypes.int64 if prod(sizes) >= 2**31 else dtypes.int32
    flat = None
    for t, n, st in zip(tens, sizes, strides_for(tuple(sizes))):
      t = t.cast(it)
      t = (t < 0).where(t + n, t)._broadcast_to(shape)
      flat = t * st if flat is None else flat + t * st
    rest = [d for d in range(x.ndim) if d not in tpos]
    out = x.permute(tuple(tpos) + tuple(rest)).reshape((prod(sizes),) + tuple(x.shape[d] for d in rest)).gather_rows(flat)
    if tpos != list(range(tpos[0], tpos[0] + len(tpos))) or tpos[0] == 0: return out  # not adjacent: broadcast dims first
    nb = len(shape)
    order = list(range(nb, nb + tpos[0])) + list(range(nb)) + list(range(nb + tpos[0], out.ndim))
    return out.permute(tuple(order))

  def __setitem__(self, indices, value) -> None:
    """self[indices] = value (any index __getitem__ takes): self stands for the updated tensor from now on, computed
    with the next realize. value broadcasts to the indexed shape; with repeated indices the last write wins."""
    if self._on_disk():  # a file: write the view's bytes now (runtime/disk.py)
      self[indices].assign(value)
      return
    pos = Tensor.arange(self.numel(), device=self.device).reshape(self.shape)[indices]  # flat positions written
    v = value if isinstance(value, Tensor) else Tensor(value, device=self.device, dtype=self.dtype)
    v = v.cast(self.dtype)._broadcast_to(_broadcast_shape("setitem", pos.shape, v.shape))
    if v.shape != pos.shape: raise ValueError(f"setitem: cannot assign a value of shape {v.shape} to an index of shape {pos.shape}")
    if (box := _box(indices, self.shape)) is not None:  # ints and step-1 slices: pad the value into place
      region = tuple(hi - lo for lo, hi in box)
      pads = tuple((lo, n - hi) for (lo, hi), n in zip(box, self.shape))
      mask = Tensor.ones(region, dtype=dtypes.bool, device=self.device).pad(pads, value=False)
      self.assign(mask.where(v.reshape(region).pad(pads), self))
      return
    flat, k = self.reshape(self.numel()), pos.numel()
    if k == 0: return
    # one-hot scatter: element p takes the value of the last selected position equal to p
    hit = pos.reshape(k, 1) == Tensor.arange(self.numel(), device=self.device).reshape(1, -1)
    last = (hit * Tensor.arange(1, k + 1, device=self.device).reshape(k, 1)).max(0)  # 1 + index of the last write, 0 if none
    sel = (Tensor.arange(1, k + 1, device=self.device).reshape(k, 1) == last.reshape(1, -1)) & hit
    new = sel.where(v.reshape(k, 1), 0).sum(0, dtype=self.dtype)
    self.assign((last > 0).where(new, flat).reshape(self.shape))

  def gather_rows(self, idx: Tensor) -> Tensor:
    """self[idx] for an integer tensor idx selecting along dim 0 (one-hot reduction: a single kernel)."""
    n = self.shape[0]
    i = idx.cast(dtypes.int32)
    i = (i < 0).where(i + n, i)
    onehot = i.reshape(idx.shape + (1,)) == Tensor.arange(n, device=self.device)
    rest = self.shape[1:]
    m = onehot.reshape(idx.shape + (n,) + (1,) * len(rest))
    return m.where(self.reshape((1,) * idx.ndim + self.shape), 0).sum(idx.ndim, dtype=self.dtype) if n else \
      Tensor.zeros(idx.shape + rest, dtype=self.dtype, device=self.device)

  @staticmethod
  def _cat_check(op: str, tensors: Sequence[Tensor], dim: int) -> None:
    t0 = tensors[0]
    for t in tensors[1:]:
      if t.ndim != t0.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, t0.shape)) if i != dim):
        raise ValueError(f"{op}: shapes {t0.shape} and {t.shape} must match except in dimension {dim}")
  def cat(self, *args: Tensor, dim: int = 0) -> Tensor:
    tensors = [self, *args]
    if self.ndim == 0: raise ValueError("cat: zero-dimensional tensors cannot be concatenated")
    dim = self._axis("cat", dim)
    Tensor._cat_check("cat", tensors, dim)
    dt = least_upper_dtype(*(t.dtype for t in tensors))
    total, offs = sum(t.shape[dim] for t in tensors), list(itertools.accumulate([0] + [t.shape[dim] for t in tensors]))
    out: Tensor | None = None
    for t, o in zip(tensors, offs):
      pads = tuple((o, total - o - t.shape[dim]) if i == dim else (0, 0) for i in range(self.ndim))
      p = t.cast(dt).pad(pads)
      if out is None: out = p; continue
      mask = Tensor.full(t.shape, True, dtypes.bool, t.device).pad(pads)
      out = mask.where(p, out)
    return out
  @staticmethod
  def stack(*args, dim: int = 0) -> Tensor:
    tensors = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    if not tensors: raise ValueError("stack: expects at least one tensor")
    d = tensors[0]._axis("stack", dim, tensors[0].ndim + 1)
    for t in tensors[1:]:
      if t.shape != tensors[0].shape: raise ValueError(f"stack: all tensors must have the same shape, got {tensors[0].shape} and {t.shape}")
    return tensors[0].unsqueeze(d).cat(*[t.unsqueeze(d) for t in tensors[1:]], dim=d)
  def repeat(self, repeats, *args) -> Tensor:
    reps = _shape_arg((repeats,) + args)
    if len(reps) < self.ndim: raise ValueError(f"repeat: {len(reps)} repeats for {self.ndim} dims")
    base = (1,) * (len(reps) - self.ndim) + self.shape
    x = self.reshape(tuple(v for b in base for v in (1, b)))
    x = x.expand(tuple(v for r, b in zip(reps, base) for v in (r, b)))
    return x.reshape(tuple(r * b for r, b in zip(reps, base)))
  def split(self, sizes: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    dim = self._axis("split", dim)
    if isinstance(sizes, int): sizes = [min(sizes, self.shape[dim] - i) for i in range(0, max(1, self.shape[dim]), max(1, sizes))]
    if sum(sizes) != self.shape[dim]: raise ValueError(f"split: sizes {list(sizes)} do not add up to {self.shape[dim]}")
    offs = list(itertools.accumulate([0] + list(sizes)))
    return tuple(self.shrink(tuple((offs[i], offs[i + 1]) if d == dim else None for d in range(self.ndim))) for i in range(len(sizes)))
  def chunk(self, chunks: int, dim: int = 0) -> list[Tensor]:
    dim = self._axis("chunk", dim)
    return list(self.split(ceildiv(self.shape[dim], chunks) if self.shape[dim] else 1, dim))

  # ---------------------------------------------------------------- elementwise
  def _unary(self, op: Ops) -> Tensor: return self._new(UOp(op, self.dtype, (self.uop,)))
  def _const_like(self, v: ConstType, dtype: DType | None = None) -> Tensor:
    return Tensor.full(self.shape, v, dtype or self.dtype, self.device)
  def _broadcasted(self, y, reverse: bool = False, op: str = "op", match_dtype: bool = True) -> tuple[Tensor, Tensor]:
    x: Tensor = self
    if not isinstance(y, Tensor):
      if isinstance(y, UOp):  # a symbolic size (mean over a Variable-sized axis): its bound value, computed in the kernel
        if y.dtype != dtypes.index: raise TypeError(f"{op}: cannot combine a Tensor with a UOp")
        y = Tensor._wrap(y.cast(x.dtype if dtypes.is_float(x.dtype) else dtypes.default_int), x.device)
      elif not isinstance(y, (bool, int, float)):
        import numpy as np
        if isinstance(y, (list, tuple, np.ndarray)): y = Tensor(y, device=self.device)
        elif isinstance(y, np.generic): y = y.item()
        else: raise TypeError(f"{op}: unsupported operand type {type(y).__name__}")
    if not isinstance(y, Tensor):
      # python scalars are weak: they take the tensor's dtype unless a float meets an int/bool tensor
      if dtypes.is_float(x.dtype) or (dtypes.is_int(x.dtype) and isinstance(y, int) and not isinstance(y, bool)): ydt = x.dtype
      elif x.dtype == dtypes.bool and isinstance(y, bool): ydt = dtypes.bool
      else: ydt = dtypes.from_py(y)
      if ydt == x.dtype:  # the common case: a constant view shaped like x, built directly
        c = Tensor._wrap(_const_view(ydt, y, x.shape), x.device)
        return (c, x) if reverse else (x, c)
      y = Tensor._wrap(UOp.const(ydt, y), x.device)
    if x.device != y.device:
      # a tensor on one of a sharded tensor's devices (a learning rate) joins it: it is copied to every device
      multi, other = (x.device, y.device) if isinstance(x.device, tuple) else (y.device, x.device)
      if not isinstance(multi, tuple) or isinstance(other, tuple) or other not in multi:
        raise RuntimeError(f"{op}: tensors are on different devices {x.device} and {y.device}")
      x, y = Tensor._wrap(x.uop, multi), Tensor._wrap(y.uop, multi)
    if match_dtype and x.dtype != y.dtype:
      dt = least_upper_dtype(x.dtype, y.dtype)
      x, y = x.cast(dt), y.cast(dt)
    if reverse: x, y = y, x
    if x.shape != y.shape:
      shape = _broadcast_shape(op, x.shape, y.shape)
      x, y = x._broadcast_to(shape), y._broadcast_to(shape)
    return x, y
  def _binop(self, op: Ops, y, reverse: bool = False, name: str = "op") -> Tensor:
    a, b = self._broadcasted(y, reverse, name)
    return a._new(UOp(op, dtypes.bool if op in (Ops.CMPLT, Ops.CMPNE) else a.dtype, (a.uop, b.uop)))

  def add(self, x, reverse=False) -> Tensor: return self._binop(Ops.ADD, x, reverse, "add")
  def mul(self, x, reverse=False) -> Tensor: return self._binop(Ops.MUL, x, reverse, "mul")
  def sub(self, x, reverse=False) -> Tensor:
    a, b = self._broadcasted(x, reverse, "sub")
    if a.dtype == dtypes.bool: raise TypeError("sub: subtracting booleans is not supported; use logical_xor or ^ instead")
    return a + (-b)
  def div(self, x, reverse=False, rounding_mode: str | None = None) -> Tensor:
    if rounding_mode == "trunc": return self._int_div(x, reverse, floor=False)
    if rounding_mode == "floor": return self._int_div(x, reverse, floor=True)
    a, b = self._broadcasted(x, reverse, "div")
    if not dtypes.is_float(a.dtype): a, b = a.cast(least_upper_float(a.dtype)), b.cast(least_upper_float(b.dtype))
    return a._new(UOp(Ops.FDIV, a.dtype, (a.uop, b.uop)))
  def _int_div(self, x, reverse: bool, floor: bool) -> Tensor:
    a, b = self._broadcasted(x, reverse, "floordiv")
    if dtypes.is_float(a.dtype):
      q = a.div(b)
      return q.floor() if floor else q.trunc()
    q = a._new(UOp(Ops.IDIV, a.dtype, (a.uop, b.uop)))
    if not floor or dtypes.is_unsigned(a.dtype): return q
    # floor division from C division: step down when the remainder is non-zero and the signs differ
    r = a._new(UOp(Ops.MOD, a.dtype, (a.uop, b.uop)))
    return ((r != 0) & ((r < 0) != (b < 0))).where(q - 1, q)
  def idiv(self, x, reverse=False) -> Tensor: return self._int_div(x, reverse, floor=False)
  def mod(self, x, reverse=False) -> Tensor:
    """Remainder with the sign of the divisor (Python's %)."""
    a, b = self._broadcasted(x, reverse, "mod")
    if dtypes.is_float(a.dtype): return a - b * (a / b).floor()
    r = a._new(UOp(Ops.MOD, a.dtype, (a.uop, b.uop)))
    if dtypes.is_unsigned(a.dtype): return r
    return ((r != 0) & ((r < 0) != (b < 0))).where(r + b, r)
  def fmod(self, x) -> Tensor:
    """Remainder with the sign of the dividend (C's fmod)."""
    a, b = self._broadcasted(x, False, "fmod")
    if dtypes.is_float(a.dtype): return a - b * (a / b).trunc()
    return a._new(UOp(Ops.MOD, a.dtype, (a.uop, b.uop)))
  def _bitwise(self, op: Ops, x, reverse: bool, name: str) -> Tensor:
    a, b = self._broadcasted(x, reverse, name)
    if dtypes.is_float(a.dtype): raise TypeError(f"{name}: not supported for {a.dtype} (needs an integer or bool dtype)")
    return a._new(UOp(op, a.dtype, (a.uop, b.uop)))
  def bitwise_and(self, x, reverse=False) -> Tensor: return self._bitwise(Ops.AND, x, reverse, "bitwise_and")
  def bitwise_or(self, x, reverse=False) -> Tensor: return self._bitwise(Ops.OR, x, reverse, "bitwise_or")
  def bitwise_xor(self, x, reverse=False) -> Tensor: return self._bitwise(Ops.XOR, x, reverse, "bitwise_xor")
  def bitwise_not(self) -> Tensor:
    if self.dtype == dtypes.bool: return self.logical_not()
    if dtypes.is_float(self.dtype): raise TypeError(f"bitwise_not: not supported for {self.dtype}")
    return self ^ -1 if not dtypes.is_unsigned(self.dtype) else self ^ dtypes.max(self.dtype)
  def lshift(self, x, reverse=False) -> Tensor: return self._bitwise(Ops.SHL, x, reverse, "lshift")
  def rshift(self, x, reverse=False) -> Tensor: return self._bitwise(Ops.SHR, x, reverse, "rshift")
  def logical_not(self) -> Tensor: return self._new(UOp(Ops.CMPNE, dtypes.bool, (self.cast(dtypes.bool).uop, UOp.const(dtypes.bool, True)))) if self.shape == () else \
    self.cast(dtypes.bool) != True  # noqa: E712
  def maximum(self, x) -> Tensor: return self._binop(Ops.MAX, x, False, "maximum")
  def minimum(self, x) -> Tensor:
    a, b = self._broadcasted(x, False, "minimum")
    if dtypes.is_float(a.dtype): return -((-a).maximum(-b))
    return (a < b).where(a, b)
  def where(self, x, y) -> Tensor:
    cond = self.cast(dtypes.bool)
    if isinstance(x, Tensor) or not isinstance(y, Tensor): x, y = (x if isinstance(x, Tensor) else Tensor._wrap(UOp.const(dtypes.from_py(x), x), self.device))._broadcasted(y, False, "where")
    else: y, x = y._broadcasted(x, False, "where")
    shape = _broadcast_shape("where", cond.shape, x.shape)
    cond, x, y = cond._broadcast_to(shape), x._broadcast_to(shape), y._broadcast_to(shape)
    return x._new(UOp(Ops.WHERE, x.dtype, (cond.uop, x.uop, y.uop)))
  def masked_fill(self, mask: Tensor, value) -> Tensor: return mask.where(value, self)

  def __neg__(self) -> Tensor: return self.logical_not() if self.dtype == dtypes.bool else self._unary(Ops.NEG)
  def neg(self) -> Tensor: return -self
  def __add__(self, x): return self.add(x)
  def __radd__(self, x): return self.add(x, True)
  def __sub__(self, x): return self.sub(x)
  def __rsub__(self, x): return self.sub(x, True)
  def __mul__(self, x): return self.mul(x)
  def __rmul__(self, x): return self.mul(x, True)
  def __truediv__(self, x): return self.div(x)
  def __rtruediv__(self, x): return self.div(x, True)
  def __floordiv__(self, x): return self._int_div(x, False, floor=True)
  def __rfloordiv__(self, x): return self._int_div(x, True, floor=True)
  def __mod__(self, x): return self.mod(x)
  def __rmod__(self, x): return self.mod(x, True)
  def __pow__(self, x): return self.pow(x)
  def __rpow__(self, x): return self.pow(x, True)
  def __matmul__(self, x): return self.matmul(x)
  def __rmatmul__(self, x): return self.matmul(x, True)
  def __and__(self, x): return self.bitwise_and(x)
  def __rand__(self, x): return self.bitwise_and(x, True)
  def __or__(self, x): return self.bitwise_or(x)
  def __ror__(self, x): return self.bitwise_or(x, True)
  def __xor__(self, x): return self.bitwise_xor(x)
  def __rxor__(self, x): return self.bitwise_xor(x, True)
  def __lshift__(self, x): return self.lshift(x)
  def __rshift__(self, x): return self.rshift(x)
  def __invert__(self): return self.bitwise_not()
  def __abs__(self): return self.abs()
  def __lt__(self, x): return self._binop(Ops.CMPLT, x, False, "lt")
  def __gt__(self, x): return self._binop(Ops.CMPLT, x, True, "gt")
  def __ne__(self, x): return self._binop(Ops.CMPNE, x, False, "ne")  # type: ignore[override]
  def __eq__(self, x): return (self != x).logical_not()  # type: ignore[override]
  def __le__(self, x):
    a, b = self._broadcasted(x, False, "le")
    return (b < a).logical_not() if not dtypes.is_float(a.dtype) else (a < b) | (a == b)
  def __ge__(self, x):
    a, b = self._broadcasted(x, False, "ge")
    return (a < b).logical_not() if not dtypes.is_float(a.dtype) else (b < a) | (a == b)
  def __iadd__(self, x): return self._inplace(self + x)
  def __isub__(self, x): return self._inplace(self - x)
  def __imul__(self, x): return self._inplace(self * x)
  def __itruediv__(self, x): return self._inplace(self / x)
  def replace(self, x: Tensor) -> Tensor:
    """Make self stand for x's value (same shape and dtype); no data moves until the next realize."""
    if x.shape != self.shape or x.dtype != self.dtype:
      raise ValueError(f"replace: {x.shape} {x.dtype} does not match {self.shape} {self.dtype}")
    self._note_update()
    self.uop = x.uop
    return self
  def assign(self, x) -> Tensor:
    """Set self's value to x (broadcast and cast to self's shape and dtype); realized lazily with the next realize."""
    if self._on_disk():  # a disk tensor's file is written at once (runtime/disk.py)
      from runtime import disk
      return disk.assign(self, x)
    if not isinstance(x, Tensor): x = Tensor(x, device=self.device, dtype=self.dtype)
    if x.device != self.device: raise RuntimeError(f"assign: value on {x.device}, tensor on {self.device}")
    x = x._broadcast_to(_broadcast_shape("assign", self.shape, x.shape)) if x.shape != self.shape else x
    if x.shape != self.shape: raise ValueError(f"assign: cannot assign shape {x.shape} to {self.shape}")
    self._note_update()
    x = x.cast(self.dtype)
    # a value realized as a view (x.T of a buffer; a conv's whole rows) is copied: the tensor then holds a whole buffer
    # of its own, as the state a TinyJit updates must. test_jit_state_assigned_a_view
    self.uop = x.contiguous().uop if is_view_of_buffer(x.uop) and not _is_buffer(x.uop) else x.uop
    if not any(t is self for t in _PENDING): _PENDING.append(self)
    return self
  def _note_update(self) -> None:
    """Tell a TinyJit recording that this tensor's value is state the jitted function updates."""
    if _realize.recording is not None: _realize.recording.note_state(self)
  def _inplace(self, new: Tensor) -> Tensor:
    if new.shape != self.shape: raise ValueError(f"in-place op: result shape {new.shape} differs from {self.shape}")
    self._note_update()
    self.uop = new.cast(self.dtype).uop
    return self
  def eq(self, x) -> Tensor: return self == x
  def ne(self, x) -> Tensor: return self != x
  def lt(self, x) -> Tensor: return self < x
  def gt(self, x) -> Tensor: return self > x
  def le(self, x) -> Tensor: return self <= x
  def ge(self, x) -> Tensor: return self >= x

  def _float(self) -> Tensor: return self if dtypes.is_float(self.dtype) else self.cast(least_upper_float(self.dtype))
  def _in_float32(self, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """fn computed in float32 for half types and rounded once at the end (numpy's half transcendentals do this)."""
    x = self._float()
    return fn(x.float()).cast(x.dtype) if x.dtype in (dtypes.float16, dtypes.bfloat16) else fn(x)
  def exp2(self) -> Tensor: return self._float()._unary(Ops.EXP2)
  def exp(self) -> Tensor: return self._in_float32(lambda x: (x * (1 / math.log(2)))._unary(Ops.EXP2))
  def log2(self) -> Tensor: return self._float()._unary(Ops.LOG2)
  def log(self) -> Tensor: return self._in_float32(lambda x: x.log2() * math.log(2))
  def log10(self) -> Tensor: return self._in_float32(lambda x: x.log2() * (math.log(2) / math.log(10)))
  def sqrt(self) -> Tensor: return self._float()._unary(Ops.SQRT)
  def rsqrt(self) -> Tensor: return self._in_float32(lambda x: x.sqrt().reciprocal())
  def sin(self) -> Tensor: return self._float()._unary(Ops.SIN)
  def cos(self) -> Tensor:
    # sin(pi/2 - x): the subtraction is done in float64 so that large |x| keeps float32 accuracy
    x = self._float()
    return ((math.pi / 2) - x.cast(dtypes.float64)).sin().cast(x.dtype) if x.dtype != dtypes.float64 else ((math.pi / 2) - x).sin()
  def tan(self) -> Tensor: return self._in_float32(lambda x: x.sin() / x.cos())
  def reciprocal(self) -> Tensor: return self._float()._unary(Ops.RECIPROCAL)
  def trunc(self) -> Tensor: return self if not dtypes.is_float(self.dtype) else self._unary(Ops.TRUNC)
  def floor(self) -> Tensor:
    if not dtypes.is_float(self.dtype): return self
    t = self.trunc()
    return (self < t).where(t - 1, t)
  def ceil(self) -> Tensor:
    if not dtypes.is_float(self.dtype): return self
    t = self.trunc()
    return (self > t).where(t + 1, t)
  def round(self) -> Tensor:
    """Round half to even, as numpy and tinygrad."""
    if not dtypes.is_float(self.dtype): return self
    t = self.trunc()
    frac = (self - t).abs()
    odd = (t * 0.5).trunc() != t * 0.5
    up = (frac > 0.5) | ((frac == 0.5) & odd)
    return up.where(t + self.sign(), t)
  def isnan(self) -> Tensor: return self != self
  def isinf(self, detect_positive: bool = True, detect_negative: bool = True) -> Tensor:
    return ((self == math.inf) & detect_positive) | ((self == -math.inf) & detect_negative)
  def isfinite(self) -> Tensor: return (self.isinf() | self.isnan()).logical_not()
  def abs(self) -> Tensor:
    if dtypes.is_unsigned(self.dtype) or self.dtype == dtypes.bool: return self
    return self.maximum(-self) if dtypes.is_float(self.dtype) else (self < 0).where(-self, self)
  def sign(self) -> Tensor:
    if self.dtype == dtypes.bool: return self
    s = (self > 0).where(1, (self < 0).where(-1, 0)).cast(self.dtype)
    return self.isnan().where(self, s) if dtypes.is_float(self.dtype) else s
  def square(self) -> Tensor: return self * self
  def clip(self, min_=None, max_=None) -> Tensor:
    if min_ is None and max_ is None: raise ValueError("clip: at least one of min_ and max_ must be given")
    x = self if min_ is None else self.maximum(min_)
    return x if max_ is None else x.minimum(max_)
  def clamp(self, min_=None, max_=None) -> Tensor: return self.clip(min_, max_)
  def lerp(self, end: Tensor, weight) -> Tensor: return self + (end - self) * weight
  def copysign(self, other) -> Tensor:
    a, b = self._broadcasted(other, False, "copysign")
    neg = (b < 0) | ((b == 0) & ((1 / b._float()) < 0))
    return neg.where(-a.abs(), a.abs())
  def logaddexp(self, other) -> Tensor:
    a, b = self._broadcasted(other, False, "logaddexp")
    m = a.maximum(b)
    return m + ((a - m).exp() + (b - m).exp()).log()
  def pow(self, x, reverse: bool = False) -> Tensor:
    if not reverse and isinstance(x, (int, float)) and not isinstance(x, bool):
      if x == 2: return self * self
      if x == 1: return self + 0
      if x == 0: return self.full_like(1)
      if x == 0.5 and dtypes.is_float(self.dtype): return self.sqrt()
      if x == -1 and dtypes.is_float(self.dtype): return self.reciprocal()
      if isinstance(x, int) and x > 0 and not dtypes.is_float(self.dtype):  # exact integer power by squaring
        out, base, e = None, self, x
        while e:
          if e & 1: out = base if out is None else out * base
          e >>= 1
          if e: base = base * base
        return out
    a, b = self._broadcasted(x, reverse, "pow")
    out_dt = a.dtype
    af, bf = a.cast(dtypes.float64), b.cast(dtypes.float64)  # exp2(y*log2|x|) loses y*log2|x| ulps: do it in float64
    zero = af == 0
    # log2 of a safe base, so the gradient of the unused branch at x == 0 is 0 rather than 0*inf = NaN
    r = (bf * zero.where(1.0, af.abs()).log2()).exp2()
    is_int = bf.trunc() == bf
    odd = is_int & ((bf * 0.5).trunc() != bf * 0.5)
    r = (af < 0).where(is_int.where(odd.where(-r, r), math.nan), r)
    # 0 ** y: 1, 0, or +-inf (the sign of -0.0 survives odd y); built from detached values: it carries no gradient
    at_zero = (bf == 0).where(1.0, (bf > 0).where(0.0, odd.where(af.full_like(math.inf).copysign(af.detach()), math.inf)))
    r = zero.where(at_zero, r)
    r = ((af == 1) & bf.isnan()).where(1.0, r)  # numpy: 1 ** nan == 1
    return r.cast(out_dt) if dtypes.is_float(out_dt) else r.round().cast(out_dt)  # int ** int tensor: exact after rounding

  # activations
  def relu(self) -> Tensor: return self.maximum(0)
  def relu6(self) -> Tensor: return self.relu() - (self - 6).relu()
  def sigmoid(self) -> Tensor: return self._in_float32(lambda x: (1 + (-x).exp()).reciprocal())
  def logsigmoid(self) -> Tensor: return -(-self).softplus()
  def hardsigmoid(self, alpha: float = 1 / 6, beta: float = 0.5) -> Tensor: return (alpha * self + beta).relu() - (alpha * self + beta - 1).relu()
  def tanh(self) -> Tensor: return self._in_float32(lambda x: 2.0 * (2.0 * x).sigmoid() - 1.0)
  def sinh(self) -> Tensor: return (self.exp() - (-self).exp()) / 2
  def cosh(self) -> Tensor: return (self.exp() + (-self).exp()) / 2
  def atanh(self) -> Tensor: return ((1 + self) / (1 - self)).log() / 2
  def asinh(self) -> Tensor: return (self + (self.square() + 1).sqrt()).log()
  def acosh(self) -> Tensor: return (self + (self.square() - 1).sqrt()).log()
  def elu(self, alpha: float = 1.0) -> Tensor: return self.relu() - alpha * (1 - self.exp()).relu()
  def celu(self, alpha: float = 1.0) -> Tensor: return self.maximum(0) + (alpha * ((self / alpha).exp() - 1)).minimum(0)
  def selu(self, alpha: float = 1.67326, gamma: float = 1.0507) -> Tensor: return gamma * (self >= 0).detach().where(self, alpha * (self.exp() - 1))
  def swish(self) -> Tensor: return self * self.sigmoid()
  def silu(self) -> Tensor: return self.swish()
  def hardswish(self) -> Tensor: return self * (self + 3).relu6() * (1 / 6)
  def hardtanh(self, min_val: float = -1, max_val: float = 1) -> Tensor: return self.clip(min_val, max_val)
  def leaky_relu(self, neg_slope: float = 0.01) -> Tensor: return (self < 0).where(neg_slope * self, self)
  def softplus(self, beta: float = 1) -> Tensor: return (1 / beta) * (self * beta).exp().add(1).log()  # TODO overflow-safe
  def softsign(self) -> Tensor: return self / (1 + self.abs())
  def mish(self) -> Tensor: return self * self.softplus().tanh()
  def quick_gelu(self) -> Tensor: return self * (self * 1.702).sigmoid()
  def gelu(self) -> Tensor: return 0.5 * self * (1 + (math.sqrt(2 / math.pi) * (self + 0.044715 * self * self * self)).tanh())
  def erf(self) -> Tensor:
    # Abramowitz and Stegun 7.1.26 (max error 1.5e-7)
    t = 1.0 / (1.0 + 0.3275911 * self.abs())
    y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * (-(self * self)).exp()
    return self.sign() * y
  def asin(self) -> Tensor: return (self / (1 - self * self).sqrt()).atan()
  def acos(self) -> Tensor: return math.pi / 2 - self.asin()
  def atan(self) -> Tensor:
    # range reduction to |x| <= tan(pi/12), then an odd polynomial
    x = self._float()
    ax = x.abs()
    inv = ax > 1
    z = inv.where(1 / ax, ax)
    red = z > 0.2679491924311227
    w = red.where((z * 1.7320508075688772 - 1) / (z + 1.7320508075688772), z)
    w2 = w * w
    p = w * (1 + w2 * (-1 / 3 + w2 * (1 / 5 + w2 * (-1 / 7 + w2 * (1 / 9 - w2 / 11)))))
    p = red.where(p + math.pi / 6, p)
    p = inv.where(math.pi / 2 - p, p)
    return x.sign() * p

  # ---------------------------------------------------------------- casts
  def cast(self, dtype) -> Tensor:
    dt = to_dtype(dtype)
    return self if dt == self.dtype else self._new(UOp(Ops.CAST, dt, (self.uop,)))
  def bitcast(self, dtype) -> Tensor:
    dt = to_dtype(dtype)
    if self._on_disk() and dt != self.dtype:  # a disk buffer's bytes as dt: a view (runtime/disk.py)
      from runtime import disk
      if (v := disk.bitcast(self, dt)) is not None: return v
    if dt.itemsize != self.dtype.itemsize: raise ValueError(f"bitcast: {self.dtype} -> {dt} needs equal itemsizes ({self.dtype.itemsize} != {dt.itemsize})")
    if dtypes.bool in (dt, self.dtype): raise TypeError("bitcast: bool is not supported")
    return self if dt == self.dtype else self._new(UOp(Ops.BITCAST, dt, (self.uop,)))
  def float(self) -> Tensor: return self.cast(dtypes.float32)
  def half(self) -> Tensor: return self.cast(dtypes.float16)
  def double(self) -> Tensor: return self.cast(dtypes.float64)
  def bfloat16(self) -> Tensor: return self.cast(dtypes.bfloat16)
  def int(self) -> Tensor: return self.cast(dtypes.int32)
  def long(self) -> Tensor: return self.cast(dtypes.int64)
  def short(self) -> Tensor: return self.cast(dtypes.int16)
  def bool(self) -> Tensor: return self.cast(dtypes.bool)

  # ---------------------------------------------------------------- reductions
  def _axes(self, op: str, axis) -> tuple[int, ...]:
    if axis is None: return tuple(range(self.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = tuple(sorted({self._axis(op, a) for a in axes}))
    if len(out) != len(axes): raise ValueError(f"{op}: repeated axis in {axis}")
    return out
  def _reduce(self, op: Ops, axis, keepdim: bool, name: str) -> Tensor:
    axes = self._axes(name, axis)
    if self.ndim == 0: return self
    ret = self._new(UOp(Ops.REDUCE, self.dtype, (self.uop,), ReduceArg(op, axes))) if axes else self
    return ret if keepdim else ret.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes))
  def sum(self, axis=None, keepdim: bool = False, dtype=None, acc_dtype=None) -> Tensor:
    acc = to_dtype(acc_dtype or dtype) if (acc_dtype or dtype) is not None else sum_acc_dtype(self.dtype)
    ret = self.cast(acc)._reduce(Ops.ADD, axis, keepdim, "sum")
    if dtype is not None: return ret.cast(to_dtype(dtype))
    return ret.cast(self.dtype) if acc_dtype is None and self.dtype in (dtypes.float16, dtypes.bfloat16) else ret
  def prod(self, axis=None, keepdim: bool = False, dtype=None) -> Tensor:
    return self.cast(to_dtype(dtype) if dtype is not None else self.dtype)._reduce(Ops.MUL, axis, keepdim, "prod")
  def max(self, axis=None, keepdim: bool = False) -> Tensor:
    if self.numel() == 0 and any(self.shape[a] == 0 for a in self._axes("max", axis)):
      raise ValueError(f"max: cannot reduce over an empty dimension of shape {self.shape}")
    return self._reduce(Ops.MAX, axis, keepdim, "max")
  def _inverse(self) -> Tensor:
    if dtypes.is_float(self.dtype): return -self
    if self.dtype == dtypes.bool: return self.logical_not()
    return ~self
  def min(self, axis=None, keepdim: bool = False) -> Tensor: return self._inverse().max(axis, keepdim)._inverse()
  def any(self, axis=None, keepdim: bool = False) -> Tensor: return self.bool()._reduce(Ops.MAX, axis, keepdim, "any")
  def all(self, axis=None, keepdim: bool = False) -> Tensor: return self.logical_not().any(axis, keepdim).logical_not()
  def mean(self, axis=None, keepdim: bool = False) -> Tensor:
    out_dt = self.dtype if dtypes.is_float(self.dtype) else dtypes.float32
    n = prod(self.shape[a] for a in self._axes("mean", axis))
    s = self.cast(sum_acc_dtype(self.dtype)).sum(axis, keepdim)
    return (s.cast(least_upper_float(s.dtype)) / n if isinstance(n, UOp) or n else s.cast(least_upper_float(s.dtype)) * math.nan).cast(out_dt)
  def var(self, axis=None, keepdim: bool = False, correction: int = 1) -> Tensor:
    sq = (self - self.mean(axis, keepdim=True)).square()
    n = prod(self.shape[a] for a in self._axes("var", axis))
    return sq.sum(axis, keepdim).div((n - correction).maximum(0) if isinstance(n, UOp) else max(0, n - correction))
  def std(self, axis=None, keepdim: bool = False, correction: int = 1) -> Tensor: return self.var(axis, keepdim, correction).sqrt()
  def var_mean(self, axis=None, keepdim: bool = False, correction: int = 1) -> tuple[Tensor, Tensor]:
    return self.var(axis, keepdim, correction), self.mean(axis, keepdim)
  def std_mean(self, axis=None, keepdim: bool = False, correction: int = 1) -> tuple[Tensor, Tensor]:
    return self.std(axis, keepdim, correction), self.mean(axis, keepdim)
  def argmax(self, axis=None, keepdim: bool = False) -> Tensor:
    if axis is None: return self.flatten().argmax(0, keepdim=False).reshape((1,) * self.ndim if keepdim else ())
    a = self._axis("argmax", axis)
    n = self.shape[a]
    if n == 0: raise ValueError(f"argmax: cannot reduce over an empty dimension of shape {self.shape}")
    m = self == self.max(a, keepdim=True)
    if dtypes.is_float(self.dtype): m = m | self.isnan()  # the first NaN wins, as numpy
    rev = Tensor.arange(n, 0, -1, device=self.device).reshape((n,) + (1,) * (self.ndim - a - 1))
    return (n - (m * rev).max(a, keepdim)).cast(dtypes.int32)
  def argmin(self, axis=None, keepdim: bool = False) -> Tensor: return self._inverse().argmax(axis, keepdim)
  def softmax(self, axis: int = -1, dtype=None) -> Tensor:
    x = self.cast(to_dtype(dtype)) if dtype is not None else self._float()
    m = x - x._reduce(Ops.MAX, axis, True, "softmax").detach()  # no empty-axis error: the result is empty then
    e = m.exp()
    return e * e.sum(axis, keepdim=True).reciprocal()  # one division per row, a multiply per element
  def log_softmax(self, axis: int = -1, dtype=None) -> Tensor:
    x = self.cast(to_dtype(dtype)) if dtype is not None else self._float()
    m = x - x._reduce(Ops.MAX, axis, True, "log_softmax").detach()
    return m - m.exp().sum(axis, keepdim=True).log()
  def logsumexp(self, axis=None, keepdim: bool = False) -> Tensor:
    m = self.max(axis, keepdim=True).detach()
    out = (self - m).exp().sum(axis, keepdim=True).log() + m
    return out if keepdim else out.reshape(tuple(s for i, s in enumerate(self.shape) if i not in self._axes("logsumexp", axis)))

  # ---------------------------------------------------------------- matmul
  def dot(self, w: Tensor, dtype=None) -> Tensor:
    x = self
    if not isinstance(w, Tensor): w = Tensor(w, device=self.device)
    if x.ndim == 0 or w.ndim == 0: raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes {x.shape} and {w.shape}")
    k1, k2 = x.shape[-1], w.shape[-2] if w.ndim > 1 else w.shape[0]
    if k1 != k2: raise ValueError(f"matmul: cannot multiply shapes {x.shape} and {w.shape}: the inner dimensions {k1} and {k2} differ")
    xs = x.reshape(1, k1) if x.ndim == 1 else x
    ws = w.reshape(k2, 1) if w.ndim == 1 else w
    try: _broadcast_shape("matmul", xs.shape[:-2], ws.shape[:-2])
    except ValueError: raise ValueError(f"matmul: cannot multiply shapes {x.shape} and {w.shape}: batch dimensions {xs.shape[:-2]} and {ws.shape[:-2]} do not broadcast") from None
    m = ws.shape[-1]
    if _copies_transposed(xs, ws): ws = ws.contiguous()
    if _packs(xs, ws):
      out = xs._matmul_packed(ws, dtype)
    else:
      a = xs.reshape(xs.shape[:-1] + (1, k1))
      b = ws.transpose(-1, -2).reshape(ws.shape[:-2] + (1, m, k1))
      out = (a * b).sum(-1, dtype=dtype)  # accumulates in sum's wider dtype, then back to the inputs' dtype as tinygrad
    out = out.cast(least_upper_dtype(x.dtype, w.dtype) if dtype is None else to_dtype(dtype))
    if x.ndim == 1: out = out.squeeze(-2)
    if w.ndim == 1: out = out.squeeze(-1)
    return out
  def _matmul_packed(self, w: Tensor, dtype) -> Tensor:
    """(M, K) @ (K, N) with w first copied panel by panel ([N/P][K][P], P = PACK_COLS contiguous columns): the
    kernel's inner loops then stream one contiguous K x P panel instead of P columns 4*N bytes apart, whose power-of-two
    strides thrash the caches' sets (matmul 2048: 74 -> 197 GFLOP/s, pack included). test_packed_matmul_matches_numpy"""
    (m, k), n, p = self.shape, w.shape[1], PACK_COLS
    panels = w.reshape(k, n // p, p).permute(1, 0, 2).contiguous()
    return (self.reshape(m, 1, k, 1) * panels.reshape(1, n // p, k, p)).sum(2, dtype=dtype).reshape(m, n)
  def matmul(self, x: Tensor, reverse: bool = False, dtype=None) -> Tensor:
    return x.dot(self, dtype) if reverse else self.dot(x, dtype)

  # ---------------------------------------------------------------- functional nn (the parts issue 3 needs)
  def linear(self, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    x = self.mul(weight) if weight.ndim == 1 else self.dot(weight)
    return x.add(bias) if bias is not None else x
  def sequential(self, ll: list[Callable[[Tensor], Tensor]]) -> Tensor:
    x = self
    for f in ll: x = f(x)
    return x

  def _windows(self, kernel: tuple[int, ...], stride, dilation, op: str) -> Tensor:
    """Sliding windows over the last len(kernel) dims: (..., i1, i2) -> (..., o1, o2, k1, k2), a view (Ops.WINDOWS);
    op names the caller in errors."""
    nk = len(kernel)
    arg = WindowArg(tuple(kernel), _tuple(stride, nk, f"{op}: stride"), _tuple(dilation, nk, f"{op}: dilation"))
    _check_positive(op, stride=arg.stride, dilation=arg.dilation)
    if any(arg.out_size(i, j) <= 0 for j, i in enumerate(self.shape[-nk:])):
      raise ValueError(f"{op}: kernel {kernel} with dilation {arg.dilation} does not fit in input {self.shape[-nk:]}")
    return self._new(UOp(Ops.WINDOWS, self.dtype, (self.uop,), arg))

  def conv2d(self, weight: Tensor, bias: Tensor | None = None, groups: int = 1, stride=1, dilation=1, padding=0) -> Tensor:
    """Cross-correlation of (N, Cin, *spatial) with (Cout, Cin/groups, *kernel), as PyTorch."""
    nk = weight.ndim - 2
    if self.ndim != nk + 2: raise ValueError(f"conv2d: input of shape {self.shape} does not match weight of shape {weight.shape} ({nk} spatial dims)")
    n, cin = self.shape[:2]
    cout, cin_g = weight.shape[:2]
    if cin % groups or cout % groups or cin // groups != cin_g:
      raise ValueError(f"conv2d: input channels {cin} and weight {weight.shape} do not match groups={groups} (need weight.shape[1] == {cin}//{groups})")
    if padding == "same" or padding == "valid":
      dl = _tuple(dilation, nk, "conv2d: dilation")
      if padding == "valid": pads = [(0, 0)] * nk
      else:
        if any(s != 1 for s in _tuple(stride, nk, "conv2d: stride")): raise ValueError("conv2d: padding='same' needs stride 1")
        tot = [d * (k - 1) for d, k in zip(dl, weight.shape[2:])]
        pads = [(t // 2, t - t // 2) for t in tot]
    elif isinstance(padding, int): pads = [(padding, padding)] * nk
    elif len(padding) == nk: pads = [(p, p) for p in padding]
    elif len(padding) == 2 * nk: pads = [tuple(padding[2 * i:2 * i + 2]) for i in range(nk)][::-1]  # torch-style flat, last dim first
    else: raise ValueError(f"conv2d: padding {padding} must be an int, one per spatial dim, or (before, after) pairs")
    # a padded input is copied once: the windows then read it with plain contiguous vector loads, where a PAD inside
    # the conv kernel masks and clamps every load (measured 5x slower for 32x32x56x56 * 64x32x3x3). An unrealized
    # input is computed first: a producer inlined into the pad copy would run under the pad mask (a previous conv
    # there took 330 ms instead of 30 in resnet_mnist's evaluation).
    x, flat = self, None
    if any(p != (0, 0) for p in pads):
      x = x if _is_buffer(_resolved(x.uop)) else x.contiguous()
      # (its gradients through whole rows are slower than the windows': resnet's step 6.2 -> 13.6 ms of kernels). The
      # weight first: in training it requires grad itself, and the input's graph (the layers below) is not walked
      if nk == 2 and not _grad_may_flow(weight, x): flat = _flat_windows(x, weight.shape[2:], pads, stride, dilation)
      if flat is None: x = x.pad(((0, 0), (0, 0)) + tuple(pads)).contiguous()
    if flat is not None: w, (ho, wo) = flat  # (N, Cin, KH, KW, Ho * Wp): whole padded rows end to end
    else:
      # kernel axes before output axes: the input gradient's windows (a reduce over Cout, stored in this order) are then
      # read along the output's rows with vector loads, not gathered across kernel offsets
      w = x._windows(weight.shape[2:], stride, dilation, "conv2d").permute(_swap_blocks(nk))  # (N, Cin, *kernel, *out)
    out_sp = w.shape[2 + nk:]
    w = w.reshape((n, groups, 1, cin_g) + weight.shape[2:] + out_sp)
    k = weight.reshape((1, groups, cout // groups, cin_g) + weight.shape[2:] + (1,) * len(out_sp))
    out = (w * k).sum(tuple(range(3, 4 + nk))).reshape((n, cout) + out_sp)
    if bias is not None: out = out + bias.reshape((1, cout) + (1,) * len(out_sp))
    # the last Wp - Wo outputs of each padded row read across into the next: a view drops them
    return out if flat is None else out.contiguous().reshape((n, cout, ho, -1)).shrink((None, None, None, (0, wo)))

  def conv_transpose2d(self, weight: Tensor, bias: Tensor | None = None, groups: int = 1, stride=1, dilation=1, padding=0, output_padding=0) -> Tensor:
    """The gradient of conv2d with respect to its input, as PyTorch's conv_transpose2d. weight: (Cin, Cout/groups, *kernel)."""
    nk = weight.ndim - 2
    st, dl = _tuple(stride, nk, "conv_transpose2d: stride"), _tuple(dilation, nk, "conv_transpose2d: dilation")
    pd, op = _tuple(padding, nk, "conv_transpose2d: padding"), _tuple(output_padding, nk, "conv_transpose2d: output_padding")
    cin, cout_g = weight.shape[:2]
    if self.ndim != nk + 2 or cin != self.shape[1] or cin % groups:
      raise ValueError(f"conv_transpose2d: input of shape {self.shape} does not match weight of shape {weight.shape} with "
                       f"groups={groups} (need an input (N, {cin}, ...) with {nk} spatial dims, and {cin} divisible by groups)")
    _check_positive("conv_transpose2d", stride=st, dilation=dl)
    if any(p < 0 for p in pd) or any(not 0 <= o < max(s, d) for o, s, d in zip(op, st, dl)):
      raise ValueError(f"conv_transpose2d: padding {pd} must be >= 0 and output_padding {op} >= 0 and below max(stride, dilation)")
    if any((i - 1) * s - 2 * p + d * (k - 1) + o + 1 <= 0 for i, s, p, d, k, o in zip(self.shape[2:], st, pd, dl, weight.shape[2:], op)):
      raise ValueError(f"conv_transpose2d: padding {pd} leaves no output for input {self.shape[2:]}, kernel {weight.shape[2:]}, stride {st}")
    if all(d == 1 for d in dl):
      # each input element times the kernel (a reduce over Cin per group), the products summed into the output where
      # their windows land (the adjoint of conv2d's windows, movement only): no zero-interleaved input to convolve
      from tinygrad.gradient import windows_adjoint
      n, ins, ks = self.shape[0], self.shape[2:], weight.shape[2:]
      x = self.reshape((n, groups, cin // groups, 1) + (1,) * nk + ins)
      w = weight.reshape((1, groups, cin // groups, cout_g) + ks + (1,) * nk)
      cols = (x * w).sum(2).reshape((n, groups * cout_g) + ks + ins)
      cols = cols.permute(_swap_blocks(nk))  # (N, Cout, *in, *kernel)
      full = tuple((i - 1) * s + k for i, s, k in zip(ins, st, ks))
      out = windows_adjoint(cols, st, (n, groups * cout_g) + full)
      out = out.pad(((0, 0), (0, 0)) + tuple((0, o) for o in op))  # output_padding: zeros after the last window
      out = out.shrink(((0, n), (0, groups * cout_g)) + tuple((p, f + o - p) for f, o, p in zip(full, op, pd)))
      return out if bias is None else out + bias.reshape((1, groups * cout_g) + (1,) * nk)
    # dilate the input by the stride, pad by d*(k-1)-p, convolve with the flipped, transposed kernel
    x = self
    for j, s in enumerate(st):
      if s == 1: continue
      ax = 2 + j
      i = x.shape[ax]
      pre, post = x.shape[:ax], x.shape[ax + 1:]
      x = x.reshape(pre + (i, 1) + post).pad(tuple((0, s - 1) if a == ax + 1 else (0, 0) for a in range(x.ndim + 1)))
      x = x.reshape(pre + (i * s,) + post)
      x = x.shrink(tuple((0, (i - 1) * s + 1) if a == ax else None for a in range(x.ndim)))
    w = weight.reshape((groups, cin // groups, cout_g) + weight.shape[2:]).transpose(1, 2).reshape((groups * cout_g, cin // groups) + weight.shape[2:])
    w = w.flip(tuple(range(2, 2 + nk)))
    pads = tuple((d * (k - 1) - p, d * (k - 1) - p + o) for d, k, p, o in zip(dl, weight.shape[2:], pd, op))
    return x.pad(((0, 0), (0, 0)) + pads).conv2d(w, bias, groups=groups, dilation=dl)

  def _pool_pads(self, k: tuple[int, ...], stride, dilation, padding, ceil_mode: bool, op: str) -> list[tuple[int, int]]:
    """(before, after) padding of the pooled dims: `padding` on both sides and, with ceil_mode, as much more after as
    the last, partial window reads. As torch, a window starts inside the input or its left padding."""
    pd = _tuple(padding, len(k), f"{op}: padding")
    if not ceil_mode: return [(p, p) for p in pd]
    st, dl = _tuple(stride, len(k), f"{op}: stride"), _tuple(dilation, len(k), f"{op}: dilation")
    _check_positive(op, stride=st, dilation=dl)
    pads = []
    for size, kk, s, d, p in zip(self.shape[-len(k):], k, st, dl, pd):
      if not isinstance(size, int): raise NotImplementedError(f"{op}: ceil_mode=True with a symbolic size {size} is not supported")
      span, reach = size + 2 * p, d * (kk - 1) + 1
      n = ceildiv(span - reach, s) + 1  # a window may stick out past the end by less than the stride, as torch
      if n >= 1 and (n - 1) * s >= size + p: n -= 1
      pads.append((p, p + (n - 1) * s + reach - span) if n >= 1 else (p, p))  # (none fits: _windows names the error)
    return pads
  def _pool_pad(self, pads: list[tuple[int, int]], value: float) -> Tensor:
    return self.pad(((0, 0),) * (self.ndim - len(pads)) + tuple(pads), value=value) if any(b or a for b, a in pads) else self
  def max_pool2d(self, kernel_size=(2, 2), stride=None, dilation=1, padding=0, ceil_mode: bool = False,
                 return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """With return_indices, also the flat position (h * W + w) in its input plane of each window's maximum (the first
    one, or the last NaN as torch's CPU kernel; never a padding position), as int64: what max_unpool2d takes back."""
    k = _tuple(kernel_size, 2, "max_pool2d: kernel_size")
    s = k if stride is None else stride
    pads = self._pool_pads(k, s, dilation, padding, ceil_mode, "max_pool2d")
    windows = self._pool_pad(pads, -math.inf if dtypes.is_float(self.dtype) else dtypes.min(self.dtype))._windows(k, s, dilation, "max_pool2d")
    out = windows.max((-2, -1))
    if not return_indices: return out
    inside = Tensor.ones(self.shape[-2:], dtype=dtypes.bool, device=self.device)._pool_pad(pads, False)._windows(k, s, dilation, "max_pool2d")
    kk = k[0] * k[1]
    def flat(t: Tensor) -> Tensor: return (t & inside).reshape(t.shape[:-2] + (kk,)).cast(dtypes.int8)
    first = flat(windows == out.reshape(out.shape + (1, 1))).argmax(-1)
    if dtypes.is_float(self.dtype):
      nan = flat(windows.isnan())
      first = (nan.max(-1) > 0).where(kk - 1 - nan.flip(-1).argmax(-1), first)
    first = first.cast(dtypes.int64)
    (sh, sw), (dh, dw) = _tuple(s, 2, "max_pool2d: stride"), _tuple(dilation, 2, "max_pool2d: dilation")
    row = Tensor.arange(out.shape[-2], dtype=dtypes.int64, device=self.device).reshape(-1, 1) * sh - pads[0][0] + first // k[1] * dh
    col = Tensor.arange(out.shape[-1], dtype=dtypes.int64, device=self.device) * sw - pads[1][0] + first % k[1] * dw
    return out, row * self.shape[-1] + col
  def avg_pool2d(self, kernel_size=(2, 2), stride=None, dilation=1, padding=0, ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    k = _tuple(kernel_size, 2, "avg_pool2d: kernel_size")
    s = k if stride is None else stride
    pads = self._pool_pads(k, s, dilation, padding, ceil_mode, "avg_pool2d")
    summed = self._pool_pad(pads, 0.0)._windows(k, s, dilation, "avg_pool2d").sum((-2, -1))
    if all(b == a for b, a in pads) and (count_include_pad or not any(b for b, _ in pads)): return summed / prod(k)
    # each window's divisor: its taps inside the input, and inside the padding with count_include_pad, never those in
    # the part past it that ceil_mode reads (as torch)
    if count_include_pad: inside = Tensor.ones(tuple(i + 2 * b for i, (b, _) in zip(self.shape[-2:], pads)), device=self.device).pad(tuple((0, a - b) for b, a in pads))
    else: inside = Tensor.ones(self.shape[-2:], device=self.device).pad(tuple(pads))
    return summed / inside._windows(k, s, dilation, "avg_pool2d").sum((-2, -1))

  def dropout(self, p: float = 0.5) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p), in training mode only."""
    if not 0 <= p <= 1: raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not Tensor.training or p == 0: return self
    if p == 1: return self * 0
    keep = Tensor.rand(self.shape, device=self.device) >= p
    return keep.where(self, 0) * (1 / (1 - p))
  def one_hot(self, num_classes: int = -1) -> Tensor:
    if num_classes == -1: num_classes = int(self.max().item()) + 1
    return (self.unsqueeze(-1) == Tensor.arange(num_classes, device=self.device)).cast(dtypes.int32)

  def layernorm(self, axis=-1, eps: float = 1e-5) -> Tensor:
    y = self - self.mean(axis, keepdim=True)
    return y * (y * y).mean(axis, keepdim=True).add(eps).rsqrt()
  def batchnorm(self, weight: Tensor | None, bias: Tensor | None, mean: Tensor, invstd: Tensor, axis=1) -> Tensor:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(self._axis("batchnorm", a) for a in axes)
    shape = tuple(s if i in axes else 1 for i, s in enumerate(self.shape))
    x = self - mean.reshape(shape)
    if weight is not None: x = x * weight.reshape(shape)
    x = x * (invstd.reshape(shape) if invstd.ndim == len(axes) else invstd)
    return x + bias.reshape(shape) if bias is not None else x
  def scaled_dot_product_attention(self, key: Tensor, value: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0,
                                   is_causal: bool = False, enable_gqa: bool = False) -> Tensor:
    """softmax(q @ k^T / sqrt(d) [+ mask]) @ v over the last two dims. enable_gqa: key and value have fewer heads (dim
    -3) than the query, each shared by a group of consecutive query heads, as torch."""
    q = self
    if enable_gqa and key.ndim >= 3 and key.shape[-3] != q.shape[-3]:
      if key.shape[-3] != value.shape[-3] or q.shape[-3] % key.shape[-3]:
        raise ValueError(f"scaled_dot_product_attention: with enable_gqa, the query's {q.shape[-3]} heads must be a multiple of "
                         f"the key's and value's (shapes {q.shape}, {key.shape}, {value.shape})")
      group = q.shape[-3] // key.shape[-3]
      key, value = key.repeat_interleave(group, dim=-3), value.repeat_interleave(group, dim=-3)
    scores = q @ key.transpose(-2, -1) * (1 / math.sqrt(q.shape[-1]))
    if is_causal:
      L, S = q.shape[-2], key.shape[-2]
      mask = Tensor.ones(L, S, dtype=dtypes.bool, device=self.device).tril()
      scores = mask.where(scores, -math.inf)
    if attn_mask is not None:
      scores = attn_mask.where(scores, -math.inf) if attn_mask.dtype == dtypes.bool else scores + attn_mask
    return scores.softmax(-1).dropout(dropout_p) @ value
  def triu(self, diagonal: int = 0) -> Tensor:
    r, c = self.shape[-2:]
    m = Tensor.arange(r, device=self.device).reshape(r, 1) + diagonal <= Tensor.arange(c, device=self.device).reshape(1, c)
    return m.where(self, 0).cast(self.dtype)
  def tril(self, diagonal: int = 0) -> Tensor:
    r, c = self.shape[-2:]
    m = Tensor.arange(r, device=self.device).reshape(r, 1) + diagonal >= Tensor.arange(c, device=self.device).reshape(1, c)
    return m.where(self, 0).cast(self.dtype)

  # losses
  def binary_crossentropy(self, Y: Tensor, reduction: str = "mean") -> Tensor:
    return _reduce_loss((-Y * self.log() - (1 - Y) * (1 - self).log()), reduction)
  def binary_crossentropy_logits(self, Y: Tensor, reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    log_p, log_1mp = self.logsigmoid(), (-self).logsigmoid()
    pw = 1 if pos_weight is None else pos_weight
    return _reduce_loss(-(pw * Y * log_p + (1 - Y) * log_1mp), reduction)
  def sparse_categorical_crossentropy(self, Y: Tensor, ignore_index: int = -1, label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """Cross-entropy of logits (N, ..., C) against integer class labels (N, ...)."""
    if self.shape[:-1] != Y.shape: raise ValueError(f"sparse_categorical_crossentropy: logits {self.shape} and labels {Y.shape} do not match")
    c = self.shape[-1]
    logp = self.log_softmax(-1)
    onehot = Y.unsqueeze(-1) == Tensor.arange(c, device=self.device)
    valid = (Y != ignore_index).unsqueeze(-1) if ignore_index != -1 else None
    nll = -(onehot.where(logp, 0)).sum(-1)
    if label_smoothing: nll = (1 - label_smoothing) * nll - label_smoothing * logp.mean(-1)
    if valid is not None:
      v = valid.squeeze(-1)
      nll = v.where(nll, 0)
      if reduction == "mean": return nll.sum() / v.sum().maximum(1).cast(nll.dtype)
    return _reduce_loss(nll, reduction)
  def _classes_last(self) -> Tensor:
    """(N, C, d1, ...) -> (N, d1, ..., C): torch puts classes on dim 1, the losses here reduce the last dim."""
    return self if self.ndim < 3 else self.permute((0,) + tuple(range(2, self.ndim)) + (1,))
  def cross_entropy(self, Y: Tensor, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy with class indices (integer Y) or class probabilities (float Y shaped like self), class dim 1 as torch."""
    x = self._classes_last()
    if dtypes.is_int(Y.dtype): return x.sparse_categorical_crossentropy(Y, reduction=reduction, label_smoothing=label_smoothing)
    y = Y._classes_last()
    if label_smoothing: y = y * (1 - label_smoothing) + label_smoothing / x.shape[-1]
    return _reduce_loss(-(x.log_softmax(-1) * y).sum(-1), reduction)
  def nll_loss(self, Y: Tensor, weight: Tensor | None = None, ignore_index: int | None = None, reduction: str = "mean") -> Tensor:
    """Negative log likelihood of log-probabilities (N, C, ...) at integer targets (N, ...), as torch."""
    x = self._classes_last()
    onehot = Y.unsqueeze(-1) == Tensor.arange(x.shape[-1], device=self.device)
    w = onehot.where(1.0 if weight is None else weight, 0.0)
    if ignore_index is not None: w = (Y != ignore_index).unsqueeze(-1).where(w, 0.0)
    nll = -(x * w).sum(-1)
    if reduction == "mean": return nll.sum() / w.sum()
    return _reduce_loss(nll, reduction)

PACK_COLS = 32         # columns per packed panel of a matmul's right operand: two 16-float vectors
PACK_MIN_BYTES = 2 << 20  # pack right operands larger than a core's L2 ...
PACK_MIN_ROWS = 256     # ... when enough rows of the left operand reuse each panel to pay for the copy

def _packs(x: Tensor, w: Tensor) -> bool:
  """Pack w for x @ w: a plain 2-D float32 matrix stored row-major (its columns are the strided ones), larger than L2."""
  return x.ndim == 2 and w.ndim == 2 and x.dtype == w.dtype == dtypes.float32 and isinstance(w.device, str) and \
    all(isinstance(s, int) for s in x.shape + w.shape) and \
    w.shape[1] % PACK_COLS == 0 and x.shape[0] >= PACK_MIN_ROWS and w.numel() * 4 > PACK_MIN_BYTES and _is_buffer(_resolved(w.uop))

SMALL_K = 128  # x @ W.T with at most this many columns in W: W.T is copied row-major first

def _copies_transposed(x: Tensor, w: Tensor) -> bool:
  """x @ W.T (a Linear layer) with a short reduce over a realized W: copy W.T row-major first, so the product is
  broadcast-FMA rows over the output columns instead of dot products of K/16 vectors each ending in a horizontal sum.
  x(512, 64) @ W(192, 64).T: 276 -> 169 us, (2048, 128) @ (128, 128).T 992 -> 546 (alternated in one process); at K 256
  they are even, at 784 the dot products win. Only where enough rows of x share the copy. test_linear_with_short_reduce_copies_its_weight"""
  if w.ndim != 2 or x.ndim < 2 or w.shape[0] > SMALL_K or w.shape[1] < 16 or prod(x.shape[:-1]) < 64: return False
  if not all(isinstance(s, int) for s in x.shape + w.shape): return False
  u = _resolved(w.uop)
  return u.op is Ops.PERMUTE and _is_buffer(_resolved(u.src[0]))

def _canonical(device: str | tuple[str, ...] | list[str] | None) -> str | tuple[str, ...]:
  """A device name, or a tuple of them for a tensor sharded over several devices (constants there need no buffer)."""
  return tuple(Device.canonicalize(d) for d in device) if isinstance(device, (tuple, list)) else Device.canonicalize(device)

def _expand_ellipsis(indices: tuple, ndim: int) -> tuple:
  """indices with `...` (or the missing trailing dims) replaced by full slices, so every one of ndim dims is indexed."""
  n_real = sum(1 for i in indices if i is not None and i is not Ellipsis)
  if Ellipsis not in indices: return indices + (slice(None),) * (ndim - n_real)
  e = indices.index(Ellipsis)
  return indices[:e] + (slice(None),) * (ndim - n_real) + indices[e + 1:]

def _symbolic_slice(ix: slice, n, op: str) -> tuple | None:
  """[lo, hi) of a slice holding a bound Variable, or of any slice of a symbolic dim n (a KV cache's [:pos + k]): step 1
  only, a negative int bound only into a concrete dim. None for a slice of ints into a concrete dim."""
  if not any(isinstance(v, UOp) for v in (ix.start, ix.stop, n)): return None
  if ix.step not in (None, 1): raise IndexError(f"{op}: a slice with a Variable needs step 1, got {ix}")
  def bound(v, default):
    if v is None: return default
    if isinstance(v, int) and v < 0:
      if isinstance(n, UOp): raise IndexError(f"{op}: a negative index {v} into the symbolic dim {n} is not supported")
      return max(0, n + v)
    return min(v, n) if isinstance(v, int) and isinstance(n, int) else v
  return bound(ix.start, 0), bound(ix.stop, n)

def _never_negative(x) -> bool:
  """x >= 0 for every value of the Variables in it (by their declared ranges)."""
  x = sym_canon(x) if isinstance(x, UOp) else x
  return x >= 0 if isinstance(x, int) else x.vmin >= 0

def _box(indices, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
  """Per-dim [lo, hi) of a basic index made of ints, step-1 slices and `...` (None if it is anything else)."""
  if not isinstance(indices, tuple): indices = (indices,)
  if any(not isinstance(i, (int, slice)) and i is not Ellipsis or isinstance(i, bool) for i in indices): return None
  box = []
  for i, n in zip(_expand_ellipsis(indices, len(shape)), shape):
    if isinstance(i, int): box.append((i + n if i < 0 else i, (i + n if i < 0 else i) + 1)); continue
    if (rng := _symbolic_slice(i, n, "setitem")) is not None: box.append(rng); continue
    lo, hi, step = i.indices(n)
    if step != 1: return None
    box.append((lo, max(lo, hi)))
  return box

def _grad_nodes() -> set[UOp]:
  """The nodes of the tensors a backward() would differentiate with respect to (none while Tensor.no_grad is on), and
  the nodes they were before their realize, while alive (a loss built before `p.numpy()`, realized after it, keeps its
  graph: test_loss_built_before_its_parameter_was_realized_keeps_its_gradient)."""
  if not _GRAD_TENSORS or Tensor.no_grad: return set()
  nodes = set()
  for t in _GRAD_TENSORS.values():
    if not t.requires_grad: continue
    nodes.add(t.uop)
    if (ref := _REALIZED_FROM.get(t.uop)) is not None and (old := ref()) is not None: nodes.add(old)
  return nodes

def _grad_may_flow(*ts: Tensor) -> bool:
  """Whether a backward() could reach a tensor requiring grad through one of ts (their graphs are walked only while a
  tensor requires grad and Tensor.no_grad is off)."""
  return bool(nodes := _grad_nodes()) and any(t.uop in nodes or _reaches(t.uop, nodes) for t in ts)

def _reaches(root: UOp, nodes: set[UOp]) -> bool:
  """Whether a node below root is one of nodes. Nothing older than every one of nodes has one below it (sources are
  older than their users): a loss realized after the optimizer replaced the parameters is not walked (a ResNet step's
  realize spent 1.3 ms walking it). The nodes a False answer explored are marked with the current grad-node set's
  number and not walked again until that set changes: a frozen backbone's convolutions each ask about the whole graph
  below them, which was quadratic in the depth (80 frozen convs: 45 ms to build the forward).
  test_frozen_backbone_walks_linearly, test_loss_realized_after_the_optimizer_step_is_not_walked"""
  global _REACH_MARK
  mark, refs, oldest = _REACH_MARK
  if len(refs) != len(nodes) or any(r() not in nodes for r in refs):  # (weakly: the set must not keep old graphs alive)
    mark, oldest = mark + 1, min((n._serial for n in nodes), default=0)
    _REACH_MARK = (mark, [weakref.ref(n) for n in nodes], oldest)
  seen, stack = set(), [root]
  while stack:
    u = stack.pop()
    if u in nodes and u is not root: return True
    # no gradient flows below a detach
    if u._serial < oldest or u in seen or u.op is Ops.DETACH or u._no_grad_mark == mark: continue
    seen.add(u)
    stack.extend(u.src)
  for u in seen: u._no_grad_mark = mark
  return False

def _flat_windows(x: Tensor, kernel: tuple[int, ...], pads: list[tuple[int, int]], stride, dilation) -> tuple[Tensor, tuple[int, int]] | None:
  """A stride-1 2-D convolution's windows over the padded input's rows run end to end: output p = ho * Wp + wo reads
  x[p + kh*dh*Wp + kw*dw], so its loop is one contiguous axis of Ho*Wp (Wp - Wo outputs per row are computed and dropped)
  instead of Ho rows of Wo, whose vectors are part empty when Wo is not a multiple of the lanes (56 = 3.5 vectors of
  16). Returns the windows (N, Cin, KH, KW, Ho*Wp) and (Ho, Wo), or None where it would fill fewer lanes or is not a
  CPU convolution. test_flat_row_conv_matches_numpy"""
  st, dl = _tuple(stride, 2, "conv2d: stride"), _tuple(dilation, 2, "conv2d: dilation")
  if st != (1, 1) or not isinstance(x.device, str) or not x.device.startswith("CPU") or not all(isinstance(d, int) for d in x.shape): return None
  (kh, kw), (dh, dw) = kernel, dl
  hp, wp = x.shape[2] + sum(pads[0]), x.shape[3] + sum(pads[1])
  ho, wo = hp - dh * (kh - 1), wp - dw * (kw - 1)
  lanes = Device[x.device].compiler.vector_bits // 32
  if ho <= 0 or wo <= 0 or ceildiv(ho * wp, lanes) > ho * ceildiv(wo, lanes): return None
  extra = ceildiv(dw * (kw - 1), wp)  # whole rows below, so the last windows' reads stay in the copy
  n, c = x.shape[:2]
  flat = x.pad(((0, 0), (0, 0), (pads[0][0], pads[0][1] + extra), pads[1])).contiguous().reshape((n, c, (hp + extra) * wp))
  y = flat._windows((kw,), 1, dw, "conv2d").permute(0, 1, 3, 2)._windows((kh,), 1, dh * wp, "conv2d")  # N, C, KW, *, KH
  return y.shrink((None, None, None, (0, ho * wp), None)).permute(0, 1, 4, 2, 3), (ho, wo)

def _swap_blocks(nk: int) -> tuple[int, ...]:
  """The permutation (N, C, *a, *b) -> (N, C, *b, *a) for two blocks of nk axes (it is its own inverse): a convolution's
  output and kernel axes."""
  return (0, 1) + tuple(range(2 + nk, 2 + 2 * nk)) + tuple(range(2, 2 + nk))

def _check_positive(op: str, **params: tuple[int, ...]) -> None:
  for name, v in params.items():
    if any(not isinstance(x, int) or x < 1 for x in v): raise ValueError(f"{op}: {name} must be positive integers, got {v}")

def _tuple(x, n: int, what: str) -> tuple[int, ...]:
  if isinstance(x, int): return (x,) * n
  x = tuple(x)
  if len(x) != n: raise ValueError(f"{what}: expected {n} values, got {x}")
  return x

def _reduce_loss(x: Tensor, reduction: str) -> Tensor:
  if reduction == "mean": return x.mean()
  if reduction == "sum": return x.sum()
  if reduction == "none": return x
  raise ValueError(f"loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")

import weakref
_PENDING: list[Tensor] = []
_RNG_COUNTERS: dict[str, Tensor] = {}  # device -> how many random calls came before (the next call's key)
# tensors are kept by id: a WeakSet compares a tensor with == (elementwise, a Tensor) once it is in the set, which made
# setting requires_grad=True twice raise (test_requires_grad_set_twice_or_toggled)
_GRAD_TENSORS: "weakref.WeakValueDictionary[int, Tensor]" = weakref.WeakValueDictionary()
_REALIZED_FROM: "weakref.WeakKeyDictionary[UOp, weakref.ref[UOp]]" = weakref.WeakKeyDictionary()  # see _grad_nodes
_BACKWARD_DONE: "weakref.WeakValueDictionary[int, Tensor]" = weakref.WeakValueDictionary()  # losses already differentiated (retain_graph=False)
_REACH_MARK: "tuple[int, list[weakref.ref[UOp]], int]" = (1, [], 0)  # the grad-node set's number, the set, its oldest serial

class _TrainMode:
  """`with Tensor.train():` / `@Tensor.train()` sets Tensor.training for a block."""
  def __init__(self, mode: bool): self.mode = mode
  def __enter__(self):
    self.prev, Tensor.training = Tensor.training, self.mode
  def __exit__(self, *exc): Tensor.training = self.prev
  def __call__(self, fn):
    import functools
    @functools.wraps(fn)
    def wrapper(*a, **kw):
      with _TrainMode(self.mode): return fn(*a, **kw)
    return wrapper

def _mix32(x: Tensor) -> Tensor:
  """An invertible 32-bit integer hash (xorshift-multiply), applied elementwise in a kernel."""
  x = x ^ (x >> 16)
  x = x * 0x7FEB352D
  x = x ^ (x >> 15)
  x = x * 0x846CA68B
  return x ^ (x >> 16)

_const_views: dict[tuple, UOp] = {}
def _const_view(dtype: DType, value: ConstType, shape: tuple[int, ...]) -> UOp:
  """CONST reshaped and expanded to shape (the UOps Tensor.full builds, without the argument checks). The last 1024
  are kept: `x + 1` in a loop builds its constant's three nodes once (they would die with each step's graph)."""
  # only python scalars and int shapes are kept (numpy's -0.0 equals 0.0 as a key; a symbolic view gets .realized)
  key = (dtype, type(value), arg_key(value), shape) if type(value) in (int, float, bool) else None
  if key is not None and (v := _const_views.get(key)) is not None: return v
  c = UOp.const(dtype, value)
  if shape:
    c = UOp(Ops.RESHAPE, dtype, (c,), (1,) * len(shape))
    if not all(s == 1 for s in shape): c = UOp(Ops.EXPAND, dtype, (c,), shape)
  if key is None or not all(type(s) is int for s in shape): return c
  if len(_const_views) >= 1024: _const_views.clear()
  _const_views[key] = c
  return c

def _resolved(u: UOp) -> UOp:
  """u, or the buffer view holding its value if it was realized earlier."""
  return u.realized if u.realized is not None else u

def _is_buffer(u: UOp) -> bool:
  return u.op is Ops.BUFFER or (u.op is Ops.RESHAPE and u.src[0].op is Ops.BUFFER)

def _from_numpy(arr, device: str) -> UOp:
  import numpy as np
  dt = _np_to_dtype(arr)
  shape = arr.shape  # before ascontiguousarray, which makes 0-d arrays 1-d
  arr = np.ascontiguousarray(arr)
  return buffer_uop(Buffer(device, arr.size, dt).copyin(arr), shape)

def _from_list(data, device: str, dtype: DType | None) -> UOp:
  """Nested Python lists -> a buffer, packed with struct (no numpy import on this path)."""
  import struct
  shape: list[int] = []
  flat: list = []
  def walk(x, d):
    if isinstance(x, (list, tuple)):
      if len(shape) <= d:
        if flat: raise ValueError(f"Tensor: ragged nested list: a list at depth {d} where earlier elements were scalars")
        shape.append(len(x))
      elif shape[d] != len(x): raise ValueError(f"Tensor: ragged nested list: a list at depth {d} has length {len(x)}, expected {shape[d]}")
      for v in x: walk(v, d + 1)
    elif len(shape) > d: raise ValueError(f"Tensor: ragged nested list: a scalar at depth {d}, expected a list of length {shape[d]}")
    elif isinstance(x, Tensor): raise TypeError("Tensor: a list of Tensors is not supported; use Tensor.stack")
    elif not isinstance(x, (bool, int, float)):
      if hasattr(x, "item"): x = x.item()  # numpy scalars
      else: raise TypeError(f"Tensor: cannot build a tensor from a list containing {type(x).__name__}")
      flat.append(x)
    else: flat.append(x)
  walk(data, 0)
  dt = dtype or dtypes.from_py(data)
  store = dtypes.float32 if dt == dtypes.bfloat16 else dt  # struct has no bfloat16: pack float32, cast in a kernel
  vals = [float(v) for v in flat] if dtypes.is_float(store) else [bool(v) for v in flat] if store == dtypes.bool else [int(v) for v in flat]
  try: raw = struct.pack(f"<{len(vals)}{store.fmt}", *vals)
  except (struct.error, OverflowError) as e: raise OverflowError(f"Tensor: a value does not fit in {store} ({e})") from None
  buf = Buffer(device, len(vals), store)
  if raw: buf.mem.copyin(_addr(raw), len(raw))
  uop = buffer_uop(buf, tuple(shape))
  return uop.cast(dt) if store != dt else uop

def _addr(raw: bytes) -> int:
  import ctypes
  return ctypes.cast(ctypes.c_char_p(raw), ctypes.c_void_p).value
