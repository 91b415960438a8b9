"""Linearizer: place every kernel node in the innermost loop it depends on, then order each loop body.

The result is a tree of Blocks (a loop and its body); renderers walk it in order. Reduces become
DEFINE_ACC (before the loop), ACCUMULATE (in the innermost reduce loop) and the REDUCE itself (after the loop).
"""
from __future__ import annotations
import heapq
from dataclasses import dataclass, field
from tinygrad.uop import UOp, Ops

@dataclass(eq=False)
class Block:
  rng: UOp | None                        # the RANGE this block loops over; None for the function body
  items: list = field(default_factory=list)   # UOps and nested Blocks, in execution order

# not placed in any block; a RANGE's source (a symbolic end) is still computed before the loop: nodes in the loop look
# through the RANGE to it, so their block depends on it
INLINE = {Ops.CONST, Ops.RANGE, Ops.LANE, Ops.DEFINE_GLOBAL, Ops.DEFINE_VAR, Ops.SINK, Ops.VECTORIZE}

def linearize(sink: UOp, loop_order: tuple[UOp, ...] | None = None) -> Block:
  """loop_order: the global loops from outermost to innermost (default: by id)."""
  nodes = sink.toposort()
  order = {u: i for i, u in enumerate(nodes)}
  parent: dict[UOp, UOp | None] = {}
  glob = list(loop_order) if loop_order is not None else \
    sorted((u for u in nodes if u.op is Ops.RANGE and u.arg.kind == "global"), key=lambda r: r.arg.id)
  for p, g in zip([None] + glob, glob): parent[g] = p
  depth_cache: dict = {None: 0}
  def depth(r):
    if r not in depth_cache: depth_cache[r] = depth(parent[r]) + 1
    return depth_cache[r]
  def deepest(rs) -> UOp | None: return max((r for r in rs if r.op is Ops.RANGE), key=depth, default=None)

  reduces = [u for u in nodes if u.op is Ops.REDUCE]
  place: dict[UOp, UOp | None] = {}
  accs: dict[UOp, tuple[UOp, UOp]] = {}
  for red in reversed(reduces):  # an outer reduce is nested before the reduces inside it
    place[red] = p = deepest(red.ranges)
    for loop in (s for s in red.src[1:] if s.op is Ops.RANGE): parent[loop], p = p, loop
    acc = UOp(Ops.DEFINE_ACC, red.src[0].dtype, (), red)  # a vector when the reduced loop's lanes are reduced too
    accs[red] = (acc, UOp(Ops.ACCUMULATE, acc.dtype, (acc, red.src[0]), red))
    place[acc], place[accs[red][1]] = place[red], p

  # any other loop (a scatter's fill and its loop over the values, codegen/opt.py scatter_onehot_reduce) runs inside
  # the innermost output loop
  for r in nodes:
    if r.op is Ops.RANGE and r not in parent: parent[r] = glob[-1] if glob else None
  blocks: dict[UOp | None, Block] = {None: Block(None)}
  def block(r: UOp | None) -> Block:
    if r not in blocks: blocks[r] = Block(r)
    return blocks[r]
  members: dict[Block, list] = {}
  def add(item, r):
    members.setdefault(block(r), []).append(item)
  entries = []
  for u in nodes:
    if u.op in INLINE: continue
    if u.op is Ops.REDUCE:
      acc, accum = accs[u]
      entries += [(acc, place[acc]), (accum, place[accum]), (u, place[u])]
      order[acc], order[accum] = order[u] - 0.6, order[u] - 0.5
    else: entries.append((u, deepest(u.ranges)))
  where: dict[UOp, UOp | None] = {}
  for u, r in entries:
    where[u] = r
    add(u, r)
  # every loop is an item of its parent's block
  for r in list(blocks):
    while r is not None:
      b = block(r)
      pb = block(parent[r])
      if b not in members.setdefault(pb, []): members[pb].append(b)
      r = parent[r]

  def chain(r):
    out = []
    while r is not None: out.append(r); r = parent[r]
    return out
  # a load from a buffer the kernel also stores to (codegen/opt.py store_reduced_values) comes after the stores to
  # it that read nothing of it (the values it reads back): memory order, which no source edge expresses
  written = {st.src[0] for st in sink.src if st.op is Ops.STORE}
  after: dict[UOp, list[UOp]] = {}
  for ld in (u for u in nodes if u.op is Ops.LOAD and u.src[0] in written):
    after[ld] = [st for st in sink.src if st.op is Ops.STORE and st.src[0] is ld.src[0] and
                 not any(x.op is Ops.LOAD and x.src[0] is ld.src[0] for x in st.toposort())]
  def deps(u: UOp) -> list[UOp]:
    if u.op is Ops.REDUCE: return [accs[u][1]]
    if u.op is Ops.ACCUMULATE: return [u.src[0], u.src[1]]
    out, stack = list(after.get(u, ())), list(u.src)
    while stack:  # look through inline nodes (a VECTORIZE broadcasting a computed value) to what they read
      s = stack.pop()
      if s.op in INLINE: stack.extend(s.src)
      else: out.append(s)
    return out

  def order_block(b: Block) -> None:
    items = members.get(b, [])
    item_of: dict[UOp, object] = {}
    first: dict[object, float] = {}
    for it in items:
      for u in _all_nodes(it, members):
        item_of[u] = it
        first[it] = min(first.get(it, 1e18), order[u])
    indeg = {it: 0 for it in items}
    users: dict = {it: [] for it in items}
    for it in items:
      needed = set()
      for u in _all_nodes(it, members):
        for s in deps(u):
          if (o := item_of.get(s)) is not None and o is not it: needed.add(o)
      for o in needed: users[o].append(it); indeg[it] += 1
    heap = [(first[it], i, it) for i, it in enumerate(items) if indeg[it] == 0]
    heapq.heapify(heap)
    idx = {it: i for i, it in enumerate(items)}
    out = []
    while heap:
      _, _, it = heapq.heappop(heap)
      out.append(it)
      for v in users[it]:
        indeg[v] -= 1
        if indeg[v] == 0: heapq.heappush(heap, (first[v], idx[v], v))
    assert len(out) == len(items), "linearize: dependency cycle"
    b.items = out
    for it in out:
      if isinstance(it, Block): order_block(it)
  order_block(blocks[None])
  return blocks[None]

def _all_nodes(it, members) -> list[UOp]:
  if isinstance(it, UOp): return [it]
  return [u for x in members.get(it, []) for u in _all_nodes(x, members)]

def listing(b: Block, indent: int = 0) -> str:
  """The linearized program as text (DEBUG=6)."""
  lines = []
  for it in b.items:
    if isinstance(it, Block):
      lines.append(" " * indent + f"RANGE {it.rng.arg.id} [0, {it.rng.arg.end}) {it.rng.arg.kind}")
      lines.append(listing(it, indent + 2))
      lines.append(" " * indent + f"ENDRANGE {it.rng.arg.id}")
    else:
      lines.append(" " * indent + f"{it.op.name:<12} {it.dtype!s:<24} {it.arg if it.op not in (Ops.DEFINE_ACC, Ops.ACCUMULATE) else it.arg.arg}")
  return "\n".join(lines)
