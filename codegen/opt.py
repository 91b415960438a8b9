"""Kernel optimisation passes between lowering and linearizing: half-precision promotion, vectorisation (a masked last
iteration where the lane width does not divide the loop), bounds guards for loads, and the choice of the loop that is
split across threads."""
from __future__ import annotations
import itertools
from dataclasses import dataclass
from tinygrad.uop import UOp, Ops, RangeArg, ALU, COMPARISON, exec_alu
from tinygrad.dtype import dtypes
from tinygrad.rewrite import UPat, PatternMatcher, graph_rewrite
from tinygrad.helpers import prod, ceildiv
from codegen.symbolic import affine, pm_symbolic
from codegen.lower import reduce_identity, PAD_CLAMP, onehot_sum, onehot_scatter

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

def fold_onehot_reduce(red: UOp) -> UOp | None:
  """sum over r of where(e == r, v(r), 0) -> where(0 <= e < end, v(e), 0) when e does not depend on r: a gather written
  as a one-hot reduction (Tensor indexing, Embedding) becomes one indexed load instead of a loop."""
  if len(red.src) != 2 or (m := onehot_sum(red)) is None: return None
  (ops, v), r = m, red.src[1]
  for a, b in (ops, ops[::-1]):
    rr = b.src[0] if b.op is Ops.CAST else b
    if rr is r and r not in a.ranges and dtypes.is_int(a.dtype):
      e = a.cast(dtypes.index)
      valid = (e >= 0).logical_and(e < r.arg.end)
      return valid.where(v.substitute({b: a, r: e}), v.const_like(0))
  return None

pm_fold_onehot = PatternMatcher([(UPat(Ops.REDUCE, name="red"), fold_onehot_reduce)], name="fold_onehot")  # test_gather_is_one_load

def scatter_onehot_reduce(sink: UOp) -> UOp:
  """out[v, ...] = sum over t of where(e(t) == v, x(t, ...), 0), the gradient of a gather (an Embedding's weight), adds
  V rows times T terms of which one is not zero. Written instead as a zero fill of out and, for every t, out[e(t), ...]
  += x(t, ...) (an e outside [0, V) adds nothing): T terms. Both loops nest inside the other output loops (a split
  across threads never has two threads writing one element); the scatter's read of out follows the fill (linearize
  orders a load after the stores to its buffer that read nothing of it). codegen/lower.py realizes such a sum in a
  kernel of its own. Embedding 5000 x 64 over 3200 tokens: test_embedding_backward_is_a_scatter"""
  if len(sink.src) != 1 or len((st := sink.src[0]).src) != 3 or (m := onehot_scatter(st.src[2])) is None: return sink
  buf, idx, red = st.src
  e, v, x = m
  rs = red.src[1:]
  if _stride_in(idx, v) is None: return sink
  # the reduce's loops as one loop f (an Embedding's (B, T) tokens), both new loops with ids after every other
  nid = 1 + max(u.arg.id for u in sink.toposort() if u.op is Ops.RANGE)
  fill = UOp(Ops.RANGE, dtypes.index, (), RangeArg(nid, v.arg.end, "reduce"))
  f = UOp(Ops.RANGE, dtypes.index, (), RangeArg(nid + 1, prod(r.arg.end for r in rs), "reduce"))
  sub, rest = {}, f
  for r in reversed(rs):
    sub[r] = rest % r.arg.end if r is not rs[0] else rest
    rest = rest // r.arg.end
  e, x = e.substitute(sub), x.substitute(sub)
  row = e.cast(dtypes.index)
  valid = (row >= 0).logical_and(row < v.arg.end)
  at = idx.substitute({v: valid.where(row, row.const_like(0))})
  scatter = UOp(Ops.STORE, st.dtype, (buf, at, UOp(Ops.LOAD, x.dtype, (buf, at)) + valid.where(x, x.const_like(0))))
  filled = UOp(Ops.STORE, st.dtype, (buf, idx.substitute({v: fill}), x.const_like(0)))
  return graph_rewrite(UOp(Ops.SINK, sink.dtype, (filled, scatter), sink.arg), pm_symbolic, name="simplify scatter")

def _shift_clamped_divmod(u: UOp, m: UOp, c: UOp) -> UOp | None:
  """max(x - k, 0) // c -> (x - k + c*j) // c - j and % c -> (x - k + c*j) % c, j = ceil(k / c): the same for x >= k,
  where the PAD's mask keeps the lane; the numerator stays non-negative, so a division split by the lane (a stride-2
  window's gradient reads (o*16 + LANE - 1) // 2) becomes o*8 + (LANE + 1) // 2 - 1, one shuffled load.
  test_overlapping_pool_backward_has_no_division"""
  x = m.src[0]
  _, k = affine(x)
  if k >= 0 or c.arg <= 0 or not dtypes.is_int(x.dtype): return None
  j = -(k // c.arg)  # ceil(-k / c)
  shifted = x + c.arg * j
  return shifted // c.arg - j if u.op is Ops.IDIV else shifted % c.arg

pm_shift_clamped_divmod = PatternMatcher([
  (UPat((Ops.IDIV, Ops.MOD), src=(UPat(Ops.MAX, src=(UPat(), UPat.const(0)), arg=PAD_CLAMP, name="m"), UPat.cvar("c")), name="u"), _shift_clamped_divmod),
], name="shift_clamped_divmod")

# a padded index's clamp (codegen/lower.py _clamped) let the divisions of a RESHAPE simplify; it is the identity in every
# lane a PAD's mask keeps, so it goes before vectorising: an index affine in the vector lane is one masked vector load
# again, not a gather (a depthwise convolution's input gradient). test_padded_index_clamp_is_dropped_for_vector_loads
pm_drop_pad_clamps = PatternMatcher([(UPat(Ops.MAX, src=(UPat.var("x"), UPat.cvar()), arg=PAD_CLAMP), lambda x: x),
                                     (UPat(Ops.WHERE, src=(UPat(), UPat.var("x"), UPat.cvar()), arg=PAD_CLAMP), lambda x: x)], name="drop_pad_clamps")

def store_reduced_values(sink: UOp) -> UOp:
  """out[i, j] = f(e(i, j), sum_j' e(i, j')) (softmax: exp(x - max) / sum exp(x - max)) computes e twice per element.
  Instead the sum's loop also stores e(i, j') to out[i, j'], and the output loop reads it back (the row is still in L1):
  e once per element (softmax 4096x1024 kernel: 1.76 -> 1.29 ms, bench/kernel_ab.py). Only where the output has e's
  dtype and e depends on no other loop than j' and the output's own; and the sum's loop must run once per value of
  every other output loop, inside them (each row's values are stored by the one iteration that computes that row: j
  is not the thread loop, and the sum depends on every other output loop). The linearizer orders the read after the
  store (same buffer).
  test_softmax_computes_exp_once, test_every_intermediate_of_a_random_program_is_correct"""
  stores = list(sink.src)
  glob = _ranges(sink, "global")
  for k, st in enumerate(sink.src):
    buf, idx, val = st.src[:3]
    if len(st.src) != 3: continue
    topo = val.toposort()
    nodes = set(topo)
    for red in (u for u in topo if u.op is Ops.REDUCE and u.arg is Ops.ADD and len(u.src) == 2):
      e, r = red.src
      if e.dtype != buf.dtype or e.op in (Ops.LOAD, Ops.CONST) or not e.ranges <= {r} | idx.ranges: continue
      j = next((g for g in idx.ranges if g.op is Ops.RANGE and g.arg.kind == "global" and g.arg.end == r.arg.end and
                g is not glob[0] and e.substitute({r: g}) in nodes), None)
      if j is None or j in e.ranges or not idx.ranges - {j} <= red.ranges: continue  # e(i, j, j') would be stored per j
      loaded = UOp(Ops.LOAD, e.dtype, (buf, idx))
      stores[k] = UOp(Ops.STORE, st.dtype, (buf, idx, val.substitute({e.substitute({r: j}): loaded})))
      stores.append(UOp(Ops.STORE, st.dtype, (buf, idx.substitute({j: r}), e)))
      break
  return sink if stores == list(sink.src) else UOp(Ops.SINK, sink.dtype, tuple(stores), sink.arg)

@dataclass(frozen=True)
class KernelInfo:
  name: str
  vector: tuple[str, int] | None   # ("global" or "reduce", width)
  thread_range: UOp | None         # the global RANGE split across threads
  loop_order: tuple[UOp, ...]      # the global loops, outermost first
  work: int                        # loop iterations times lanes, a rough cost for the thread threshold

def _ranges(sink: UOp, kind: str) -> list[UOp]:
  return sorted((u for u in sink.toposort() if u.op is Ops.RANGE and u.arg.kind == kind), key=lambda r: r.arg.id)

MASKED_COST = 1.5  # a masked vector iteration (mask compare, masked store, identity select) in unmasked iterations

def _lane_width(sink: UOp, end: int, max_lanes: int) -> int:
  """Lanes for a loop of `end` iterations: the width with the fewest vector iterations, an iteration of a width that
  does not divide `end` (the last one has masked lanes) costing MASKED_COST; ties go to the narrower width. 13 -> 16
  (3 lanes masked), 6 -> 8, 28 -> 16, 24 -> 8 (not 2 masked iterations of 16), 1 -> scalar.
  test_13x13_conv_and_width_10_reduce_are_vectorised"""
  itemsize = max([u.dtype.scalar.itemsize for u in sink.toposort() if u.op in (Ops.LOAD, Ops.DEFINE_GLOBAL)] + [1])
  limit = min(max_lanes, 64 // itemsize)
  return min((w for w in (1, 2, 4, 8, 16) if w <= limit), key=lambda w: (_vector_cost(end, w), w))

def _vector_cost(end: int, w: int) -> float: return ceildiv(end, w) * (1 if end % w == 0 else MASKED_COST)

MAX_STRIDE = 4  # a vector load whose lanes are s <= 4 elements apart reads s*W contiguous elements and keeps every s-th

@dataclass(frozen=True)
class Strided:
  picks: tuple[int, ...]  # LOAD arg: lane l of the vector load at a scalar base reads base + picks[l]
  guard: bool = False     # the span may leave the buffer (under a PAD): elements outside it read nothing

def _stride_in(idx: UOp, r: UOp) -> int | None:
  """How far idx moves per step of r when it is affine in r (0: independent of r), else None."""
  terms, _ = affine(idx)
  return None if any(r in t.ranges for t in terms if t is not r) else terms.get(r, 0)

def _contiguous_in(idx: UOp, r: UOp) -> bool: return _stride_in(idx, r) == 1

def _repeats_in(idx: UOp, r: UOp) -> bool:
  """Is idx some terms free of r plus (r + k) // c, 2 <= c <= MAX_STRIDE (vectorised: a Strided load whose lanes read
  each element c times)?"""
  terms, _ = affine(idx)
  inner = [t for t in terms if r in t.ranges]
  if len(inner) != 1 or terms[t := inner[0]] != 1 or t.op is not Ops.IDIV or t.src[1].op is not Ops.CONST: return False
  a, _ = affine(t.src[0])
  return a == {r: 1} and 2 <= t.src[1].arg <= MAX_STRIDE

def vector_candidates(sink: UOp, max_lanes: int) -> list[tuple[UOp, str, int]]:
  """The loops to vectorise, best first: candidates are the innermost output loop (if the store is contiguous in it)
  and the innermost loop of each reduce; the fewer per-lane gathers the better, ties going to the output loop (its
  store is one vector store and no horizontal reduce is needed). A load whose lanes are up to MAX_STRIDE elements apart
  (a stride-2 conv's input) is no gather: it becomes wide contiguous loads and a shuffle. Each is (loop, kind, lanes).
  test_stride_2_conv_reads_rows_with_wide_loads"""
  store = sink.src[0]
  nodes = sink.toposort()
  loads = [u for u in nodes if u.op is Ops.LOAD]
  def gathers(r: UOp) -> int:  # loads of r's lanes that are neither contiguous nor strided nor repeated
    return sum(1 for ld in loads if r in ld.src[1].ranges and not 1 <= (_stride_in(ld.src[1], r) or 0) <= MAX_STRIDE and
               not _repeats_in(ld.src[1], r))
  cands: list[tuple[int, int, UOp, str]] = []
  glob = _ranges(sink, "global")
  if glob and _contiguous_in(store.src[1], glob[-1]): cands.append((gathers(glob[-1]), 0, glob[-1], "global"))
  for red in (u for u in nodes if u.op is Ops.REDUCE):
    r = red.src[-1]
    if r in store.src[1].ranges or not any(r in ld.src[1].ranges for ld in loads): continue
    cands.append((gathers(r), 1, r, "reduce"))
  out = []
  for g, _, r, kind in sorted(cands, key=lambda c: (c[0], c[1])):
    if (w := _lane_width(sink, r.arg.end, max_lanes)) > 1: out.append((g, r, kind, w))
  if len(out) > 1 and out[0][2] == "global" and out[1][0] == out[0][0] and 2 * _filled(out[0]) < _filled(out[1]):
    # the output loop fills under half the lanes the reduce's does (a 3x3 weight gradient's 3-wide rows, one of 4 lanes
    # masked, against its 28-wide reduce): both are tried, and the one whose tiled loops cost less is kept (optimize)
    return [(r, kind, w) for _, r, kind, w in out[:2]]
  return [(r, kind, w) for _, r, kind, w in out[:1]]

def _filled(cand: tuple) -> float:
  """Valid lanes per vector iteration of a candidate (gathers, loop, kind, lanes)."""
  end, w = cand[1].arg.end, cand[3]
  return end / _vector_cost(end, w)

def tile(sink: UOp, r: UOp, kind: str, w: int, max_lanes: int) -> UOp:
  """Vectorise loop r (w lanes), the other reduces that can be, and unroll the register tile's loops."""
  sink = vectorize(sink, r, w)
  sink = vectorize_other_reduces(sink, max_lanes)
  vec_outer = next((g for g in _ranges(sink, "global") if g.arg.id == r.arg.id), None) if kind == "global" else None
  return upcast(sink, choose_upcasts(sink, vec_outer, kind == "reduce"))

def loop_cost(sink: UOp) -> int:
  """Iterations times the loads and accumulates of each innermost reduce body, after tiling (hash-consing shares a load
  the tile's copies have in common); a reduce's horizontal sum of its lanes counts 4 per output. Compares two tilings."""
  glob = prod(r.arg.end for r in _ranges(sink, "global"))
  groups: dict[tuple[UOp, ...], list[UOp]] = {}
  for red in (u for u in sink.toposort() if u.op is Ops.REDUCE): groups.setdefault(red.src[1:], []).append(red)
  def load_cost(ld: UOp) -> int:  # as type_vectors will read it: a contiguous or broadcast vector 1, a Strided span 2, a gather w
    if not (w := max((x.arg for x in ld.src[1].ranges if x.op is Ops.LANE), default=0)): return 1
    picks = _base_and_picks(ld.src[1], w)[1]
    return w if picks is None else 1 if picks == tuple(range(w)) else 2
  cost = 0
  for rngs, reds in groups.items():
    loads = {ld for red in reds for ld in red.src[0].toposort() if ld.op is Ops.LOAD}
    cost += glob * prod(r.arg.end for r in rngs if r.op is Ops.RANGE) * (sum(load_cost(ld) for ld in loads) + len(reds))
    cost += glob * 4 * sum(1 for red in reds if any(x.op is Ops.LANE for x in red.src[1:]))
  return cost

def vectorize(sink: UOp, r: UOp, w: int) -> UOp:
  """Replace loop r by an outer loop of ceil(end/w) and w vector lanes; every value that depends on a lane becomes a
  vector. When w does not divide end, lane l of iteration o is valid iff o*w + l < end (a mask, all true except in
  the last iteration): loads and stores of lanes get it as an extra source (masked vector accesses: invalid lanes
  neither read nor write memory), and a reduce over r accumulates the reduce identity in the invalid lanes. A load
  whose index may leave its buffer even in valid lanes (under a PAD) stays unmasked: guard_loads clamps every lane."""
  end = r.arg.end
  outer = UOp(Ops.RANGE, dtypes.index, (), RangeArg(r.arg.id, ceildiv(end, w), r.arg.kind))
  lane = UOp(Ops.LANE, dtypes.index.vec(w), (), w)
  memo: dict[UOp, UOp] = {r: outer * w + lane}
  mask = memo[r] < end if end % w else None
  for u in sink.toposort():
    if u in memo: continue
    src = tuple(memo[s] for s in u.src)
    if u.op is Ops.REDUCE and r in u.src[1:]:  # the reduced loop itself is split: its lanes are reduced too
      rngs = tuple(x for s in u.src[1:] for x in ((outer, lane) if s is r else (memo[s],)))
      # invalid lanes add the identity (0, 1, dtype min): never what their loads left there  test_reduce_over_odd_axis_matches_numpy
      val = src[0] if mask is None else mask.where(src[0], src[0].const_like(reduce_identity(u.arg, u.dtype)))
      memo[u] = UOp(Ops.REDUCE, u.dtype, (val,) + rngs, u.arg)
      continue
    # stores always (test_odd_sized_output_leaves_the_bytes_after_it_alone), loads in bounds for every valid lane
    if mask is not None and u.op in (Ops.LOAD, Ops.STORE) and r in u.src[1].ranges and lane in src[1].ranges and \
       (u.op is Ops.STORE or 0 <= u.src[1].vmin and u.src[1].vmax < u.src[0].arg.size): src += (mask,)
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

def upcast(sink: UOp, ups: list[tuple[UOp, int]]) -> UOp:
  """Unroll u iterations of each global loop r of ups into the body: the kernel stores prod(u) results per iteration.
  Values that do not depend on r (matmul's row of B) are shared by the copies, and the accumulators run side by side.
  The copies are made at once and simplified once (a matmul's 8 x 2 tile: one rewrite of 16 copies, not of 8 then 16:
  its optimize 4.0 -> 3.8 ms, the same IR). Copies of the last loop are outermost."""
  if not ups: return sink
  outer = {r: UOp(Ops.RANGE, dtypes.index, (), RangeArg(r.arg.id, r.arg.end // u, r.arg.kind)) for r, u in ups}
  stores = tuple(st.substitute({r: outer[r] * u + c for (r, u), c in zip(ups, reversed(cs))})
                 for cs in itertools.product(*(range(u) for _, u in reversed(ups))) for st in sink.src)
  return graph_rewrite(UOp(Ops.SINK, dtypes.void, stores, sink.arg), pm_symbolic, name="simplify after upcast")

def choose_upcasts(sink: UOp, vec_range: UOp | None, along_reduce: bool) -> list[tuple[UOp, int]]:
  """Register tiling for reduce kernels (matmul, conv): unroll the innermost global loops whose unrolled copies share
  loads inside a reduce. vec_range is the vectorised output loop (None when the lanes run along a reduce, along_reduce).
  Returns (loop, factor) pairs."""
  iters = {u: prod(r.arg.end for r in u.src[1:] if r.op is Ops.RANGE) for u in sink.toposort() if u.op is Ops.REDUCE}
  # several short reduces side by side count as one long one: a conv's input gradient summing its 9 kernel offsets,
  # each a reduce over 8 channels (test_conv_input_gradient_sums_its_offsets_in_one_kernel)
  reds = [u for u, n in iters.items() if n >= 16]
  side_by_side = not reds and len(iters) > 1 and all(isinstance(n, int) for n in iters.values()) and sum(iters.values()) >= 16 \
                 and not any(x.op is Ops.REDUCE for u in iters for x in u.src[0].toposort())  # none inside another
  if side_by_side: reds = list(iters)
  if not reds: return []
  loads = [ld for red in reds for ld in red.src[0].toposort() if ld.op is Ops.LOAD]
  # a matmul vectorised along its columns (broadcast-FMA) over one reduce loop of 256+ takes 8 rows and 2 vectors: 16
  # accumulators, 8 broadcasts and 2 vector loads per 16 FMAs (matmul 512/1024/2048 146-161/181-190/174-182 ->
  # 164-208/186-203/192-202 GFLOP/s). A convolution (3 reduce loops) or a short reduce (the MLP's weight gradients over
  # a batch of 128) vectorised along its output takes one vector and 8 copies of a loop that shares its vector loads
  # (8 output channels: 1 input vector and 8 weight broadcasts per 8 FMAs): 8 x 2 spilled, and 4 x 2 measured slower
  # (conv2d 32x32x56x56, 16x64x28x28, 1x1 and stride 2: 23.0/10.8/3.2/3.2 -> 20.8/10.0/2.9/2.9 ms; the MLP's 512x128x512
  # gradient 0.36 -> 0.34 ms). Where no loop shares them (a depthwise convolution) it keeps 2 vectors x 4. A kernel
  # vectorised along its reduce (x @ W.T, 4 x 4 dot products) keeps 4 copies of two loops (8: 0.97/0.68 -> 1.57/0.92 ms).
  # test_register_tiles_of_matmul_and_conv
  def one_long_loop(red: UOp) -> bool:
    ends = [s.arg.end for s in red.src[1:] if s.op is Ops.RANGE]
    return len(ends) == 1 and isinstance(ends[0], int) and ends[0] >= 256
  long_matmul = vec_range is not None and vec_range.arg.kind == "global" and all(one_long_loop(red) for red in reds)
  # a reduce vectorised along its image rows (a 3x3 weight gradient) shares each row vector of the upstream gradient
  # across the window's offsets: loops of 3 are unrolled whole
  rows = (8, 4, 2) if long_matmul else (4, 3, 2) if along_reduce else (4, 2)
  # the vector loop first, then the loops its vector loads do not move with (their copies share those loads), then the
  # rest, innermost first. A convolution vectorised along its width thus unrolls output channels, not rows
  vec_loads = [ld for ld in loads if vec_range is not None and vec_range in ld.src[1].ranges]
  order = sorted(reversed(_ranges(sink, "global")), key=lambda r: (r is not vec_range, all(r in ld.src[1].ranges for ld in vec_loads)))
  one_vector = not long_matmul and any(r is not vec_range and not all(r in ld.src[1].ranges for ld in vec_loads) for r in order)
  out, skipped = [], 0
  for r in order:
    if len(out) + skipped == 2: break
    if not any(r not in ld.src[1].ranges for ld in loads): continue  # nothing to share between the copies
    if r is vec_range and one_vector: skipped = 1; continue  # the rule below makes the next loop's copies 8
    if (f := next((f for f in ((2,) if r is vec_range else rows) if r.arg.end % f == 0), None)) is not None: out.append((r, f))
  # a column sum (every load moves with the vector loop): nothing is shared, but 4 accumulators side by side read 4
  # vectors of each row at once instead of one latency-bound chain per vector. test_column_sum_keeps_four_accumulators
  if not out and not skipped and vec_range is not None and vec_range.arg.end % 4 == 0: out.append((vec_range, 4))
  # keep at least 8 accumulators in flight (FMA latency x throughput): when the vector loop could not be unrolled
  # (784 = 49 x 16 lanes), unroll the row loop 8x instead of 4x
  if prod(f for _, f in out) < 8 and out and out[-1][0] is not vec_range and out[-1][0].arg.end % 8 == 0: out[-1] = (out[-1][0], 8)
  if side_by_side and out:
    # short reduces side by side (a conv's input gradient: 9 offsets x 8 channels) already keep 9 accumulators per copy:
    # one loop, the one whose copies share the most vector loads (output channels), 8 copies (8 x 9 accumulators)
    r = max((r for r, _ in out), key=lambda r: sum(r not in ld.src[1].ranges for ld in loads if _has_lane(ld.src[1])))
    out = [(r, 8 if r.arg.end % 8 == 0 else next(f for rr, f in out if rr is r))]
  return out

def _is_vec(u: UOp) -> bool: return u.dtype.count > 1 or u.op is Ops.LANE

def _lanes(srcs: tuple[UOp, ...]) -> int:
  """The lane count of the vector sources (every vectorised loop has its own LANE, possibly of another width)."""
  return max((s.dtype.count for s in srcs if _is_vec(s)), default=1)

def type_vectors(sink: UOp) -> UOp:
  """Give every node that depends on a LANE a vector dtype of that LANE's width; contiguous loads/stores take a
  scalar base index, and so do loads whose lanes are 2..MAX_STRIDE elements apart (arg Strided)."""
  memo: dict[UOp, UOp] = {}
  for u in sink.toposort():
    src = tuple(memo[s] for s in u.src)
    if u.op is Ops.LANE: memo[u] = u; continue
    if u.op is Ops.REDUCE:
      own_lane = any(s.op is Ops.LANE for s in src[1:])
      dt = u.dtype if own_lane or not _is_vec(src[0]) else u.dtype.vec(src[0].dtype.count)
      memo[u] = UOp(Ops.REDUCE, dt, src, u.arg); continue
    if u.op is Ops.LOAD and _is_vec(src[1]):  # a mask (a third source) stays with the access
      w = _lanes(src)
      base, picks = _base_and_picks(src[1], w)
      n = src[0].arg.size
      # a masked load is in bounds in its valid lanes; an unmasked one whose span may leave its buffer reads only the
      # elements inside (a symbolic size: a gather, clamped lane by lane)
      guard = len(src) == 2 and not (base.vmin >= 0 and base.vmax + max(picks or (0,)) < (n if isinstance(n, int) else n.vmin))
      if picks is not None and guard and not isinstance(n, int): picks = None
      arg = Strided(picks, guard) if picks is not None and picks != tuple(range(w)) else None
      memo[u] = UOp(Ops.LOAD, u.dtype.vec(w), (src[0], base if picks is not None else src[1]) + src[2:], arg); continue
    if u.op is Ops.LOAD and len(src) == 3:  # (o*w + LANE)//w = o: one read, lane 0's  test_load_whose_index_loses_the_lane_is_one_scalar_read
      memo[u] = UOp(Ops.LOAD, u.dtype, src[:2]); continue
    if u.op is Ops.STORE and (_is_vec(src[1]) or _is_vec(src[2])):
      w = _lanes(src)
      val = src[2] if _is_vec(src[2]) else UOp(Ops.VECTORIZE, src[2].dtype.vec(w), (src[2],) * w)  # lanes share one value
      base, picks = _base_and_picks(src[1], w)
      memo[u] = UOp(Ops.STORE, u.dtype, (src[0], base if picks == tuple(range(w)) else src[1], val) + src[3:]); continue
    if u.op not in (Ops.STORE, Ops.SINK) and any(_is_vec(s) for s in src) and u.dtype.count == 1:
      memo[u] = UOp(u.op, u.dtype.vec(_lanes(src)), src, u.arg); continue
    memo[u] = u if src == u.src else u.replace(src=src)
  return memo[sink]

def _base_and_picks(idx: UOp, w: int) -> tuple[UOp, tuple[int, ...] | None]:
  """idx = a scalar base + an offset that depends on the vector lane only (s*LANE, (LANE + 1) // 2, (LANE % 2)*n +
  LANE // 2, ...): (base, the offset of each lane) when the offsets span at most MAX_STRIDE*w elements (one vector
  access at a scalar base, test_repeated_lanes_are_one_narrow_load); else (idx, None), a gather."""
  terms, const = affine(idx)
  lane_terms = {t: c for t, c in terms.items() if _is_vec(t)}
  offs = [sum(c * v for t, c in lane_terms.items() if (v := _at_lane(t, l)) is not None) for l in range(w)]
  if any(_at_lane(t, 0) is None for t in lane_terms): return idx, None
  lo = min(offs)
  picks = tuple(o - lo for o in offs)
  if max(picks) >= MAX_STRIDE * w: return idx, None
  return _build({t: c for t, c in terms.items() if t not in lane_terms}, const + lo), picks

def _at_lane(u: UOp, lane: int) -> int | None:
  """The value of an index expression of LANE and constants in one lane (None if it reads anything else)."""
  if u.op is Ops.LANE: return lane
  if u.op is Ops.CONST: return u.arg
  if u.op not in (Ops.ADD, Ops.MUL, Ops.IDIV, Ops.MOD, Ops.NEG) or not dtypes.is_int(u.dtype): return None
  vals = [_at_lane(x, lane) for x in u.src]
  return None if None in vals else exec_alu(u.op, u.dtype.scalar, vals)

def _build(terms: dict[UOp, int], const: int) -> UOp:
  out = None
  for t, c in terms.items():
    t = t * c if c != 1 else t
    out = t if out is None else out + t
  return UOp.const(dtypes.index, const) if out is None else out + const if const else out

def guard_loads(sink: UOp) -> UOp:
  """Loads whose index may leave the buffer (reads under a PAD mask are discarded, but must stay in memory): a vector
  load at a scalar base becomes a masked vector load of the lanes inside the buffer; any other index is clamped. A
  masked load (a third source, from vectorize) is in bounds in its valid lanes and reads nothing in the others."""
  def fix(u: UOp) -> UOp | None:
    if len(u.src) == 3: return None
    buf, idx = u.src
    n, lanes = buf.arg.size, u.dtype.count
    if isinstance(n, int) and n == 0: return u.const_like(0) if lanes == 1 else UOp.const(u.dtype, 0)
    if isinstance(u.arg, Strided): return None  # guarded by type_vectors
    contiguous = lanes > 1 and not _is_vec(idx)
    lo, hi = idx.vmin, idx.vmax + (lanes - 1 if contiguous else 0)
    if lo >= 0 and hi < (n if isinstance(n, int) else n.vmin): return None  # a symbolic size: in bounds for every value
    if contiguous:  # one masked vector load: the lanes outside the buffer read nothing  test_padded_row_is_one_masked_load
      i = idx + UOp(Ops.LANE, dtypes.index.vec(lanes), (), lanes)
      inside = i < n if lo >= 0 else i >= 0 if hi < n else (i >= 0).logical_and(i < n)
      return UOp(Ops.LOAD, u.dtype, (buf, idx, inside))
    safe = idx.maximum(0)
    safe = (safe < n).where(safe, safe.const_like(n - 1))
    return UOp(Ops.LOAD, u.dtype, (buf, safe), "guarded")
  return graph_rewrite(sink, PatternMatcher([(UPat(Ops.LOAD, name="u"), lambda u: None if u.arg == "guarded" else fix(u))], "guard_loads"))

def kernel_name(sink: UOp) -> str:
  glob, red = _ranges(sink, "global"), _ranges(sink, "reduce")
  dims = [_dim_name(r.arg.end) for r in glob] + [_dim_name(r.arg.end) for r in red]
  return ("r_" if red else "E_") + ("_".join(dims) if dims else "1")

def _dim_name(end: int | UOp) -> str:
  """A loop size in a kernel name: the number, or for a symbolic size its Variables' names."""
  if isinstance(end, int): return str(end)
  return "".join(sorted(x.arg.name for x in end.toposort() if x.op is Ops.DEFINE_VAR)).replace("_", "")

def _upper(x: int | UOp) -> int: return x if isinstance(x, int) else x.vmax

def optimize(sink: UOp, max_lanes: int, threads: int, noopt: bool) -> tuple[UOp, KernelInfo]:
  """A kernel with symbolic loop sizes is not vectorised or upcast: those choices depend on the sizes."""
  name = kernel_name(sink)
  noopt = noopt or any(p.op is Ops.DEFINE_VAR for p in sink.arg)
  sink = graph_rewrite(sink, pm_symbolic + pm_fold_onehot, name="simplify")
  sink = graph_rewrite(sink, pm_shift_clamped_divmod, name="shift clamped divisions")
  sink = graph_rewrite(sink, pm_drop_pad_clamps + pm_symbolic, name="drop pad clamps")
  sink = graph_rewrite(sink, pm_promote_half)
  if not noopt: sink = store_reduced_values(scatter_onehot_reduce(sink))
  cands = [] if noopt else vector_candidates(sink, max_lanes)
  vec = None
  if cands:
    tiled = [(tile(sink, *c, max_lanes), c) for c in cands]
    sink, (_, kind, w) = min(tiled, key=lambda sc: loop_cost(sc[0])) if len(tiled) > 1 else tiled[0]
    vec = (kind, w)
    sink = type_vectors(sink)
  sink = guard_loads(sink)
  glob = _ranges(sink, "global")
  loops = [u for u in sink.toposort() if u.op is Ops.RANGE]
  work = prod(r.arg.end for r in loops) * (vec[1] if vec else 1)
  thread_range = glob[0] if glob and threads > 1 and _upper(glob[0].arg.end) > 1 else None
  return sink, KernelInfo(name, vec, thread_range, loop_order(sink, glob), work)

L2_BYTES = 1 << 19  # a conservative per-core L2 share: operands larger than this are streamed from L3 or memory

def loop_order(sink: UOp, glob: list[UOp]) -> tuple[UOp, ...]:
  """Global loops outermost first: by id, except that a reduce kernel whose outer loop re-reads a large operand on
  every iteration (matmul's rows re-streaming all of B) nests that loop innermost, so the operand's panel for the
  inner loops stays in cache while the outer loop's rows stream past it. The outer loop stays the thread loop."""
  # a kernel reading back what it stored (store_reduced_values) keeps its nesting: the row loop stays outside
  stored = {st.src[0] for st in sink.src}
  if len(glob) < 2 or any(u.op is Ops.LOAD and u.src[0] in stored for u in sink.toposort()): return tuple(glob)
  outer = glob[0]
  loads = [ld for red in sink.toposort() if red.op is Ops.REDUCE for ld in red.src[0].toposort() if ld.op is Ops.LOAD]
  reread = {ld.src[0] for ld in loads if outer not in ld.src[1].ranges}
  if sum(_upper(b.arg.size) * b.dtype.itemsize for b in reread) <= L2_BYTES: return tuple(glob)
  return tuple(glob[1:]) + (outer,)
