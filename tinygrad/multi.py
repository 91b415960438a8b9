"""Several devices of one kind: a sharded Tensor is one logical tensor whose UOp is MULTI(shard per device).

Tensor ops build logical graphs over MULTI nodes as over any other node (autograd included). At realize, `split`
rewrites a logical graph into one graph per device:
  * elementwise ops apply shard by shard; an operand that is not sharded the same way is copied to each device and
    cut to each shard's range (a replicated tensor is cut, a single-device tensor is copied);
  * a REDUCE over an axis that is not sharded stays shard by shard; over the sharded axis, each device reduces its
    shard, the partial results are copied to every device and combined there (an all-reduce; the result is
    replicated): a data-parallel step's gradient sums come out identical on every device;
  * movement ops apply per shard when they keep the sharded axis whole (reshape that keeps it as one dim, permute,
    expand, and pad/shrink/flip/windows of other axes); anything else raises a clear error.
"""
from __future__ import annotations
from dataclasses import dataclass
from tinygrad.uop import UOp, Ops, MOVEMENT, ELEMENTWISE
from tinygrad.helpers import prod

@dataclass(frozen=True)
class MultiArg:
  axis: int | None                   # the sharded axis; None: every device holds the whole tensor (replicated)
  devices: tuple[str, ...]
  bounds: tuple[tuple[int, int], ...]  # each shard's [start, end) along axis ((0, n) for every device when replicated)

def shard_bounds(n: int, k: int) -> tuple[tuple[int, int], ...]:
  """Split n into k contiguous pieces, the first ones one longer when k does not divide n."""
  sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
  starts = [sum(sizes[:i]) for i in range(k)]
  return tuple((s, s + z) for s, z in zip(starts, sizes))

def multi_shape(srcs: tuple[UOp, ...], arg: MultiArg) -> tuple[int, ...]:
  s = srcs[0].shape
  if arg.axis is None: return s
  return s[:arg.axis] + (arg.bounds[-1][1],) + s[arg.axis + 1:]

class Sharded:
  """One logical node as per-device graphs."""
  __slots__ = ("shards", "arg")
  def __init__(self, shards: tuple[UOp, ...], arg: MultiArg): self.shards, self.arg = shards, arg

def _device_of(u: UOp) -> str | None:
  """The device a non-sharded graph's buffers live on (None for constants and IOTA only)."""
  for x in u.toposort():
    if x.op is Ops.BUFFER: return x.arg.device
    if x.op is Ops.COPY: return x.arg
  return None

class Splitter:
  def __init__(self, devices: tuple[str, ...]):
    self.devices = devices
    self.memo: dict[UOp, Sharded | None] = {}

  def split(self, u: UOp) -> Sharded | None:
    """Per-device graphs for u, or None if u does not depend on any sharded tensor."""
    if u in self.memo: return self.memo[u]
    if u.realized is not None and u.op is not Ops.MULTI: out = self.split(u.realized)
    elif u.op is Ops.MULTI: out = Sharded(u.src, u.arg)
    elif not u.src: out = None
    else: out = self._split(u)
    self.memo[u] = out
    return out

  def _split(self, u: UOp) -> Sharded | None:
    parts = [self.split(s) for s in u.src]
    if all(p is None for p in parts): return None
    axis = next((p.arg.axis for p in parts if p is not None and p.arg.axis is not None), None)
    like = next(p for p in parts if p is not None and p.arg.axis == axis)
    if any(p is not None and p.arg.axis not in (None, axis) for p in parts):
      raise RuntimeError(f"sharding: {u.op.name} combines tensors sharded along axes {sorted({p.arg.axis for p in parts if p})}; reshard one with .shard(devices, axis)")
    if u.op is Ops.REDUCE: return self._reduce(u, parts[0])
    if u.op in MOVEMENT: return self._movement(u, parts[0])
    if u.op not in ELEMENTWISE and u.op not in (Ops.CONTIGUOUS, Ops.DETACH, Ops.CONTIGUOUS_BACKWARD):
      raise RuntimeError(f"sharding: {u.op.name} of a sharded tensor is not supported")
    srcs = [self._fit(s, p, like.arg) for s, p in zip(u.src, parts)]
    return Sharded(tuple(UOp(u.op, u.dtype, tuple(ss[i] for ss in srcs), u.arg) for i in range(len(self.devices))), like.arg)

  def _fit(self, u: UOp, p: Sharded | None, arg: MultiArg) -> tuple[UOp, ...]:
    """u as one graph per device, cut to the shards of arg."""
    if p is None:
      dev = _device_of(u)
      if dev is None: shards = (u,) * len(self.devices)  # constants: the same graph everywhere
      else:
        b = _realized_buffer(u, dev)
        shards = tuple(b if d == dev else _copy(b, d) for d in self.devices)
      p = Sharded(shards, MultiArg(None, self.devices, ((0, 0),) * len(self.devices)))
    if p.arg.axis == arg.axis: return p.shards
    # a replicated operand meets a sharded one: each device keeps its shard's range
    return tuple(_shrink_axis(s, arg.axis, b) for s, b in zip(p.shards, arg.bounds))

  def _reduce(self, u: UOp, p: Sharded) -> Sharded:
    axes = u.arg.axes
    if p.arg.axis is None or p.arg.axis not in axes:
      return Sharded(tuple(UOp(Ops.REDUCE, u.dtype, (s,), u.arg) for s in p.shards), p.arg)
    # over the sharded axis: reduce each shard on its device, then every device combines all partial results
    partial = [_realized_buffer(UOp(Ops.REDUCE, u.dtype, (s,), u.arg), d) for s, d in zip(p.shards, self.devices)]
    out = []
    for d in self.devices:
      acc = None
      for pb, pd in zip(partial, self.devices):
        x = pb if pd == d else _copy(pb, d)
        acc = x if acc is None else UOp(u.arg.op, u.dtype, (acc, x))
      out.append(acc)
    return Sharded(tuple(out), MultiArg(None, self.devices, ((0, 0),) * len(self.devices)))

  def _movement(self, u: UOp, p: Sharded) -> Sharded:
    a, op, arg = p.arg.axis, u.op, u.arg
    if a is None: return Sharded(tuple(UOp(op, u.dtype, (s,), arg) for s in p.shards), p.arg)
    src_shape = u.src[0].shape
    def per_shard(fn) -> tuple[UOp, ...]: return tuple(UOp(op, u.dtype, (s,), fn(b[1] - b[0])) for s, b in zip(p.shards, p.arg.bounds))
    if op is Ops.RESHAPE:
      before = prod(src_shape[:a])
      nb = next((j for j in range(len(arg) + 1) if prod(arg[:j]) == before and j < len(arg) and arg[j] == src_shape[a]), None)
      if nb is None: raise RuntimeError(f"sharding: reshape {src_shape} -> {arg} splits or merges the sharded axis {a}")
      return Sharded(per_shard(lambda n: arg[:nb] + (n,) + arg[nb + 1:]), MultiArg(nb, p.arg.devices, p.arg.bounds))
    if op is Ops.PERMUTE: return Sharded(per_shard(lambda n: arg), MultiArg(arg.index(a), p.arg.devices, p.arg.bounds))
    if op is Ops.EXPAND: return Sharded(per_shard(lambda n: arg[:a] + (n,) + arg[a + 1:]), p.arg)
    if op in (Ops.PAD, Ops.SHRINK):
      if arg[a] != ((0, 0) if op is Ops.PAD else (0, src_shape[a])):
        raise RuntimeError(f"sharding: {op.name.lower()} along the sharded axis {a} is not supported")
      return Sharded(per_shard(lambda n: arg[:a] + (((0, 0) if op is Ops.PAD else (0, n)),) + arg[a + 1:]), p.arg)
    if op is Ops.FLIP:
      if arg[a]: raise RuntimeError(f"sharding: flip along the sharded axis {a} is not supported")
      return Sharded(per_shard(lambda n: arg), p.arg)
    if op is Ops.WINDOWS:
      if a >= len(src_shape) - len(arg.kernel): raise RuntimeError(f"sharding: sliding windows over the sharded axis {a}")
      return Sharded(per_shard(lambda n: arg), p.arg)
    raise RuntimeError(f"sharding: {op.name} of a sharded tensor is not supported")

def _shrink_axis(u: UOp, axis: int, b: tuple[int, int]) -> UOp:
  return UOp(Ops.SHRINK, u.dtype, (u,), tuple(b if i == axis else (0, s) for i, s in enumerate(u.shape)))

def _copy(b: UOp, device: str) -> UOp:
  """A transfer of a realized buffer view to another device (the view's shape kept)."""
  buf = b if b.op is Ops.BUFFER else b.src[0]
  c = UOp(Ops.COPY, b.dtype, (buf,), device)
  return c if c.shape == b.shape else UOp(Ops.RESHAPE, b.dtype, (c,), b.shape)

def _realized_buffer(u: UOp, device: str) -> UOp:
  """u computed on device now (a buffer view), so it can be copied to the other devices."""
  from tinygrad.engine.realize import realize_uops
  from tinygrad.tensor import _resolved, _is_buffer
  if _is_buffer(r := _resolved(u)): return r
  return realize_uops([u], device)[0]

def realize_multi(roots: list[UOp], devices: tuple[str, ...]) -> list[UOp]:
  """Realize logical roots on their devices; returns a MULTI of buffer views for each."""
  from tinygrad.engine.realize import realize_uops
  sp = Splitter(devices)
  parts = []
  for r in roots:  # a graph of constants only (zeros for optimizer state) is computed on every device
    parts.append(sp.split(r) or Sharded((r,) * len(devices), MultiArg(None, devices, ((0, 0),) * len(devices))))
  done = [realize_uops([p.shards[i] for p in parts], d) for i, d in enumerate(devices)]
  return [UOp(Ops.MULTI, r.dtype, tuple(done[i][j] for i in range(len(devices))), p.arg) for j, (r, p) in enumerate(zip(roots, parts))]
