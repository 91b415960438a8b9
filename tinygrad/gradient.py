"""Autograd as a graph transformation: one rule per primitive op maps (upstream gradient, node) to the gradients of
the node's sources. Gradients are lazy UOp graphs like everything else, so the backward pass fuses with whatever
consumes it (the optimizer update)."""
from __future__ import annotations
import itertools, math
from dataclasses import dataclass
from typing import TYPE_CHECKING
from tinygrad.uop import UOp, Ops
from tinygrad.dtype import dtypes
from tinygrad.rewrite import UPat, PatternMatcher
from tinygrad.helpers import argsort, ceildiv, prod

if TYPE_CHECKING: from tinygrad.tensor import Tensor

LN2 = math.log(2)

def _t(u: UOp, like: "Tensor") -> "Tensor": return like._new(u)

def _reduce_grad(g: "Tensor", ret: UOp) -> tuple:
  src = _t(ret.src[0], g)
  if ret.arg.op is Ops.ADD: return (g.expand(src.shape),)
  if ret.arg.op is Ops.MAX:  # split equally between tied maxima (as tinygrad)
    hit = (src == _t(ret, g).expand(src.shape)).cast(g.dtype)
    share = g / hit.sum(ret.arg.axes, keepdim=True)
    # max-pooling: share is computed once per window, not by each element of the window reading it
    if ret.src[0].op is Ops.WINDOWS: share = share.contiguous()
    return (hit * share.expand(src.shape),)
  return ((g * _t(ret, g)).expand(src.shape) / src,)  # MUL

def _max_grad(g: "Tensor", ret: UOp) -> tuple:
  a, b = _t(ret.src[0], g), _t(ret.src[1], g)
  wa = (a > b).cast(g.dtype) + (a == b).cast(g.dtype) * 0.5
  return (g * wa, g * (1 - wa))

def _windows_grad(g: "Tensor", ret: UOp) -> tuple:
  """The adjoint of sliding windows: x[i] collects g[o, k] for every o*stride + k*dilation == i. One padded (and,
  for stride > 1, zero-interleaved) copy of g per kernel offset, summed: loads under masks, no reduce over windows."""
  arg, src_shape = ret.arg, ret.src[0].shape
  n = len(arg.kernel)
  lead = len(src_shape) - n
  if all(d == 1 for d in arg.dilation): return (windows_adjoint(g, arg.stride, src_shape),)
  acc = None
  for ks in itertools.product(*(range(k) for k in arg.kernel)):
    t = g[(slice(None),) * (lead + n) + ks]
    for j, k in enumerate(ks):
      ax, o, st, i = lead + j, ret.shape[lead + j], arg.stride[j], src_shape[lead + j]
      q, r = divmod(k * arg.dilation[j], st)
      # o -> a canvas of m*st positions holding t[o'] at (o' + q + 1)*st; shrinking from st - r puts it at o'*st + k*d.
      # Every canvas index is non-negative, so its // st and % st simplify.
      m = ceildiv(i + st - r, st)
      t = t.pad(tuple((q + 1, m - q - 1 - o) if a == ax else (0, 0) for a in range(t.ndim)))
      if st > 1:
        t = t.reshape(t.shape[:ax + 1] + (1,) + t.shape[ax + 1:]).pad(tuple((0, st - 1) if a == ax + 1 else (0, 0) for a in range(t.ndim + 1)))
        t = t.reshape(t.shape[:ax] + (m * st,) + t.shape[ax + 2:])
      t = t.shrink(tuple((st - r, st - r + i) if a == ax else None for a in range(t.ndim)))
    acc = t if acc is None else acc + t
  return (acc,)

@dataclass(frozen=True)
class _StandIn:
  """The buffer of the stand-in for g in a cached adjoint (only its size is read: the BUFFER node's shape)."""
  size: int

_ADJOINTS: dict[tuple, tuple[UOp, UOp]] = {}  # (g's shape, dtype, device, stride, src_shape) -> (stand-in, adjoint)

def windows_adjoint(g: "Tensor", stride: tuple, src_shape: tuple) -> "Tensor":
  """x of src_shape collecting g[..., o, k] (shape (..., *outs, *kernel)) at every x[..., o*stride + k]: the gradient
  of undilated sliding windows, and ConvTranspose2d's output. Built once per shape with a stand-in for g, then g put in
  its place: the ~100 movement ops of a 3x3 window's adjoint took 70% of building a ResNet's backward pass.
  test_windows_adjoint_from_the_cache_is_the_same_graph"""
  if not isinstance(g.device, str) or g._on_disk() or not all(type(d) is int for d in g.shape + tuple(src_shape)):
    return _windows_adjoint(g, stride, src_shape)
  key = (g.shape, g.dtype, g.device, tuple(stride), tuple(src_shape))
  if (hit := _ADJOINTS.get(key)) is None:
    if len(_ADJOINTS) >= 1024: _ADJOINTS.clear()  # a bound for programs that see ever new shapes
    stand_in = UOp(Ops.RESHAPE, g.dtype, (UOp.unique(Ops.BUFFER, g.dtype, (), _StandIn(prod(g.shape))),), g.shape)
    hit = _ADJOINTS[key] = (stand_in, _windows_adjoint(g._new(stand_in), stride, src_shape).uop)
  return g._new(hit[1].substitute({hit[0]: g.uop}))

def _windows_adjoint(g: "Tensor", stride: tuple, src_shape: tuple) -> "Tensor":
  """The kernel offsets in groups of `stride` consecutive ones: the windows restricted to one group do not overlap, so
  each group's adjoint is movement only (a 3x3 stride-2 window: 4 groups of offsets, not 9 masked, zero-interleaved
  copies)."""
  n = len(stride)
  lead, outs, kernel = len(src_shape) - n, g.shape[len(g.shape) - 2 * n:len(g.shape) - n], g.shape[len(g.shape) - n:]
  acc = None
  for ms in itertools.product(*(range(ceildiv(k, st)) for k, st in zip(kernel, stride))):
    group = tuple(slice(m * st, min(m * st + st, k)) for m, st, k in zip(ms, stride, kernel))
    t = _disjoint_windows_grad(g[(slice(None),) * (lead + n) + group], stride, src_shape, outs, tuple(m * st for m, st in zip(ms, stride)))
    acc = t if acc is None else acc + t
  return acc

def _disjoint_windows_grad(g: "Tensor", stride: tuple, src_shape: tuple, outs: tuple, shift: tuple) -> "Tensor":
  """The adjoint of windows that do not overlap (kernel <= stride, no dilation) starting at o*stride + shift, onto
  src_shape, from g of shape (..., *outs, *kernel): x[i] is in one window at most, o = (i - shift) // stride at offset
  (i - shift) % stride (in none where that is >= kernel). Movement only: each output axis next to its kernel axis, the
  kernel axis padded to the stride, the pair flattened, shifted, then cut or padded to the input's size. One load per
  element instead of one masked load per kernel offset (a max-pooled LeNet's step: its pooling-backward kernel 22.7 ->
  4.8 ms). test_pool_backward_reads_each_gradient_once"""
  n = len(stride)
  lead, kernel = len(src_shape) - n, g.shape[len(g.shape) - n:]
  t = g.permute(tuple(range(lead)) + tuple(a for j in range(n) for a in (lead + j, lead + n + j)))  # (..., o1, k1, o2, k2)
  t = t.pad(((0, 0),) * lead + tuple(p for st, k in zip(stride, kernel) for p in ((0, 0), (0, st - k))))
  t = t.reshape(t.shape[:lead] + tuple(o * st for o, st in zip(outs, stride)))
  t = t.pad(((0, 0),) * lead + tuple((sh, 0) for sh in shift))
  t = t.shrink(tuple(None if a < lead else (0, min(t.shape[a], src_shape[a])) for a in range(t.ndim)))
  return t.pad(tuple((0, 0) if a < lead else (0, src_shape[a] - t.shape[a]) for a in range(t.ndim)))

pm_gradient = PatternMatcher([
  (UPat(Ops.ADD, name="ret"), lambda g, ret: (g, g)),
  (UPat(Ops.MUL, name="ret"), lambda g, ret: (g * _t(ret.src[1], g), g * _t(ret.src[0], g))),
  (UPat(Ops.FDIV, name="ret"), lambda g, ret: (g / _t(ret.src[1], g), -g * _t(ret, g) / _t(ret.src[1], g))),
  (UPat(Ops.NEG, name="ret"), lambda g, ret: (-g,)),
  (UPat(Ops.MAX, name="ret"), _max_grad),
  (UPat(Ops.EXP2, name="ret"), lambda g, ret: (g * _t(ret, g) * LN2,)),
  (UPat(Ops.LOG2, name="ret"), lambda g, ret: (g / (_t(ret.src[0], g) * LN2),)),
  (UPat(Ops.SIN, name="ret"), lambda g, ret: (g * _t(ret.src[0], g).cos(),)),
  (UPat(Ops.SQRT, name="ret"), lambda g, ret: (g / (_t(ret, g) * 2),)),
  (UPat(Ops.RECIPROCAL, name="ret"), lambda g, ret: (-g * _t(ret, g) * _t(ret, g),)),
  (UPat(Ops.WHERE, name="ret"), lambda g, ret: (None, _t(ret.src[0], g).where(g, 0), _t(ret.src[0], g).where(0, g))),
  (UPat(Ops.CAST, name="ret"), lambda g, ret: (g.cast(ret.src[0].dtype),) if dtypes.is_float(ret.src[0].dtype) else (None,)),
  (UPat(Ops.CONTIGUOUS, name="ret"), lambda g, ret: (g,)),
  (UPat(Ops.CONTIGUOUS_BACKWARD, name="ret"), lambda g, ret: (g.contiguous(),)),
  (UPat(Ops.COPY, name="ret"), lambda g, ret: (g.to(_device_of_grad(ret, g)),)),
  (UPat(Ops.REDUCE, name="ret"), _reduce_grad),
  (UPat(Ops.RESHAPE, name="ret"), lambda g, ret: (g.reshape(ret.src[0].shape),)),
  (UPat(Ops.PERMUTE, name="ret"), lambda g, ret: (g.permute(argsort(list(ret.arg))),)),
  (UPat(Ops.EXPAND, name="ret"), lambda g, ret: (g.sum(tuple(i for i, (s, n) in enumerate(zip(ret.src[0].shape, ret.shape)) if s != n),
                                                        keepdim=True, dtype=g.dtype),)),
  (UPat(Ops.PAD, name="ret"), lambda g, ret: (g.shrink(tuple((b, b + s) for (b, _), s in zip(ret.arg, ret.src[0].shape))),)),
  (UPat(Ops.SHRINK, name="ret"), lambda g, ret: (g.pad(tuple((b, s - e) for (b, e), s in zip(ret.arg, ret.src[0].shape))),)),
  (UPat(Ops.FLIP, name="ret"), lambda g, ret: (g.flip(tuple(i for i, f in enumerate(ret.arg) if f)),)),
  (UPat(Ops.WINDOWS, name="ret"), _windows_grad),
], name="gradient")

def _device_of_grad(ret: UOp, g: "Tensor") -> str:
  for u in ret.src[0].toposort():
    if u.op is Ops.BUFFER: return u.arg.device
  return g.device

NO_GRAD = {Ops.CMPLT, Ops.CMPNE, Ops.IDIV, Ops.MOD, Ops.AND, Ops.OR, Ops.XOR, Ops.SHL, Ops.SHR, Ops.TRUNC, Ops.BITCAST,
           Ops.DETACH, Ops.BUFFER, Ops.CONST, Ops.IOTA, Ops.MULTI}  # MULTI: a sharded tensor is a leaf

def compute_gradient(root: UOp, root_grad: "Tensor", targets: set[UOp]) -> dict[UOp, "Tensor"]:
  """d(root)/d(target) for every target reachable from root, as lazy Tensors shaped like the targets."""
  topo = root.toposort()
  on_path: dict[UOp, bool] = {}
  for u in topo:  # a node matters if a target lies at or below it
    on_path[u] = u in targets or (u.op not in NO_GRAD and any(on_path[s] for s in u.src))
  grads: dict[UOp, "Tensor"] = {root: root_grad}
  for u in reversed(topo):
    if (g := grads.get(u)) is None or not on_path[u] or u.op in NO_GRAD: continue
    if not dtypes.is_float(u.dtype): continue
    if not u.src: continue
    src_grads = pm_gradient.apply(u, g=g)
    if src_grads is None: raise NotImplementedError(f"backward: no gradient rule for {u.op}")
    for s, sg in zip(u.src, src_grads):
      if sg is None or not on_path[s]: continue
      grads[s] = sg if s not in grads else grads[s] + sg
  return {t: grads[t] for t in targets if t in grads}
