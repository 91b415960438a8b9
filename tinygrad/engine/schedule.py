"""Schedule: split a Tensor graph into kernels.

Fusion policy (the one cost rule): every node is inlined into the kernel that consumes it, except
  * realized buffers, the roots being realized, CONTIGUOUS and COPY (always their own kernel), and
  * a REDUCE (or a costly elementwise value) whose inlined computation would run more than once per use: evaluated at
    two different indices or inside two reduces, or at an index that does not depend on every loop enclosing it (e.g.
    `x.sum(0)` broadcast back over rows). The lowering detects these (NeedsRealize) and the node gets its own kernel;
  * every 64th distinct op of a long elementwise chain (cut_long_chains).
  docs/design.md "The fusion rule" has the details and the measurements behind each.
Nodes to realize of one shape that share a REDUCE or read one another share one kernel (a store each).
So `(a*b+c).relu().sum()` is one kernel, `(a@b+c).relu()` is one kernel, and softmax/layernorm are one kernel each.
"""
from __future__ import annotations
from dataclasses import dataclass
from tinygrad.uop import UOp, Ops, MOVEMENT, ELEMENTWISE, ReduceArg
from tinygrad.helpers import prod
from codegen.lower import lower, NeedsRealize

@dataclass(frozen=True)
class ScheduleItem:
  outs: tuple[UOp, ...]     # the Tensor-level nodes this kernel computes (one STORE each, same shape)
  ast: UOp | None           # the kernel graph (SINK of the STOREs); None for a COPY between devices
  inputs: tuple[UOp, ...]   # realized Tensor-level nodes read, in parameter order (after the outputs)

def is_view_of_buffer(u: UOp) -> bool:
  """A movement-op view of a buffer, or of a COPY or CONTIGUOUS (always their own transfer or kernel): it needs no kernel
  of its own. test_view_of_contiguous_root_is_not_copied"""
  v = u
  while v.op in MOVEMENT: v = v.src[0]
  return v.op is Ops.BUFFER or (v.op in (Ops.COPY, Ops.CONTIGUOUS) and v is not u)

def _nonempty(u: UOp) -> bool: return not isinstance(u.size, int) or u.size > 0  # a symbolic size is a kernel that may loop 0 times

def create_schedule(roots: list[UOp], multi_output: bool = True) -> list[ScheduleItem]:
  to_realize: dict[UOp, None] = {r: None for r in roots if not is_view_of_buffer(r) and _nonempty(r)}
  nodes = UOp(Ops.SINK, src=tuple(roots)).toposort()
  for u in nodes:
    if u.op in (Ops.CONTIGUOUS, Ops.COPY) and _nonempty(u): to_realize[u] = None
  cut_long_chains(nodes, to_realize)
  groups = output_groups(list(to_realize)) if multi_output else {}
  lowerings: dict[tuple[UOp, ...], _Lowering] = {}
  simplified: dict[UOp, UOp] = {}  # index expressions simplified so far, for every kernel's lowering
  while True:
    before = len(to_realize)
    items, inlined_by = _build_kernels(to_realize, groups, lowerings, simplified)
    # a reduce inlined into several kernels would be computed once per kernel: realize it once and start over. So
    # must a kernel lowered before a later one forced that reduce to be realized (it computed the reduce again).
    redo = [r for r, n in inlined_by.items() if n > 1 or r in to_realize]
    if not redo: return items
    # where every read of a reduce goes through one smaller node (a conv's input gradient: the sum of its per-offset
    # products read at each kernel offset), that node is realized instead: the reduce is inlined into its kernel alone
    redo = [_converging_consumer(r, nodes, to_realize) if inlined_by.get(r, 0) > 1 and r not in to_realize else r for r in redo]
    to_realize.update(dict.fromkeys(redo))
    assert len(to_realize) > before, "schedule: a pass realized nothing new (it would repeat forever)"

def _converging_consumer(r: UOp, nodes: list[UOp], to_realize: dict[UOp, None]) -> UOp:
  """The first node above r that every path from r to a node to realize passes through (a post-dominator), elementwise
  and at most half r's size; else r. test_conv_input_gradient_sums_its_offsets_in_one_kernel"""
  above, into, out = {r}, {}, {r: 0}  # r's graph above it up to the nodes to realize; edges into and out of each node
  for u in nodes:
    if u is r or not (n := sum(s in above for s in u.src)): continue
    into[u] = n
    for s in u.src:
      if s in above: out[s] += 1
    if u not in to_realize: above.add(u)
    out[u] = 0
  open_edges = out[r]
  for u, n in into.items():  # in topological order: where every edge still open ends at u, all paths meet there
    if u in to_realize: return r  # a kernel reads r on a path that meets no other first
    if (open_edges := open_edges - n) == 0 and u.op in ELEMENTWISE and isinstance(u.size, int) and isinstance(r.size, int) \
       and 2 * u.size <= r.size: return u
    open_edges += out[u]  # a view of r (or a larger node) is passed: the next node where the paths meet
  return r

CHAIN_OPS = 64  # distinct elementwise ops after which a chain is cut (realized)

def cut_long_chains(nodes: list[UOp], to_realize: dict[UOp, None]) -> None:
  """Realize a chain of elementwise ops every CHAIN_OPS distinct ops. Inlined whole, a chain is computed again by
  every kernel that reads it: an LSTM unrolled over 16 steps carries its cell state through ~20 ops a step, and each of
  its backward kernels recomputed the chain from the first step (~15k lines of IR each, a 10.8 s first step). A node
  larger than every input its chain reads is not cut: it is a broadcast (a matmul's operands multiplied out; a
  random-number hash over a parameter's shape), cheaper to compute again than to store. test_long_elementwise_chain_is_cut"""
  cost: dict[UOp, tuple[int, int]] = {}  # node -> (ops of its tree since the last cut, the largest input read since)
  for u in nodes:  # the schedule's graph, every node after its sources
    if u.op in (Ops.BUFFER, Ops.REDUCE, Ops.CONTIGUOUS, Ops.COPY) or u in to_realize or u.realized is not None:
      cost[u] = (0, u.size if isinstance(u.size, int) else 0)
      continue
    c = sum(cost[s][0] for s in u.src if s in cost) + (u.op in ELEMENTWISE)
    big = max((cost[s][1] for s in u.src if s in cost), default=0)
    # the tree's count bounds the distinct ops from above (a layernorm's backward reuses its values: a tree of 128+ ops
    # over 29 distinct ones), so only a node past it is walked for the distinct count
    if c >= CHAIN_OPS and u.op in ELEMENTWISE and isinstance(u.size, int) and 0 < u.size <= big and _distinct_ops(u, to_realize) >= CHAIN_OPS:
      to_realize[u], c, big = None, 0, u.size
    cost[u] = (c, big)

def _distinct_ops(u: UOp, to_realize: dict[UOp, None]) -> int:
  """The distinct elementwise ops of u's graph down to realized nodes and reduces, counted up to CHAIN_OPS."""
  seen, stack, n = set(), [u], 0
  while stack and n < CHAIN_OPS:
    x = stack.pop()
    if x in seen or x.op in (Ops.BUFFER, Ops.REDUCE) or x.realized is not None or (x is not u and x in to_realize): continue
    seen.add(x)
    n += x.op in ELEMENTWISE
    stack.extend(x.src)
  return n

SPLIT_MIN_ELEMENTS = 1 << 18   # a reduce folding at least this many elements per output ...
SPLIT_MAX_OUTPUTS = 16         # ... into this few outputs has too few output rows to split across threads
SPLIT_CHUNKS = (64, 32, 16)    # so it is computed as partial results over this many chunks (its own, threaded kernel), then combined

def split_large_reduces(roots: list[UOp]) -> list[UOp]:
  """A reduce with a tiny output over a huge input (`x.sum()` of 16M elements) would run on one thread: reduce
  contiguous chunks into partials first (a kernel whose chunk loop is split across threads), then the partials.
  test_full_sum_is_split_across_threads"""
  swap: dict[UOp, UOp] = {}
  for u in UOp(Ops.SINK, src=tuple(roots)).toposort():
    if u.op is not Ops.REDUCE or not all(isinstance(d, int) for d in u.src[0].shape): continue
    src, axes = u.src[0], u.arg.axes
    n = prod(src.shape[a] for a in axes)
    if n < SPLIT_MIN_ELEMENTS or u.size > SPLIT_MAX_OUTPUTS or (chunks := next((c for c in SPLIT_CHUNKS if n % c == 0), None)) is None: continue
    keep = tuple(i for i in range(len(src.shape)) if i not in axes)
    x = src if keep + axes == tuple(range(len(src.shape))) else UOp(Ops.PERMUTE, src.dtype, (src,), keep + axes)
    kept = tuple(src.shape[i] for i in keep)
    x = UOp(Ops.RESHAPE, src.dtype, (x,), kept + (chunks, n // chunks))
    part = UOp(Ops.CONTIGUOUS, u.dtype, (UOp(Ops.REDUCE, u.dtype, (x,), ReduceArg(u.arg.op, (len(kept) + 1,))),))
    total = UOp(Ops.REDUCE, u.dtype, (part,), ReduceArg(u.arg.op, (len(kept),)))
    swap[u] = UOp(Ops.RESHAPE, u.dtype, (total,), u.shape)
  if not swap: return roots
  return list(UOp(Ops.SINK, src=tuple(roots)).substitute(swap).src)

def output_groups(nodes: list[UOp]) -> dict[UOp, tuple[UOp, ...]]:
  """Nodes to realize that have one shape and share a REDUCE, or read one another, are computed by one kernel with a
  store per node: an optimizer's update of a parameter and its moments reads the gradient once (test_adam_update_is_one_kernel)."""
  parent: dict[UOp, UOp] = {}
  def find(x: UOp) -> UOp:
    while parent.get(x, x) is not x: x = parent[x]
    return x
  by_shape: dict[tuple[int, ...], list[UOp]] = {}
  for n in nodes:
    if n.op is not Ops.COPY: by_shape.setdefault(n.shape, []).append(n)
  for same in (ns for ns in by_shape.values() if len(ns) > 1):
    members, owner = set(same), {}
    for n in same:
      for x in _local_graph(n, members):
        if x.op is Ops.REDUCE: parent[find(n)] = find(owner.setdefault(x, n))
      # a member read elementwise (same index, no view in between) is computed once in the group; one read through a
      # view would be recomputed at another index: a chain of such reads grows exponentially  test_view_chain_is_not_grouped
      for x in _elementwise_reads(n, members): parent[find(n)] = find(x)
  out: dict[UOp, list[UOp]] = {}
  for n in nodes:
    if n in parent: out.setdefault(find(n), []).append(n)
  return {n: tuple(g) for g in out.values() if len(g) > 1 for n in g}

def _elementwise_reads(root: UOp, members: set[UOp]) -> list[UOp]:
  """Members that root reads through elementwise ops only."""
  seen, out, stack = set(), [], list(root.src)
  while stack:
    x = stack.pop()
    if x in seen: continue
    seen.add(x)
    if x in members: out.append(x)
    elif x.op not in MOVEMENT and x.op is not Ops.REDUCE and x.op is not Ops.BUFFER and x.realized is None: stack.extend(x.src)
  return out

def _local_graph(root: UOp, stop: set[UOp]) -> list[UOp]:
  """The nodes root's kernel could compute: its graph down to buffers and other nodes in `stop` (which are included)."""
  seen, out, stack = set(), [], [root]
  while stack:
    x = stack.pop()
    if x in seen: continue
    seen.add(x)
    out.append(x)
    if x.op is not Ops.BUFFER and x.realized is None and (x is root or x not in stop): stack.extend(x.src)
  return out

@dataclass(frozen=True)
class _Lowering:
  sink: UOp
  inputs: list[UOp]
  inlined: set[UOp]
  reads: frozenset[UOp]  # the nodes of the outputs' graph that were kernel inputs: the same set again, the same kernel

def _reads(outs: tuple[UOp, ...], to_realize: dict[UOp, None]) -> frozenset[UOp]:
  """The nodes to realize that the graph of outs reaches first (where lowering stops and loads)."""
  seen, out, stack = set(), set(), list(outs)
  while stack:
    x = stack.pop()
    if x in seen: continue
    seen.add(x)
    if x not in outs and x in to_realize: out.add(x)
    elif x.op is not Ops.BUFFER: stack.extend(x.src)
  return frozenset(out)

def _build_kernels(to_realize: dict[UOp, None], groups: dict[UOp, tuple[UOp, ...]], lowerings: dict[tuple[UOp, ...], _Lowering],
                   simplified: dict[UOp, UOp]) -> tuple[list[ScheduleItem], dict[UOp, int]]:
  """One pass over the nodes to realize, each group lowered to a kernel; a group lowered in an earlier pass whose graph
  reaches the same nodes to realize is not lowered again (a second pass re-lowered ~20 ms of an MLP step's kernels)."""
  items: list[ScheduleItem] = []
  inlined_by: dict[UOp, int] = {}
  built: set[UOp] = set()
  stack: list[tuple[UOp, bool]] = [(r, False) for r in reversed(list(to_realize))]
  lowered: dict[UOp, tuple[tuple[UOp, ...], UOp | None, list[UOp]]] = {}
  while stack:  # depth-first: a kernel's inputs are built before it
    u, ready = stack.pop()
    if u in built: continue
    if not ready and u.op is Ops.COPY and u.src[0].op is Ops.BUFFER:  # a transfer from another device's buffer
      lowered[u] = ((u,), None, [u.src[0]])
      stack.append((u, True))
      continue
    if not ready:
      if u in lowered: continue  # another member of its group was lowered first
      outs = groups.get(u, (u,))
      if (done := lowerings.get(outs)) is not None and done.reads == _reads(outs, to_realize):
        sink, inputs, inlined = done.sink, done.inputs, done.inlined
      else:
        while True:
          try: sink, inputs, inlined = lower(outs, lambda x: x not in outs and (x.op is Ops.BUFFER or x in to_realize), simplified)
          except NeedsRealize as e:
            if e.node not in outs:
              assert e.node not in to_realize, f"schedule: {e.node.op} is to be realized and still inlined (it would repeat forever)"
              to_realize[e.node] = None
              continue
            split = True  # a member of the group is read by another member at another index
          else:  # or the group reads a kernel that reads the group: a cycle
            split = len(outs) > 1 and any(x in outs for i in inputs for x in _local_graph(i, set(outs)))
          if not split: break
          for o in outs: groups.pop(o, None)  # lower u alone (the other members on their own turns)
          outs = (u,)
        lowerings[outs] = _Lowering(sink, inputs, inlined, _reads(outs, to_realize))
      for o in outs: lowered[o] = (outs, sink, inputs)
      for r in inlined: inlined_by[r] = inlined_by.get(r, 0) + 1
      stack.append((u, True))
      stack.extend((i, False) for i in reversed(inputs) if i.op is not Ops.BUFFER and i not in built)
      continue
    outs, sink, inputs = lowered[u]
    built.update(outs)
    items.append(ScheduleItem(outs, sink, tuple(inputs)))
  return items, inlined_by
