"""GPU-specific kernel optimisation: the kernel's global (output) loops become a flat global thread id.

`optimize_gpu(sink)` runs the shared passes (symbolic simplification, half->float32 promotion, load guards) and
maps the outer global RANGEs of the kernel onto one flat id

    gid = SPECIAL("gid", n) = blockIdx.x * blockDim.x + threadIdx.x      (0 <= gid < n)

where n is the product of the mapped loops' sizes; the renderer makes threads with gid >= n exit at once (the bounds
predicate), so the graph may assume 0 <= gid < n. A loop variable r_i becomes (gid // stride_i) % end_i, and an affine
index that walks a run of consecutive mapped loops in row-major order (the store index, loads of same-shaped inputs)
becomes one `gid // s % m` (often just `gid`), so contiguous accesses stay contiguous across neighbouring threads.

Which global loops are mapped: all of them, unless a reduce sits outside some inner global loops (softmax's row max,
`x / x.sum()`): mapping those inner loops to threads would make every thread recompute the reduce. A small cost
model picks the number of outer loops to map (per-thread serial work times waves of threads); unmapped inner global
loops stay loops inside each thread. Reduce loops stay loops, except in group mode below.

Block size: n threads when n <= 256 (one block, no predicate needed), else 256; the grid is ceil(n / 256) blocks in x
(limit 2^31-1 blocks; a kernel that would need more keeps more of its outer loops as loops).

Group mode (block-level reductions): when the cost model prefers it (few outputs, a reduce loop of at least
GROUP_MIN_REDUCE iterations: a full `x.sum()`, long rows, softmax rows), each mapped index gets a whole block of
GROUP threads instead of one thread: gid = %ctaid.x and lid = SPECIAL("lid", GROUP) = %tid.x. A long reduce loop
r of R iterations becomes a loop of ceil(R/GROUP) (RangeArg kind "group") over r = r' * GROUP + lid, masked with the
reduce identity past R; the renderer combines the lanes' partial results after the loop (warp shuffles, then shared
memory across warps) and every lane continues with the full result. Global loops kept inside the thread are
flattened and strided over the lanes the same way (f = f' * GROUP + lid); the STORE gets a gate (a 4th source):
f < F, or lid == 0 when there is no such loop.
"""
from __future__ import annotations
from dataclasses import dataclass
from tinygrad.uop import UOp, Ops, RangeArg
from tinygrad.dtype import dtypes
from tinygrad.rewrite import graph_rewrite
from tinygrad.helpers import prod, ceildiv
from codegen.symbolic import pm_symbolic, affine
from codegen.opt import pm_promote_half, guard_loads, kernel_name
from codegen.lower import reduce_identity

BLOCK = 256                 # threads per block (the largest block used)
MAX_GRID_X = 2 ** 31 - 1    # gridDim.x limit (compute capability >= 3.0)
PARALLEL = 1 << 16          # threads the cost model treats as running at once (one "wave")
GROUP = 256                 # threads per block in group mode (a multiple of 32)
GROUP_MIN_REDUCE = 256      # a reduce loop is split over a block's lanes only when at least this long
GROUP_REDUCE_COST = 40      # cost-model price of combining a block's partial results (shuffles, barrier, shared)

@dataclass(frozen=True)
class GPUKernelInfo:
  name: str
  global_size: tuple[int, int, int]   # blocks per grid (x, y, z)
  local_size: tuple[int, int, int]    # threads per block (x, y, z)
  n_threads: int                      # threads with work: gid < n_threads; the rest exit at once
  gid: UOp | None                     # the flat global id (Ops.SPECIAL, arg ("gid", n_threads)); None for one thread
  loops: tuple[UOp, ...]              # global RANGEs kept as loops inside each thread
  group: int = 0                      # group mode: threads per block cooperating on one gid (0: one thread per gid)
  lid: UOp | None = None              # group mode: the lane id (Ops.SPECIAL, arg ("lid", group))

  @property
  def needs_guard(self) -> bool:
    return not self.group and self.gid is not None and self.global_size[0] * self.local_size[0] > self.n_threads

def launch_dims(n: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
  """(grid, block) for n threads on a 1-D grid."""
  if n <= BLOCK: return (1, 1, 1), (max(n, 1), 1, 1)
  return (ceildiv(n, BLOCK), 1, 1), (BLOCK, 1, 1)

def _global_ranges(sink: UOp) -> list[UOp]:
  return sorted((u for u in sink.toposort() if u.op is Ops.RANGE and u.arg.kind == "global"), key=lambda r: r.arg.id)

def choose_mapped(sink: UOp, globs: list[UOp], allow_group: bool = True) -> tuple[int, bool]:
  """How many of the outer global loops become threads (the rest stay loops inside each thread), and whether each
  becomes a block of GROUP threads sharing its reduces (group mode). Cost: per-thread serial work times the waves of
  threads needed; in group mode a split reduce costs ceil(R/GROUP) iterations plus GROUP_REDUCE_COST for combining."""
  pos = {g: i for i, g in enumerate(globs)}
  ends = [g.arg.end for g in globs]
  # each reduce: its level (1 + the innermost global loop it depends on), its iteration count, and the part of it
  # a block's lanes would share in group mode
  reds, nested = [], False
  for u in sink.toposort():
    if u.op is not Ops.REDUCE: continue
    level = 1 + max((pos[r] for r in u.ranges if r in pos), default=-1)
    total = prod(r.arg.end for r in u.src[1:] if r.op is Ops.RANGE)
    split = _split_range(u)
    reds.append((level, total, split.arg.end if split is not None else 1))
    # a reduce evaluated inside another reduce's loop (it depends on that loop's variable) cannot be group-reduced
    nested = nested or any(x.op is Ops.REDUCE and x.ranges & set(u.src[1:]) for x in u.src[0].toposort())
  best, best_cost = (len(globs), False), None
  for s in range(len(globs), -1, -1):
    threads = prod(ends[:s])
    if ceildiv(threads, BLOCK) > MAX_GRID_X: continue
    per_thread = prod(ends[s:]) + sum(r * (prod(ends[s:lvl]) if lvl >= s else 1) for lvl, r, _ in reds)
    options = [(per_thread * ceildiv(threads, PARALLEL), False)]
    if allow_group and not nested and reds and all(lvl <= s for lvl, _, _ in reds) and any(sp > 1 for _, _, sp in reds) \
       and threads <= MAX_GRID_X:
      per_lane = ceildiv(prod(ends[s:]), GROUP) + sum(ceildiv(sp, GROUP) * (r // sp) + GROUP_REDUCE_COST if sp > 1 else r for _, r, sp in reds)
      options.append((per_lane * ceildiv(threads * GROUP, PARALLEL), True))
    for cost, group in options:
      if best_cost is None or cost < best_cost: best, best_cost = (s, group), cost
  return best

def substitute_globals(sink: UOp, mapped: list[UOp], gid: UOp) -> UOp:
  """Replace the mapped global loop variables by index math on gid (row-major: gid = sum r_i * stride_i)."""
  ends = [g.arg.end for g in mapped]
  strides = [prod(ends[i + 1:]) for i in range(len(ends))]
  pos = {g: i for i, g in enumerate(mapped)}

  def run(i: int, j: int) -> UOp:
    """sum_{t=i..j} r_t * stride_t / stride_j, i.e. the digits i..j of gid in the mixed radix `ends`."""
    x = gid if strides[j] == 1 else gid // strides[j]
    return x if i == 0 else x % (strides[i - 1] // strides[j])

  memo: dict[UOp, UOp] = {}
  def tr(u: UOp) -> UOp:
    if (r := memo.get(u)) is not None: return r
    if u in pos: out = run(pos[u], pos[u])
    elif u.op in (Ops.ADD, Ops.MUL) and u.dtype == dtypes.index and any(g in u.ranges for g in pos) and u not in (terms := affine(u)[0]):
      terms, const = affine(u)
      rt = {pos[t]: c for t, c in terms.items() if t in pos}
      out = None
      def add(x: UOp):
        nonlocal out
        out = x if out is None else out + x
      j_list = sorted(rt, reverse=True)
      done: set[int] = set()
      for j in j_list:  # runs of consecutive mapped loops whose coefficients follow the row-major strides
        if j in done: continue
        k, i = rt[j], j
        while i - 1 in rt and i - 1 not in done and rt[i - 1] == k * (strides[i - 1] // strides[j]): i -= 1
        done.update(range(i, j + 1))
        e = run(i, j)
        add(e if k == 1 else e * k)
      for t, c in terms.items():
        if t in pos: continue
        x = tr(t)
        add(x if c == 1 else x * c)
      if out is None: out = u.const_like(const)
      elif const: out = out + const
    else:
      src = tuple(tr(s) for s in u.src)
      out = u if src == u.src else u.replace(src=src)
    memo[u] = out
    return out
  return tr(sink)

def _split_range(red: UOp) -> UOp | None:
  """The loop of this reduce to split over a block's lanes: its longest, if long enough."""
  r = max((x for x in red.src[1:] if x.op is Ops.RANGE), key=lambda x: x.arg.end, default=None)
  return r if r is not None and r.arg.end >= GROUP_MIN_REDUCE else None

def group_transform(sink: UOp, mapped: list[UOp], loops: list[UOp], n: int) -> tuple[UOp, UOp | None, UOp]:
  lid = UOp(Ops.SPECIAL, dtypes.index, (), ("lid", GROUP))
  gid = UOp(Ops.SPECIAL, dtypes.index, (), ("gid", n)) if n > 1 else None
  next_id = 1 + max((u.arg.id for u in sink.toposort() if u.op is Ops.RANGE), default=-1)
  if gid is not None: sink = substitute_globals(sink, mapped, gid)
  elif mapped: sink = sink.substitute({g: UOp.const(dtypes.index, 0) for g in mapped})
  valid = lid < 1
  if loops:  # the kept global loops, flattened and strided over the lanes
    total = prod(g.arg.end for g in loops)
    f = UOp(Ops.RANGE, dtypes.index, (), RangeArg(next_id, ceildiv(total, GROUP), "global"))
    next_id += 1
    flat = f * GROUP + lid
    sink = substitute_globals(sink, loops, flat)
    valid = flat < total
  memo: dict[UOp, UOp] = {}
  for u in sink.toposort():
    if u.op is Ops.REDUCE and (r := _split_range(u)) is not None:
      R = r.arg.end
      r2 = UOp(Ops.RANGE, dtypes.index, (), RangeArg(next_id, ceildiv(R, GROUP), "group"))
      next_id += 1
      idx = r2 * GROUP + lid
      v = memo[u.src[0]].substitute({r: idx})
      if R % GROUP: v = (idx < R).where(v, v.const_like(reduce_identity(u.arg, v.dtype)))
      memo[u] = UOp(Ops.REDUCE, u.dtype, (v, *(r2 if x is r else memo[x] for x in u.src[1:])), u.arg)
      continue
    src = tuple(memo[x] for x in u.src)
    memo[u] = u if src == u.src else u.replace(src=src)
  sink = memo[sink]
  st = sink.src[0]
  sink = sink.replace(src=(st.replace(src=st.src[:3] + (valid,)),) + sink.src[1:])
  return sink, gid, lid

def optimize_gpu(sink: UOp, group: bool = True) -> tuple[UOp, GPUKernelInfo]:
  name = kernel_name(sink)
  sink = graph_rewrite(sink, pm_symbolic, name="simplify")
  sink = graph_rewrite(sink, pm_promote_half)
  globs = _global_ranges(sink)
  s, use_group = choose_mapped(sink, globs, group)
  mapped, loops = globs[:s], tuple(globs[s:])
  n = prod(g.arg.end for g in mapped)
  if use_group:
    sink, gid, lid = group_transform(sink, mapped, list(loops), n)
    sink = guard_loads(graph_rewrite(sink, pm_symbolic, name="simplify after gpu dims"))
    kept = tuple(u for u in _global_ranges(sink))
    return sink, GPUKernelInfo(name, (max(n, 1), 1, 1), (GROUP, 1, 1), n, gid, kept, GROUP, lid)
  gid = None
  if n > 1:
    gid = UOp(Ops.SPECIAL, dtypes.index, (), ("gid", n))
    sink = graph_rewrite(substitute_globals(sink, mapped, gid), pm_symbolic, name="simplify after gpu dims")
  elif mapped:  # loops of size 1 do not exist, but stay safe
    sink = sink.substitute({g: UOp.const(dtypes.index, 0) for g in mapped})
  sink = guard_loads(sink)
  grid, block = launch_dims(n)
  return sink, GPUKernelInfo(name, grid, block, n, gid, loops)
