"""Lowering: a Tensor-level graph for one kernel output -> a kernel graph of loops, loads, ALU ops and one store.

Every node is evaluated at an index (one index expression per dimension, in terms of RANGE loop variables).
Movement ops only transform the index; a REDUCE opens new RANGEs for its reduced axes. Because UOps are hash-consed
and evaluation is memoised on (node, index), a value needed at the same index twice (softmax's max) is computed once.
"""
from __future__ import annotations
from dataclasses import dataclass
from tinygrad.uop import UOp, Ops, RangeArg, ELEMENTWISE, MOVEMENT
from tinygrad.dtype import dtypes, DType
from tinygrad.helpers import prod
from tinygrad.rewrite import graph_rewrite
from codegen.symbolic import pm_symbolic

class NeedsRealize(Exception):
  """Raised when inlining a reduce into this kernel would recompute it; the scheduler realizes it first."""
  def __init__(self, node: UOp): self.node = node

@dataclass(frozen=True)
class GlobalArg:
  index: int
  size: int | UOp   # elements; an index expression of DEFINE_VARs for a buffer of symbolic size

def strides_for(shape: tuple[int, ...]) -> tuple[int, ...]:
  out, acc = [], 1
  for s in reversed(shape):
    out.append(acc if s != 1 else 0)
    acc *= s
  return tuple(reversed(out))

def flat_index(idx: tuple[UOp, ...], shape: tuple[int, ...]) -> UOp:
  out = UOp.const(dtypes.index, 0)
  for i, st in zip(idx, strides_for(shape)):
    if st: out = out + i * st
  return out

def unflat_index(flat: UOp, shape: tuple[int, ...]) -> tuple[UOp, ...]:
  out = []
  for d, (s, st) in enumerate(zip(shape, strides_for(shape))):
    if s == 1: out.append(UOp.const(dtypes.index, 0)); continue
    x = flat if st == 1 else flat // st
    out.append(x if d == 0 else x % s)
  return tuple(out)

REDUCE_IDENTITY = {Ops.ADD: 0, Ops.MUL: 1}
RECOMPUTE_OPS = 3  # an elementwise value costing this many ops is realized rather than recomputed in every iteration

def reduce_identity(op: Ops, dtype: DType):
  if op is Ops.MAX: return dtypes.min(dtype)
  return REDUCE_IDENTITY[op]

class Lowerer:
  def __init__(self, outs: tuple[UOp, ...], is_realized, simplified: dict[UOp, UOp] | None = None):
    self.outs, self.is_realized = outs, is_realized
    self.inputs: dict[UOp, int] = {}            # realized tensor-level node -> kernel parameter number (0 is the output)
    self.memo: dict[tuple, UOp] = {}
    self.reduce_at: dict[UOp, list[tuple[UOp, ...]]] = {}  # tensor-level REDUCE -> the indices it was evaluated at
    self.parent: dict[UOp, UOp | None] = {}     # loop nesting of RANGEs
    self.n_ranges = 0
    self.simplified: dict[UOp, UOp] = {} if simplified is None else simplified  # index expression -> simplified
    self.costs: dict[UOp, tuple[bool, bool]] = {}  # node -> inline_cost(node)
    self.reduced_in: dict[UOp, frozenset[UOp]] = {}  # costly elementwise node -> the reduce loops it was first evaluated in
    self.inlined: set[UOp] = set()              # REDUCEs computed inside this kernel

  def simplify(self, idx: UOp) -> UOp:
    """Index expressions are simplified as they are built, so that the loops a value depends on (the fusion rule) and the
    memo keys see `(i*16+j)//16` as `i`."""
    return graph_rewrite(idx, pm_symbolic, memo=self.simplified)

  def new_range(self, end: int | UOp, kind: str, parent: UOp | None) -> UOp:
    r = UOp(Ops.RANGE, dtypes.index, (end,) if isinstance(end, UOp) else (), RangeArg(self.n_ranges, end, kind))
    self.n_ranges += 1
    self.parent[r] = parent
    return r

  def chain(self, r: UOp | None) -> set[UOp]:
    out = set()
    while r is not None: out.add(r); r = self.parent[r]
    return out

  def lower(self) -> UOp:
    """One loop nest over the outputs' common shape and one STORE per output (parameters 0..len(outs)-1); values the
    outputs share at the same index (a gradient feeding Adam's two moments and the parameter) are computed once."""
    shape, parent, idx = self.outs[0].shape, None, []
    for s in shape:
      if s == 1: idx.append(UOp.const(dtypes.index, 0)); continue
      parent = self.new_range(s, "global", parent)
      idx.append(parent)
    bufs, stores = [], []
    for i, out in enumerate(self.outs):
      val = self.eval(out, tuple(idx))  # at the loops' full index, so never recomputed: eval raises nothing for it
      bufs.append(buf := UOp(Ops.DEFINE_GLOBAL, out.dtype, (), GlobalArg(i, out.size)))
      stores.append(UOp(Ops.STORE, dtypes.void, (buf, flat_index(tuple(idx), shape), val)))
    # the SINK's arg lists every parameter, so one the simplifier made unused still keeps its place in the signature;
    # the values of symbolic dimensions (DEFINE_VAR, by name) follow the buffers
    params = tuple(bufs) + tuple(UOp(Ops.DEFINE_GLOBAL, u.dtype, (), GlobalArg(i, u.size)) for u, i in self.inputs.items())
    sizes = [p.arg.size for p in params if isinstance(p.arg.size, UOp)]
    variables = {x for u in stores + sizes for x in u.toposort() if x.op is Ops.DEFINE_VAR}
    return UOp(Ops.SINK, dtypes.void, tuple(stores), params + tuple(sorted(variables, key=lambda v: v.arg.name)))

  def load(self, u: UOp, idx: tuple[UOp, ...]) -> UOp:
    if u not in self.inputs: self.inputs[u] = len(self.inputs) + len(self.outs)
    buf = UOp(Ops.DEFINE_GLOBAL, u.dtype, (), GlobalArg(self.inputs[u], u.size))
    return UOp(Ops.LOAD, u.dtype, (buf, flat_index(idx, u.shape)))

  def eval(self, u: UOp, idx: tuple[UOp, ...]) -> UOp:
    """u at idx: a load where u is realized (the memo keeps it too: a node is looked up far more often than built)."""
    key = (u, idx)
    if (ret := self.memo.get(key)) is not None: return ret
    if self.is_realized(u): ret = self.load(u, idx)
    elif u.op in ELEMENTWISE and not _is_onehot(u) and \
         ((self.costly(u) or self.operand_of_reduce(u, idx)) and not self.once_per_iteration(idx) or self.in_second_reduce(u, idx)):
      raise NeedsRealize(u)
    else: ret = self._eval(u, idx)
    self.memo[key] = ret
    return ret

  def once_per_iteration(self, idx: tuple[UOp, ...]) -> bool:
    """True if a value at idx depends on every loop enclosing the innermost loop it uses: then it is computed once per
    iteration of the loops it sits in, and inlining it recomputes nothing."""
    deps = frozenset().union(*(i.ranges for i in idx))
    deepest = max(deps, key=lambda r: len(self.chain(r)), default=None)
    return deps == frozenset(self.chain(deepest))

  def operand_of_reduce(self, u: UOp, idx: tuple[UOp, ...]) -> bool:
    """Is u computed inside a reduce loop (a matmul's operand: relu(h + b) of the layer before)? Recomputed there for
    every iteration of a loop it does not depend on (each column tile), even one op costs as much as the multiply-add
    it feeds: it is realized (test_operand_transform_of_a_matmul_is_realized). Left inline: a cast; a value of
    constants only (it folds: `Tensor.ones(n, n) * 2 @ b`); a value that reads an unrealized reduce: that reduce is
    realized first (it is read at a repeated index too), so its kernel stores it for the backward pass (relu's mask
    reads h, not relu(h)). test_step_after_loss_reuses_forward"""
    if u.op is Ops.CAST or not any(rng.arg.kind == "reduce" for i in idx for rng in i.ranges): return False
    return self.inline_cost(u)[1]

  def costly(self, u: UOp) -> bool: return self.inline_cost(u)[0]

  def in_second_reduce(self, u: UOp, idx: tuple[UOp, ...]) -> bool:
    """Is the costly value u evaluated inside a second reduce of this kernel? Each reduce computes it for every one of
    its iterations: BatchNorm's backward feeds one gradient to sum(dy) and sum(dy * xhat), and a ResNet's gradient
    through a strided convolution (gathers, index divisions) was computed six times over in one kernel. It is realized
    once instead. test_value_reduced_twice_is_realized_once"""
    reduces = frozenset(r for i in idx for r in i.ranges if r.arg.kind == "reduce")
    return bool(reduces) and self.costly(u) and self.reduced_in.setdefault(u, reduces) != reduces

  def inline_cost(self, u: UOp) -> tuple[bool, bool]:
    """One walk of u's graph down to realized inputs and reduces: does inlining u cost RECOMPUTE_OPS or more ALU ops per
    evaluation, and does it read a buffer but no reduce computed in this kernel (operand_of_reduce)? The walk stops at
    the threshold (counting whole graphs made lowering quadratic in a long elementwise chain); the second answer is
    only asked of a value below it, whose walk went to the end."""
    if (c := self.costs.get(u)) is None:
      seen, stack, n, loads, reduce = set(), [u], 0, False, False
      while stack and n < RECOMPUTE_OPS:
        x = stack.pop()
        if x in seen: continue
        seen.add(x)
        if self.is_realized(x) or x.op is Ops.BUFFER: loads = True
        elif x.op is Ops.REDUCE: reduce = True
        else:
          if x.op in ELEMENTWISE: n += 1
          stack.extend(x.src)
      c = self.costs[u] = (n >= RECOMPUTE_OPS, loads and not reduce)
    return c

  def _eval(self, u: UOp, idx: tuple[UOp, ...]) -> UOp:
    op = u.op
    if op in (Ops.CONST, Ops.DEFINE_VAR): return u
    if op is Ops.IOTA: return idx[0].cast(u.dtype)
    if op in ELEMENTWISE: return UOp(op, u.dtype, tuple(self.eval(s, idx) for s in u.src), u.arg)
    if op in (Ops.DETACH, Ops.CONTIGUOUS_BACKWARD, Ops.CONTIGUOUS, Ops.COPY): return self.eval(u.src[0], idx)
    if op in MOVEMENT:
      src = u.src[0]
      if op is Ops.PAD:
        valid, nidx = None, []
        for i, s, (b, _) in zip(idx, src.shape, u.arg):
          if b == 0 and s == u.shape[len(nidx)]: nidx.append(i); continue
          cond = (i < b + s) if b == 0 else (i >= b).logical_and(i < b + s)
          valid = cond if valid is None else valid.logical_and(cond)
          nidx.append(self.simplify(i - b) if b else i)
        inner = self.eval(src, tuple(nidx))
        return inner if valid is None else valid.where(inner, inner.const_like(0))
      # a RESHAPE of a realized buffer reads it at the flat index (no division): it stays affine, so a padded row is
      # still one masked vector load (test_padded_row_is_one_masked_load); any other is divided apart again
      if op is Ops.RESHAPE and not (self.is_realized(src) or src.op is Ops.BUFFER): idx = tuple(_clamped(i, n) for i, n in zip(idx, u.shape))
      return self.eval(src, tuple(self.simplify(i) for i in move_index(u, idx)))
    if op is Ops.REDUCE: return self.eval_reduce(u, idx)
    raise NotImplementedError(f"lowering of {op} is not supported")

  def eval_reduce(self, u: UOp, idx: tuple[UOp, ...]) -> UOp:
    # inline only if computed once per iteration of the loops it sits in, at one index; else realize it first
    if u not in self.outs:
      seen = self.reduce_at.setdefault(u, [])
      if (seen and not (_short_and_large(u) and _disjoint(seen, idx))) or not self.once_per_iteration(idx):
        raise NeedsRealize(u)
      seen.append(idx)
    deepest = max(frozenset().union(*(i.ranges for i in idx)), key=lambda r: len(self.chain(r)), default=None)
    if u not in self.outs: self.inlined.add(u)
    src, rop = u.src[0], u.arg.op
    if any(src.shape[a] == 0 for a in u.arg.axes): return UOp.const(u.dtype, reduce_identity(rop, u.dtype))
    nidx, rngs, parent = list(idx), [], deepest
    for a in u.arg.axes:
      if src.shape[a] == 1: continue
      parent = self.new_range(src.shape[a], "reduce", parent)
      rngs.append(parent)
      nidx[a] = parent
    val = self.eval(src, tuple(nidx))
    if not rngs: return val
    red = UOp(Ops.REDUCE, u.dtype, (val, *rngs), rop)
    if u not in self.outs and onehot_scatter(red) is not None: raise NeedsRealize(u)  # a scatter (codegen/opt.py) stores nothing else
    return red

def _short_and_large(u: UOp) -> bool:
  """A reduce of at most 8 elements into 4 MiB or more: stored, it is one float per 8 multiply-adds or fewer, written and
  read back; computed where it is read (a conv's input gradient, also over its border's padding) it costs less: a
  ResNet step's kernels 6.55 -> 5.92 ms (docs/design.md "The fusion rule"). test_conv_input_gradient_sums_its_offsets_in_one_kernel"""
  folded = prod(u.src[0].shape[a] for a in u.arg.axes)
  return isinstance(u.size, int) and isinstance(folded, int) and folded <= 8 and u.size * u.dtype.itemsize >= 4 << 20

def _disjoint(seen: list[tuple[UOp, ...]], idx: tuple[UOp, ...]) -> bool:
  """Does idx read other elements than every index in seen: some axis at two different constants (a conv's input
  gradient reads its per-offset products at each kernel offset once, the col2im of windows_adjoint)?"""
  return all(any(a.op is Ops.CONST and b.op is Ops.CONST and a.arg != b.arg for a, b in zip(s, idx)) for s in seen)

PAD_CLAMP = "pad clamp"  # the arg of a clamp's MAX or WHERE: codegen/opt.py drops them once the divisions are simplified

def _clamped(i: UOp, n: int | UOp) -> UOp:
  """An index into a dimension of n, clamped to [0, n) where its bounds go past it: a PAD's inner index is i - b, out
  of range only where the PAD's mask is false. A RESHAPE flattens the index and divides it again; the simplifier takes
  (h*W + w) // W back to h only for h and w in range, so without the clamp a convolution's backward through padding
  kept every division (a ConvTranspose2d's weight gradient: ~2000 lines of index arithmetic per iteration). Where the
  mask is true the clamp changes nothing, so codegen/opt.py pm_drop_pad_clamps removes it again after simplification.
  test_reshape_of_padded_index_simplifies"""
  if not isinstance(n, int): return i
  # min(i, n - 1) as one term with a positive coefficient: -max(-i, 1 - n) kept (x + 1) // 2 % 14 in an overlapping
  # pool's backward, whose divisions see only affine terms  test_overlapping_pool_backward_has_no_division
  if i.vmax > n - 1: i = UOp(Ops.WHERE, i.dtype, (i < n, i, i.const_like(n - 1)), PAD_CLAMP)
  return UOp(Ops.MAX, i.dtype, (i, i.const_like(0)), PAD_CLAMP) if i.vmin < 0 else i

def eq_operands(c: UOp) -> tuple[UOp, UOp] | None:
  """(a, b) if c is `a == b`, which the front end writes as (a != b) != True."""
  if c.op is Ops.CMPNE and c.src[1].op is Ops.CONST and c.src[1].arg is True and c.src[0].op is Ops.CMPNE: return c.src[0].src
  return None

SCATTER_MIN_ROWS = 32  # a one-hot sum into at least this many output rows is written as a scatter

def onehot_sum(red: UOp) -> tuple[tuple[UOp, UOp], UOp] | None:
  """((a, b), x) if red sums where(a == b, x, 0) over its loops: a gather (Tensor indexing, Embedding) or its gradient."""
  if red.op is not Ops.REDUCE or red.arg is not Ops.ADD or red.src[0].op is not Ops.WHERE: return None
  cond, x, zero = red.src[0].src
  if zero.op is not Ops.CONST or zero.arg != 0 or (ops := eq_operands(cond)) is None: return None
  return ops, x

def onehot_scatter(red: UOp) -> tuple[UOp, UOp, UOp] | None:
  """(e, v, x) if red sums where(e == v, x, 0) over its loops, v an output loop of SCATTER_MIN_ROWS or more that
  neither e nor x depends on: the gradient of a gather (an Embedding's weight), which codegen/opt.py
  scatter_onehot_reduce writes as a scatter; lowered in its own kernel, with nothing after it."""
  if (m := onehot_sum(red)) is None or not all(isinstance(r.arg.end, int) for r in red.src[1:]): return None
  ops, x = m
  for e, b in (ops, ops[::-1]):
    v = b.src[0] if b.op is Ops.CAST else b
    if v.op is Ops.RANGE and v.arg.kind == "global" and isinstance(v.arg.end, int) and v.arg.end >= SCATTER_MIN_ROWS and \
       dtypes.is_int(e.dtype) and v not in e.ranges and v not in x.ranges: return e, v, x
  return None

def _is_onehot(u: UOp) -> bool:
  """`e == arange` (written (e != iota) != True), and its inner `!=`: kept inline so the gather fold
  (codegen/opt.py fold_onehot_reduce) turns the reduce they feed into one load; the expensive part e is checked (and
  hoisted or realized) on its own. test_gather_of_computed_index_is_one_load"""
  return u.op is Ops.CMPNE and any(x.op is Ops.IOTA for x in u.toposort())

def move_index(u: UOp, idx: tuple[UOp, ...]) -> tuple[UOp, ...]:
  """The index into u.src[0] that the movement op u reads at `idx` (PAD is handled by the caller)."""
  op, arg, src_shape = u.op, u.arg, u.src[0].shape
  zero = UOp.const(dtypes.index, 0)
  if op is Ops.RESHAPE: return unflat_index(flat_index(idx, u.shape), src_shape)
  if op is Ops.PERMUTE:
    out: list[UOp] = [zero] * len(idx)
    for i, p in enumerate(arg): out[p] = idx[i]
    return tuple(out)
  if op is Ops.EXPAND: return tuple(zero if s == 1 else i for i, s in zip(idx, src_shape))
  if op is Ops.SHRINK: return tuple(i + b if b else i for i, (b, _) in zip(idx, arg))
  if op is Ops.FLIP: return tuple((s - 1) - i if f else i for i, s, f in zip(idx, src_shape, arg))
  if op is Ops.WINDOWS:  # (..., o, k) reads x[..., o*stride + k*dilation]
    n = len(arg.kernel)
    lead = len(idx) - 2 * n
    return idx[:lead] + tuple(idx[lead + j] * arg.stride[j] + idx[lead + n + j] * arg.dilation[j] for j in range(n))
  raise NotImplementedError(op)

def lower(outs: tuple[UOp, ...], is_realized, simplified: dict[UOp, UOp] | None = None) -> tuple[UOp, list[UOp], set[UOp]]:
  """Lower Tensor-level nodes of one shape into one kernel graph; returns the SINK, the realized inputs it reads, and
  the REDUCEs it computes inline. `simplified`, shared by the kernels of one schedule, keeps the index expressions
  simplified so far (kernels of one graph index alike: a small ResNet's training step lowered in 3.5 instead of 9 s)."""
  lw = Lowerer(outs, is_realized, simplified)
  sink = lw.lower()
  return sink, sorted(lw.inputs, key=lw.inputs.__getitem__), lw.inlined
