"""Schedule: split a Tensor graph into kernels.

Fusion policy (the one cost rule): every node is inlined into the kernel that consumes it, except
  * realized buffers, the roots being realized, CONTIGUOUS and COPY (always their own kernel), and
  * a REDUCE whose inlined loop would run more than once per use: it is evaluated at two different indices, or its
    index does not depend on every loop enclosing it (e.g. `x.sum(0)` broadcast back over rows). The lowering
    detects these (NeedsRealize) and the reduce gets its own kernel.
So `(a*b+c).relu().sum()` is one kernel, `(a@b+c).relu()` is one kernel, and softmax/layernorm are one kernel each.
"""
from __future__ import annotations
from dataclasses import dataclass
from tinygrad.uop import UOp, Ops, MOVEMENT
from codegen.lower import lower, NeedsRealize

@dataclass(frozen=True)
class ScheduleItem:
  out: UOp                  # the Tensor-level node this kernel computes
  ast: UOp                  # the kernel graph (SINK of one STORE)
  inputs: tuple[UOp, ...]   # realized Tensor-level nodes read, in parameter order (param 0 is `out`)

def is_view_of_buffer(u: UOp) -> bool:
  while u.op in MOVEMENT: u = u.src[0]
  return u.op is Ops.BUFFER

def create_schedule(roots: list[UOp]) -> list[ScheduleItem]:
  to_realize: dict[UOp, None] = {r: None for r in roots if not is_view_of_buffer(r) and r.size > 0}
  for u in UOp(Ops.SINK, src=tuple(roots)).toposort():
    if u.op in (Ops.CONTIGUOUS, Ops.COPY) and u.size > 0: to_realize[u] = None
  items: list[ScheduleItem] = []
  built: set[UOp] = set()

  def build(u: UOp) -> None:
    if u in built: return
    built.add(u)
    while True:
      try:
        sink, inputs = lower(u, lambda x: x is not u and (x.op is Ops.BUFFER or x in to_realize))
        break
      except NeedsRealize as e: to_realize[e.node] = None
    for i in inputs:
      if i.op is not Ops.BUFFER: build(i)
    items.append(ScheduleItem(u, sink, tuple(inputs)))

  for r in list(to_realize): build(r)
  to_realize.clear()  # build is a recursive closure (a reference cycle): drop the graph now, not at the next GC
  return items
