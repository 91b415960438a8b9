"""Kernel optimisation passes between lowering and linearizing: half-precision promotion, vectorisation,
bounds guards for loads, and the choice of the loop that is split across threads."""
from __future__ import annotations
from dataclasses import dataclass
from tinygrad.uop import UOp, Ops, RangeArg, ALU, COMPARISON
from tinygrad.dtype import dtypes
from tinygrad.rewrite import UPat, PatternMatcher, graph_rewrite
from tinygrad.helpers import prod
from codegen.symbolic import affine, pm_symbolic

HALFS = (dtypes.float16, dtypes.bfloat16)

def _promote(u: UOp) -> UOp | None:
  if u.dtype.scalar not in HALFS or u.op is Ops.WHERE: return None
  return UOp(u.op, dtypes.float32, tuple(s.cast(dtypes.float32) for s in u.src), u.arg).cast(u.dtype)

pm_promote_half = PatternMatcher([
  (UPat(tuple(ALU - COMPARISON), name="u"), _promote),  # half/bf16 math runs in float32, rounded after each op (as numpy)
  (UPat(tuple(COMPARISON), src=(UPat.var("a", dtype=HALFS), UPat.var("b")), name="u"),   # compare halves as float32
   lambda u, a, b: UOp(u.op, u.dtype, (a.cast(dtypes.float32), b.cast(dtypes.float32)))),
  (UPat(Ops.REDUCE, dtype=HALFS, name="u"),                                            # accumulate halves in float32
   lambda u: UOp(Ops.REDUCE, dtypes.float32, (u.src[0].cast(dtypes.float32), *u.src[1:]), u.arg).cast(u.dtype)),
  (UPat(Ops.CAST, name="u", src=(UPat(Ops.CAST, src=(UPat.var("x"),), name="f"),)),   # half->float32->half is exact: drop it
   lambda u, f, x: x if u.dtype == x.dtype and x.dtype in HALFS and f.dtype == dtypes.float32 else None),
], name="promote_half")

def _eq_operands(c: UOp) -> tuple[UOp, UOp] | None:
  """(a, b) if c is `a == b`, which the front end writes as (a != b) != True."""
  if c.op is Ops.CMPNE and c.src[1].op is Ops.CONST and c.src[1].arg is True and c.src[0].op is Ops.CMPNE: return c.src[0].src
  return None

def fold_onehot_reduce(red: UOp) -> UOp | None:
  """sum over r of where(e == r, v(r), 0) -> where(0 <= e < end, v(e), 0) when e does not depend on r: a gather written
  as a one-hot reduction (Tensor indexing, Embedding) becomes one indexed load instead of a loop."""
  if red.arg is not Ops.ADD or len(red.src) != 2 or red.src[0].op is not Ops.WHERE: return None
  cond, v, zero = red.src[0].src
  r = red.src[1]
  if zero.op is not Ops.CONST or zero.arg != 0 or (ops := _eq_operands(cond)) is None: return None
  for a, b in (ops, ops[::-1]):
    rr = b.src[0] if b.op is Ops.CAST else b
    if rr is r and r not in a.ranges and dtypes.is_int(a.dtype):
      e = a.cast(dtypes.index)
      valid = (e >= 0).logical_and(e < r.arg.end)
      return valid.where(v.substitute({b: a, r: e}), zero)
  return None

pm_fold_onehot = PatternMatcher([(UPat(Ops.REDUCE, name="red"), fold_onehot_reduce)], name="fold_onehot")  # test_gather_is_one_load

@dataclass(frozen=True)
class KernelInfo:
  name: str
  vector: tuple[str, int] | None   # ("global" or "reduce", width)
  thread_range: UOp | None         # the global RANGE split across threads
  loop_order: tuple[UOp, ...]      # the global loops, outermost first
  work: int                        # loop iterations times lanes, a rough cost for the thread threshold

def _ranges(sink: UOp, kind: str) -> list[UOp]:
  return sorted((u for u in sink.toposort() if u.op is Ops.RANGE and u.arg.kind == kind), key=lambda r: r.arg.id)

def _lane_width(sink: UOp, end: int, max_lanes: int) -> int:
  itemsize = max([u.dtype.scalar.itemsize for u in sink.toposort() if u.op in (Ops.LOAD, Ops.DEFINE_GLOBAL)] + [1])
  limit = min(max_lanes, 64 // itemsize)
  return next((w for w in (16, 8, 4, 2) if w <= limit and end % w == 0 and end >= w), 1)

def _contiguous_in(idx: UOp, r: UOp) -> bool:
  terms, _ = affine(idx)
  return terms.get(r, 0) == 1 and not any(r in t.ranges for t in terms if t is not r)

def choose_vector_axis(sink: UOp, max_lanes: int) -> tuple[UOp, str, int] | None:
  """Vectorise the loop whose accesses are contiguous: candidates are the innermost output loop (if the store is
  contiguous in it) and the innermost loop of each reduce; the one with the fewest per-lane gathers wins, ties going
  to the output loop (its store is one vector store and no horizontal reduce is needed)."""
  store = sink.src[0]
  nodes = sink.toposort()
  loads = [u for u in nodes if u.op is Ops.LOAD]
  def gathers(r: UOp) -> int: return sum(1 for ld in loads if r in ld.src[1].ranges and not _contiguous_in(ld.src[1], r))
  cands: list[tuple[int, int, UOp, str]] = []
  glob = _ranges(sink, "global")
  if glob and _contiguous_in(store.src[1], glob[-1]): cands.append((gathers(glob[-1]), 0, glob[-1], "global"))
  for red in (u for u in nodes if u.op is Ops.REDUCE):
    r = red.src[-1]
    if r in store.src[1].ranges or not any(r in ld.src[1].ranges for ld in loads): continue
    cands.append((gathers(r), 1, r, "reduce"))
  for _, _, r, kind in sorted(cands, key=lambda c: (c[0], c[1])):
    if (w := _lane_width(sink, r.arg.end, max_lanes)) > 1: return r, kind, w
  return None

def vectorize(sink: UOp, r: UOp, w: int) -> UOp:
  """Replace loop r by an outer loop of end/w and w vector lanes; every value that depends on a lane becomes a vector."""
  outer = UOp(Ops.RANGE, dtypes.index, (), RangeArg(r.arg.id, r.arg.end // w, r.arg.kind))
  lane = UOp(Ops.LANE, dtypes.index.vec(w), (), w)
  memo: dict[UOp, UOp] = {r: outer * w + lane}
  for u in sink.toposort():
    if u in memo: continue
    if u.op is Ops.REDUCE and r in u.src[1:]:  # the reduced loop itself is split: its lanes are reduced too
      rngs = tuple(x for s in u.src[1:] for x in ((outer, lane) if s is r else (memo[s],)))
      memo[u] = UOp(Ops.REDUCE, u.dtype, (memo[u.src[0]],) + rngs, u.arg)
      continue
    src = tuple(memo[s] for s in u.src)
    memo[u] = u if src == u.src else u.replace(src=src)
  return graph_rewrite(memo[sink], pm_symbolic, name="simplify after vectorize")

def _has_lane(u: UOp) -> bool: return any(x.op is Ops.LANE for x in u.ranges)

def _touches_lane(body: UOp, r: UOp) -> bool:
  """Does the body of the loop r use a vector lane: directly, or inside a reduce nested in r (whose ranges hide its own
  lanes)? x.max(-1).sum(-1): the row max has lanes, so the sum over rows stays scalar. test_nested_reduce_keeps_one_lane_width"""
  return _has_lane(body) or any(x.op is Ops.REDUCE and r in x.ranges and _has_lane(x.src[0]) for x in body.toposort())

def vectorize_other_reduces(sink: UOp, max_lanes: int) -> UOp:
  """Also vectorise the loop of every other reduce whose body does not touch an already vectorised loop and whose
  loads are all contiguous in it (softmax: the row max and the row sum, beside the vectorised output). Lanes of
  different loops never meet: each such reduce folds its lanes into a scalar."""
  while True:
    for red in (u for u in sink.toposort() if u.op is Ops.REDUCE):
      r = red.src[-1]
      if r.op is not Ops.RANGE or _touches_lane(red.src[0], r): continue
      loads = [u for u in red.src[0].toposort() if u.op is Ops.LOAD and r in u.src[1].ranges]
      if not loads or not all(_contiguous_in(ld.src[1], r) for ld in loads): continue
      if (w := _lane_width(sink, r.arg.end, max_lanes)) == 1: continue
      sink = vectorize(sink, r, w)
      break
    else: return sink

def upcast(sink: UOp, r: UOp, u: int) -> UOp:
  """Unroll u iterations of the global loop r into the body: the kernel stores u results per iteration. Values that
  do not depend on r (matmul's row of B) are shared by the u copies, and u accumulators run side by side."""
  outer = UOp(Ops.RANGE, dtypes.index, (), RangeArg(r.arg.id, r.arg.end // u, r.arg.kind))
  stores = tuple(st.substitute({r: outer * u + c}) for c in range(u) for st in sink.src)
  return graph_rewrite(UOp(Ops.SINK, dtypes.void, stores, sink.arg), pm_symbolic, name="simplify after upcast")

def choose_upcasts(sink: UOp, vec_range: UOp | None) -> list[tuple[UOp, int]]:
  """Register tiling for reduce kernels (matmul, conv): unroll the innermost global loops whose unrolled copies share
  loads inside a reduce. Returns (loop, factor) pairs."""
  reds = [u for u in sink.toposort() if u.op is Ops.REDUCE and prod(r.arg.end for r in u.src[1:] if r.op is Ops.RANGE) >= 16]
  if not reds: return []
  loads = [ld for red in reds for ld in red.src[0].toposort() if ld.op is Ops.LOAD]
  out = []
  for r in reversed(_ranges(sink, "global")):
    if len(out) == 2: break
    if not any(r not in ld.src[1].ranges for ld in loads): continue  # nothing to share between the copies
    f = 2 if r is vec_range else 4
    if r.arg.end % f == 0 and r.arg.end >= f: out.append((r, f))
  # keep at least 8 accumulators in flight (FMA latency x throughput): when the vector loop could not be unrolled
  # (784 = 49 x 16 lanes), unroll the row loop 8x instead of 4x
  if prod(f for _, f in out) < 8 and out and out[-1][0] is not vec_range and out[-1][0].arg.end % 8 == 0: out[-1] = (out[-1][0], 8)
  return out

def _is_vec(u: UOp) -> bool: return u.dtype.count > 1 or u.op is Ops.LANE

def _lanes(srcs: tuple[UOp, ...]) -> int:
  """The lane count of the vector sources (every vectorised loop has its own LANE, possibly of another width)."""
  return max((s.dtype.count for s in srcs if _is_vec(s)), default=1)

def type_vectors(sink: UOp) -> UOp:
  """Give every node that depends on a LANE a vector dtype of that LANE's width; contiguous loads/stores take a
  scalar base index."""
  memo: dict[UOp, UOp] = {}
  for u in sink.toposort():
    src = tuple(memo[s] for s in u.src)
    if u.op is Ops.LANE: memo[u] = u; continue
    if u.op is Ops.REDUCE:
      own_lane = any(s.op is Ops.LANE for s in src[1:])
      dt = u.dtype if own_lane or not _is_vec(src[0]) else u.dtype.vec(src[0].dtype.count)
      memo[u] = UOp(Ops.REDUCE, dt, src, u.arg); continue
    if u.op is Ops.LOAD and _is_vec(src[1]):
      memo[u] = UOp(Ops.LOAD, u.dtype.vec(_lanes(src)), (src[0], _base_if_contiguous(src[1]))); continue
    if u.op is Ops.STORE and (_is_vec(src[1]) or _is_vec(src[2])):
      w = _lanes(src)
      val = src[2] if _is_vec(src[2]) else UOp(Ops.VECTORIZE, src[2].dtype.vec(w), (src[2],) * w)  # lanes share one value
      memo[u] = UOp(Ops.STORE, u.dtype, (src[0], _base_if_contiguous(src[1]), val)); continue
    if u.op not in (Ops.STORE, Ops.SINK) and any(_is_vec(s) for s in src) and u.dtype.count == 1:
      memo[u] = UOp(u.op, u.dtype.vec(_lanes(src)), src, u.arg); continue
    memo[u] = u if src == u.src else u.replace(src=src)
  return memo[sink]

def _base_if_contiguous(idx: UOp) -> UOp:
  """base + LANE -> base (a scalar: the access is one vector load/store); anything else stays a per-lane index."""
  terms, const = affine(idx)
  lanes = [t for t in terms if t.op is Ops.LANE]
  if len(lanes) == 1 and terms[lanes[0]] == 1 and not any(_is_vec(t) for t in terms if t is not lanes[0]):
    return graph_rewrite(_build({t: c for t, c in terms.items() if t is not lanes[0]}, const), pm_symbolic)
  return idx

def _build(terms: dict[UOp, int], const: int) -> UOp:
  out = UOp.const(dtypes.index, const)
  for t, c in terms.items(): out = out + (t * c if c != 1 else t)
  return out

def guard_loads(sink: UOp) -> UOp:
  """Clamp load indices that may leave the buffer (reads under a PAD mask are discarded, but must stay in memory)."""
  def fix(u: UOp) -> UOp | None:
    buf, idx = u.src
    n, lanes = buf.arg.size, u.dtype.count
    if n == 0: return u.const_like(0) if lanes == 1 else UOp.const(u.dtype, 0)
    contiguous = lanes > 1 and not _is_vec(idx)
    lo, hi = idx.vmin, idx.vmax + (lanes - 1 if contiguous else 0)
    if lo >= 0 and hi < n: return None
    if contiguous: idx = idx + UOp(Ops.LANE, dtypes.index.vec(lanes), (), lanes)
    safe = idx.maximum(0)
    safe = (safe < n).where(safe, safe.const_like(n - 1))
    return UOp(Ops.LOAD, u.dtype, (buf, safe), "guarded")
  return graph_rewrite(sink, PatternMatcher([(UPat(Ops.LOAD, name="u"), lambda u: None if u.arg == "guarded" else fix(u))], "guard_loads"))

def kernel_name(sink: UOp) -> str:
  glob, red = _ranges(sink, "global"), _ranges(sink, "reduce")
  dims = [str(r.arg.end) for r in glob] + [str(r.arg.end) for r in red]
  return ("r_" if red else "E_") + ("_".join(dims) if dims else "1")

def optimize(sink: UOp, max_lanes: int, threads: int, noopt: bool) -> tuple[UOp, KernelInfo]:
  name = kernel_name(sink)
  sink = graph_rewrite(sink, pm_symbolic + pm_fold_onehot, name="simplify")
  sink = graph_rewrite(sink, pm_promote_half)
  vec = None if noopt else choose_vector_axis(sink, max_lanes)
  if vec is not None:
    r, kind, w = vec
    sink = vectorize(sink, r, w)
    sink = vectorize_other_reduces(sink, max_lanes)
    vec_outer = next((g for g in _ranges(sink, "global") if g.arg.id == r.arg.id), None) if kind == "global" else None
    for ur, f in choose_upcasts(sink, vec_outer): sink = upcast(sink, ur, f)
    sink = type_vectors(sink)
  sink = guard_loads(sink)
  glob = _ranges(sink, "global")
  loops = [u for u in sink.toposort() if u.op is Ops.RANGE]
  work = prod(r.arg.end for r in loops) * (vec[2] if vec else 1)
  thread_range = glob[0] if glob and threads > 1 and glob[0].arg.end > 1 else None
  return sink, KernelInfo(name, (vec[1], vec[2]) if vec else None, thread_range, loop_order(sink, glob), work)

L2_BYTES = 1 << 19  # a conservative per-core L2 share: operands larger than this are streamed from L3 or memory

def loop_order(sink: UOp, glob: list[UOp]) -> tuple[UOp, ...]:
  """Global loops outermost first: by id, except that a reduce kernel whose outer loop re-reads a large operand on
  every iteration (matmul's rows re-streaming all of B) nests that loop innermost, so the operand's panel for the
  inner loops stays in cache while the outer loop's rows stream past it. The outer loop stays the thread loop."""
  if len(glob) < 2: return tuple(glob)
  outer = glob[0]
  loads = [ld for red in sink.toposort() if red.op is Ops.REDUCE for ld in red.src[0].toposort() if ld.op is Ops.LOAD]
  reread = {ld.src[0] for ld in loads if outer not in ld.src[1].ranges}
  if sum(b.arg.size * b.dtype.itemsize for b in reread) <= L2_BYTES: return tuple(glob)
  return tuple(glob[1:]) + (outer,)
