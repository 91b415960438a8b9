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
loops stay loops inside each thread. Reduce loops always stay loops (no cross-thread reduction yet).

Block size: n threads when n <= 256 (one block, no predicate needed), else 256; the grid is ceil(n / 256) blocks in x
(limit 2^31-1 blocks; a kernel that would need more keeps more of its outer loops as loops).
"""
from __future__ import annotations
from dataclasses import dataclass
from tinygrad.uop import UOp, Ops
from tinygrad.dtype import dtypes
from tinygrad.rewrite import graph_rewrite
from tinygrad.helpers import prod, ceildiv
from codegen.symbolic import pm_symbolic, affine
from codegen.opt import pm_promote_half, guard_loads, kernel_name

BLOCK = 256                 # threads per block (the largest block used)
MAX_GRID_X = 2 ** 31 - 1    # gridDim.x limit (compute capability >= 3.0)
PARALLEL = 1 << 16          # threads the cost model treats as running at once (one "wave")

@dataclass(frozen=True)
class GPUKernelInfo:
  name: str
  global_size: tuple[int, int, int]   # blocks per grid (x, y, z)
  local_size: tuple[int, int, int]    # threads per block (x, y, z)
  n_threads: int                      # threads with work: gid < n_threads; the rest exit at once
  gid: UOp | None                     # the flat global id (Ops.SPECIAL, arg ("gid", n_threads)); None for one thread
  loops: tuple[UOp, ...]              # global RANGEs kept as loops inside each thread

  @property
  def needs_guard(self) -> bool:
    return self.gid is not None and self.global_size[0] * self.local_size[0] > self.n_threads

def launch_dims(n: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
  """(grid, block) for n threads on a 1-D grid."""
  if n <= BLOCK: return (1, 1, 1), (max(n, 1), 1, 1)
  return (ceildiv(n, BLOCK), 1, 1), (BLOCK, 1, 1)

def _global_ranges(sink: UOp) -> list[UOp]:
  return sorted((u for u in sink.toposort() if u.op is Ops.RANGE and u.arg.kind == "global"), key=lambda r: r.arg.id)

def choose_mapped(sink: UOp, globs: list[UOp]) -> int:
  """How many of the outer global loops become threads (the rest stay loops inside each thread)."""
  if not globs: return 0
  pos = {g: i for i, g in enumerate(globs)}
  ends = [g.arg.end for g in globs]
  # each reduce: its level (1 + the innermost global loop it depends on) and its own iteration count
  reds = []
  for u in sink.toposort():
    if u.op is not Ops.REDUCE: continue
    level = 1 + max((pos[r] for r in u.ranges if r in pos), default=-1)
    reds.append((level, prod(r.arg.end for r in u.src[1:] if r.op is Ops.RANGE)))
  best, best_cost = len(globs), None
  for s in range(len(globs), -1, -1):
    threads = prod(ends[:s])
    if ceildiv(threads, BLOCK) > MAX_GRID_X: continue
    per_thread = prod(ends[s:]) + sum(r * (prod(ends[s:lvl]) if lvl >= s else 1) for lvl, r in reds)
    cost = per_thread * ceildiv(threads, PARALLEL)
    if best_cost is None or cost < best_cost: best, best_cost = s, cost
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
    elif u.op in (Ops.ADD, Ops.MUL) and u.dtype == dtypes.index and any(g in u.ranges for g in pos):
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

def optimize_gpu(sink: UOp) -> tuple[UOp, GPUKernelInfo]:
  name = kernel_name(sink)
  sink = graph_rewrite(sink, pm_symbolic, name="simplify")
  sink = graph_rewrite(sink, pm_promote_half)
  globs = _global_ranges(sink)
  s = choose_mapped(sink, globs)
  mapped, loops = globs[:s], tuple(globs[s:])
  n = prod(g.arg.end for g in mapped)
  gid = None
  if n > 1:
    gid = UOp(Ops.SPECIAL, dtypes.index, (), ("gid", n))
    sink = graph_rewrite(substitute_globals(sink, mapped, gid), pm_symbolic, name="simplify after gpu dims")
  elif mapped:  # loops of size 1 do not exist, but stay safe
    sink = sink.substitute({g: UOp.const(dtypes.index, 0) for g in mapped})
  sink = guard_loads(sink)
  grid, block = launch_dims(n)
  return sink, GPUKernelInfo(name, grid, block, n, gid, loops)
