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
  ast: UOp | None           # the kernel graph (SINK of one STORE); None for a COPY between devices
  inputs: tuple[UOp, ...]   # realized Tensor-level nodes read, in parameter order (param 0 is `out`)

def is_view_of_buffer(u: UOp) -> bool:
  while u.op in MOVEMENT: u = u.src[0]
  return u.op is Ops.BUFFER

def create_schedule(roots: list[UOp]) -> list[ScheduleItem]:
  to_realize: dict[UOp, None] = {r: None for r in roots if not is_view_of_buffer(r) and r.size > 0}
  for u in UOp(Ops.SINK, src=tuple(roots)).toposort():
    if u.op in (Ops.CONTIGUOUS, Ops.COPY) and u.size > 0: to_realize[u] = None
  while True:
    items, inlined_by = _build_kernels(to_realize)
    # a reduce inlined into several kernels would be computed once per kernel: realize it once and start over. So
    # must a kernel lowered before a later one forced that reduce to be realized (it computed the reduce again).
    redo = [r for r, n in inlined_by.items() if n > 1 or r in to_realize]
    if not redo: return items
    to_realize.update(dict.fromkeys(redo))

def _build_kernels(to_realize: dict[UOp, None]) -> tuple[list[ScheduleItem], dict[UOp, int]]:
  items: list[ScheduleItem] = []
  inlined_by: dict[UOp, int] = {}
  built: set[UOp] = set()
  stack: list[tuple[UOp, bool]] = [(r, False) for r in reversed(list(to_realize))]
  lowered: dict[UOp, tuple[UOp, list[UOp]]] = {}
  while stack:  # depth-first: a kernel's inputs are built before it
    u, ready = stack.pop()
    if u in built: continue
    if not ready and u.op is Ops.COPY and u.src[0].op is Ops.BUFFER:  # a transfer from another device's buffer
      lowered[u] = (None, [u.src[0]])
      stack.append((u, True))
      continue
    if not ready:
      while True:
        try:
          sink, inputs, inlined = lower(u, lambda x: x is not u and (x.op is Ops.BUFFER or x in to_realize))
          break
        except NeedsRealize as e: to_realize[e.node] = None
      lowered[u] = (sink, inputs)
      for r in inlined: inlined_by[r] = inlined_by.get(r, 0) + 1
      stack.append((u, True))
      stack.extend((i, False) for i in reversed(inputs) if i.op is not Ops.BUFFER and i not in built)
      continue
    built.add(u)
    sink, inputs = lowered[u]
    items.append(ScheduleItem(u, sink, tuple(inputs)))
  return items, inlined_by
