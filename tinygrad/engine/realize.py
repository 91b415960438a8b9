"""Realize: Tensor graphs -> execution plans -> kernel runs.

Caches, in the order a hot path meets them:
  1. graph signature -> ExecPlan. The graph is normalised (each realized buffer replaced by a numbered placeholder),
     so a repeated step with new data maps to a ready plan without re-scheduling or re-running any rewrite.
  2. kernel graph -> CompiledKernel (in-process; kernel graphs are hash-consed, so the key is the graph itself).
  3. LLVM IR + target -> object code on disk (runtime.diskcache).
"""
from __future__ import annotations
import time
from dataclasses import dataclass
from typing import Any
from tinygrad import uop as _uop
from tinygrad.uop import UOp, Ops, BufferRef, MOVEMENT, sym_eval, unbind, is_symbolic
from tinygrad.dtype import DType, dtypes
from tinygrad.device import Device, Buffer
from tinygrad.helpers import DEBUG, NOOPT, GlobalCounters, colored, prod
from tinygrad.engine.schedule import create_schedule, is_view_of_buffer, split_large_reduces

@dataclass(frozen=True)
class InputSlot:
  """A placeholder for the k-th realized buffer a graph reads (normalised graphs are keyed without buffer identity)."""
  k: int
  size: int | UOp   # symbolic when the buffer is read whole through a symbolic reshape, so its size is not in the key
  device: str

@dataclass
class CompiledKernel:
  name: str
  program: object     # CPUProgram (a runtime.cpu.Pending while it compiles) or CUDAProgram
  launch: tuple       # the device's run() arguments after the buffers: CPU (outer, work, threaded); CUDA (grid, block)
  src: str
  ops: str            # the Tensor-level ops fused in it, for DEBUG=2
  flops: int | UOp    # launch, flops and nbytes are symbolic in a kernel with Variables: evaluated on every run
  nbytes: int | UOp
  variables: tuple[UOp, ...] = ()  # the DEFINE_VARs whose values follow the buffers as kernel arguments

@dataclass(frozen=True)
class BufferCopy:
  """A COPY between devices: a host transfer, not a kernel."""
  name: str = "copy"

@dataclass(frozen=True)
class NativeBatch:
  """Kernels run in order by one native call (runtime.cpu.KernelBatch): no Python between them, and threaded ones find
  the workers still awake from the one before; one kernel that runs inline is called straight (runtime.cpu.InlineCall).
  Serves a plan's kernels and a TinyJit replay's."""
  native: Any                 # runtime.cpu.KernelBatch or InlineCall
  slots: tuple[int, ...]      # the buffer slots of every kernel's parameters, kernel after kernel
  kernels: int
  flops: int
  nbytes: int
  def run(self, bufs: list[Buffer]) -> bool:
    """Run on the buffers in bufs' slots; False (nothing run) where the workers are busy in another thread."""
    if not self.native.run([bufs[i].ptr for i in self.slots]): return False
    GlobalCounters.kernel_count += self.kernels
    GlobalCounters.global_ops += self.flops
    GlobalCounters.global_mem += self.nbytes
    return True

def native_batch(kernels: list[tuple[CompiledKernel | BufferCopy, tuple[int, ...]]], dev) -> NativeBatch | None:
  """The kernels as one native call, where all are compiled kernels without Variables on a device that batches."""
  if not hasattr(dev, "batch") or any(not isinstance(ck, CompiledKernel) or ck.variables for ck, _ in kernels): return None
  if (native := dev.batch([(ck.program, len(slots), *ck.launch) for ck, slots in kernels])) is None: return None
  return NativeBatch(native, tuple(i for _, slots in kernels for i in slots), len(kernels),
                     sum(ck.flops for ck, _ in kernels), sum(ck.nbytes for ck, _ in kernels))

@dataclass
class ExecPlan:
  n_inputs: int
  new_bufs: list[tuple[int | UOp, DType]]           # (size, dtype) of buffers allocated on every run
  kernels: list[tuple[CompiledKernel, tuple[int, ...]]]  # kernel and the slot of each of its parameters
  outputs: list[int | None]                         # slot holding each root, None where the root is a view
  saved: list[tuple[UOp, int]]                      # (node, slot) of every other kernel output: kept for later graphs
  batch: NativeBatch | None = None                  # the kernels as one native call, where they can be

plan_cache: dict[tuple[tuple[UOp, ...], str], ExecPlan] = {}
kernel_cache: dict[tuple[UOp, str], CompiledKernel] = {}
stats = {"plans": 0, "plan_hits": 0, "compiles": 0}
recording = None  # a tinygrad.engine.jit.Recording while TinyJit records a call: every plan run is appended to it

def normalize(roots: list[UOp]) -> tuple[tuple[UOp, ...], list[Buffer], dict[UOp, UOp], dict[UOp, int]]:
  """Replace every realized buffer by an InputSlot placeholder; earlier results stand in for the nodes they realized;
  bound Variables are unbound, so one plan serves every value. Returns the normalised roots, the buffers in slot order,
  the map from each original node to its normalised one, and the Variables' values."""
  memo: dict[UOp, UOp] = {}
  bufs: list[Buffer] = []
  var_vals: dict[UOp, int] = {}
  try: out = tuple([_normalize(r, memo, bufs, var_vals) for r in roots])
  except RecursionError:
    # a graph deeper than Python's stack (an unrolled solver): visit every node after its sources, so _normalize
    # recurses at most twice; memo keeps what the first attempt finished. test_deep_graph_does_not_hit_the_recursion_limit
    for r in roots:
      for u in r.toposort(): _normalize(u, memo, bufs, var_vals)
    out = tuple([_normalize(r, memo, bufs, var_vals) for r in roots])
  return out, bufs, memo, var_vals

def _normalize(u: UOp, memo: dict[UOp, UOp], bufs: list[Buffer], var_vals: dict[UOp, int]) -> UOp:
  """Recursive (twice as fast as an explicit stack on the per-op path); buffers are numbered in first-use order,
  sources left to right."""
  if u._pure: return u  # a graph of constants only: itself (x + 1's constant, once per op)
  if (r := memo.get(u)) is not None: return r
  if u.realized is not None: r = _normalize(u.realized, memo, bufs, var_vals)  # computed earlier: read its buffer
  elif u.op is Ops.BUFFER:
    r = _slot_uop(len(bufs), u)
    bufs.append(u.arg.buf)
  elif not u.src: r, u._pure = u, True
  else:
    # one or two sources (nearly every node) without a list comprehension's call: ~15% of normalising an MLP step
    if len(us := u.src) == 1: src = (_normalize(us[0], memo, bufs, var_vals),)
    elif len(us) == 2: src = (_normalize(us[0], memo, bufs, var_vals), _normalize(us[1], memo, bufs, var_vals))
    else: src = tuple([_normalize(s, memo, bufs, var_vals) for s in us])
    if _uop.symbolic_in_use and (u.op is Ops.BIND or (u.op in MOVEMENT and is_symbolic(u.arg))): r = _unbind_node(u, src, var_vals)
    elif src != u.src: r = UOp(u.op, u.dtype, src, u.arg)
    else:
      r = u
      # its value never changes (were it realized later, computing it again gives the same): skip the walk next time
      if all([s._pure for s in src]): u._pure = True
  memo[u] = r
  return r

_slots: dict[tuple, UOp] = {}
def _slot_uop(k: int, u: UOp) -> UOp:
  """The placeholder BUFFER for slot k holding u's buffer; kept, so a repeated realize builds no dataclass."""
  key = (k, u.dtype, u.arg.size, u.arg.device)
  if (s := _slots.get(key)) is None: s = _slots[key] = UOp(Ops.BUFFER, u.dtype, (), InputSlot(k, u.arg.size, u.arg.device))
  return s

def _unbind_node(u: UOp, src: tuple[UOp, ...], var_vals: dict[UOp, int]) -> UOp:
  """u with its bound Variables unbound. A whole buffer reshaped to a symbolic shape (`x.reshape(3, n)`) is read as
  a buffer of symbolic size, so the plan and kernel do not depend on the value either. test_reshape_compiles_once"""
  if u.op is Ops.BIND: return unbind(u, var_vals)
  arg = unbind(u.arg, var_vals)
  if u.op is Ops.RESHAPE and (b := src[0] if src[0].op is Ops.BUFFER else src[0].src[0] if src[0].op is Ops.RESHAPE else None) is not None \
     and b.op is Ops.BUFFER and isinstance(b.arg, InputSlot):
    size = prod(arg)
    src = (UOp(Ops.BUFFER, b.dtype, (), InputSlot(b.arg.k, size, b.arg.device)),)
  return UOp(u.op, u.dtype, src, arg)

def resolve(u: UOp) -> UOp:
  """u with every node computed earlier replaced by its buffer view."""
  return u.substitute({x: x.realized for x in u.toposort() if x.realized is not None})

def count_flops(sink: UOp) -> int:
  """Floating/integer operations the kernel executes: each ALU node once per iteration of the loops it sits in, times
  its lanes; a REDUCE counts one operation per element it folds in (a matmul's multiply-add is 2)."""
  from tinygrad.uop import ALU
  total = 0
  for u in sink.toposort():
    if u.op is Ops.REDUCE: u = u.src[0]  # the accumulate runs once per value reduced
    elif u.op not in ALU or u.dtype.scalar == dtypes.index: continue  # index arithmetic (int64) is not counted
    n = u.dtype.count  # lanes (a LANE among its ranges is the same lanes, not another loop)
    for r in u.ranges:
      if r.op is Ops.RANGE: n *= r.arg.end
    total += n
  return total

def compile_kernel(ast: UOp, outs: tuple[UOp, ...], device: str) -> CompiledKernel:
  key = (ast, device)
  if (ck := kernel_cache.get(key)) is not None: return ck
  variables = tuple(p for p in ast.arg if p.op is Ops.DEFINE_VAR)
  if variables and not device.startswith("CPU"):
    raise NotImplementedError(f"symbolic shapes (Variable {', '.join(v.arg.name for v in variables)}) run on the CPU backend only, not {device}")
  dev = Device[device]
  st = time.perf_counter()
  if DEBUG >= 5:
    for out in outs: print(f"kernel graph before lowering ({out.shape}):\n{out}")
  if device.startswith("CUDA"):
    from codegen.ptx import render_ptx
    k = render_ptx(ast, dev.arch, group=not NOOPT)
    name, src, launch = k.name, k.src, (k.global_size, k.local_size)
    if DEBUG >= 4: print(colored(f"// {name}", "cyan") + "\n" + src)
    program = dev.load(name, src, k.n_params)
    flops, detail = 0, f"grid={k.global_size} block={k.local_size}"
  else:
    from codegen.opt import optimize
    from codegen.linearize import linearize, listing
    from codegen.llvmir import LLVMRenderer
    sink, info = optimize(ast, dev.compiler.vector_bits // 32, dev.threads, bool(NOOPT))
    prog = linearize(sink, info.loop_order)
    if DEBUG >= 6: print(listing(prog))
    name = info.name
    src = LLVMRenderer(dev.compiler.vector_bits).render(name, prog, list(sink.arg), info.thread_range)
    if DEBUG >= 4: print(colored(f"// {name}", "cyan") + "\n" + src)
    program = dev.build(name, src, len(sink.arg) - len(variables), len(variables), info.thread_range is not None)  # compiles in the background
    outer = info.thread_range.arg.end if info.thread_range is not None else 1
    launch, flops = (outer, info.work, info.thread_range is not None), count_flops(sink)
    detail = f"vector={info.vector} threads={'split ' + repr(outer) if info.thread_range is not None else 'inline'}"
  stats["compiles"] += 1
  fused = sorted({u.op.name.lower() for u in UOp(Ops.SINK, src=outs).toposort() if u.op not in MOVEMENT and u.op not in (Ops.BUFFER, Ops.CONST, Ops.SINK, Ops.BIND, Ops.DEFINE_VAR)})
  nbytes = sum(p.arg.size * p.dtype.itemsize for p in ast.arg if p.op is Ops.DEFINE_GLOBAL)
  ck = CompiledKernel(name, program, launch, src, ", ".join(fused), flops, nbytes, variables)
  if DEBUG >= 3: print(f"  {name}: {detail} generated in {(time.perf_counter()-st)*1e3:.1f} ms")
  kernel_cache[key] = ck
  return ck

def make_plan(roots: tuple[UOp, ...], n_inputs: int, device: str) -> ExecPlan:
  if device.startswith("CPU"): roots = tuple(split_large_reduces(list(roots)))  # the PTX path reduces in thread groups
  items = create_schedule(list(roots), multi_output=not device.startswith("CUDA"))  # the PTX path stores one output
  slot: dict[UOp, int] = {}
  new_bufs: list[tuple[int, DType]] = []
  def slot_for(u: UOp) -> int:
    if u.op is Ops.BUFFER: return u.arg.k
    if u not in slot:
      slot[u] = n_inputs + len(new_bufs)
      new_bufs.append((u.size, u.dtype))
    return slot[u]
  kernels = []
  for it in items:
    ck = BufferCopy() if it.ast is None else compile_kernel(it.ast, it.outs, device)
    kernels.append((ck, tuple(slot_for(o) for o in it.outs) + tuple(slot_for(i) for i in it.inputs)))
  if device.startswith("CPU"):
    from runtime.cpu import Pending
    for ck, _ in kernels:  # wait for the kernels compiling in the background
      if isinstance(ck, CompiledKernel) and isinstance(ck.program, Pending):
        try: ck.program = ck.program.get()
        except BaseException:  # a failed (or interrupted) compile is not cached: the next realize compiles again
          for key in [k for k, v in kernel_cache.items() if v is ck]: del kernel_cache[key]
          raise
        if DEBUG >= 3: print(f"  {ck.name}: LLVM compile and load {ck.program.build_s*1e3:.1f} ms")
  outputs = [None if is_view_of_buffer(r) else slot_for(r) for r in roots]
  saved = [(o, slot[o]) for it in items for o in it.outs if o not in roots and o in slot]
  batch = native_batch(kernels, Device[device]) if kernels else None
  return ExecPlan(n_inputs, new_bufs, kernels, outputs, saved, batch)

def new_buffers(plan: ExecPlan, device: str, var_vals: dict[UOp, int]) -> list[Buffer]:
  return [Buffer(device, size if type(size) is int else sym_eval(size, var_vals), dt) for size, dt in plan.new_bufs]

def run_plan(plan: ExecPlan, inputs: list[Buffer], device: str, var_vals: dict[UOp, int]) -> list[Buffer]:
  bufs = inputs + new_buffers(plan, device, var_vals)
  if plan.batch is not None and DEBUG.value < 2 and plan.batch.run(bufs): return bufs
  dev = Device[device]  # DEBUG>=2 (a timing line per kernel), Variables, no native workers, or they are busy
  for ck, slots in plan.kernels: run_kernel(ck, [bufs[s] for s in slots], dev, var_vals)
  return bufs

def run_kernel(ck: CompiledKernel | BufferCopy, bufs: list[Buffer], dev, var_vals: dict[UOp, int] | None = None) -> None:
  """Run one kernel (or host copy) on its buffers, output first, and the values of its Variables; counts it, and
  times it at DEBUG>=2."""
  if isinstance(ck, BufferCopy):  # across devices: one transfer when either side is host memory
    dst, src = bufs
    if not dst.nbytes: return
    if dst.device.startswith("CPU"): src.mem.copyout(dst.ptr, dst.nbytes)
    elif src.device.startswith("CPU"): dst.mem.copyin(src.ptr, dst.nbytes)
    else: dst.copyin(src.numpy())
    return
  if (timed := DEBUG.value >= 2): st = time.perf_counter()  # .value: a knob's __ge__ is a Python call per kernel
  flops, nbytes = ck.flops, ck.nbytes
  if ck.variables:
    vals = [var_vals[v] for v in ck.variables]
    dev.run(ck.program, [b.ptr for b in bufs] + vals, *(sym_eval(x, var_vals) for x in ck.launch))
    flops, nbytes = sym_eval(flops, var_vals), sym_eval(nbytes, var_vals)
  else: dev.run(ck.program, [b.ptr for b in bufs], *ck.launch)
  GlobalCounters.kernel_count += 1
  GlobalCounters.global_ops += flops
  GlobalCounters.global_mem += nbytes
  if timed:
    dev.synchronize()
    et = time.perf_counter() - st
    GlobalCounters.time_sum_s += et
    print(f"{colored(f'k{GlobalCounters.kernel_count:<4}', 'green')} {ck.name:<24} fused: {ck.ops:<32} {et*1e3:8.3f} ms "
          f"{flops/et*1e-9:8.2f} GFLOP/s {nbytes/et*1e-9:8.2f} GB/s")

def lookup_plan(norm: tuple[UOp, ...], n_inputs: int, device: str) -> tuple[ExecPlan, bool]:
  """The plan for a normalised graph from the plan cache, built on a miss; and whether it was a hit."""
  if (plan := plan_cache.get((norm, device))) is not None:
    stats["plan_hits"] += 1
    return plan, True
  plan = plan_cache[(norm, device)] = make_plan(norm, n_inputs, device)
  stats["plans"] += 1
  return plan, False

def plan_for(roots: list[UOp], device: str) -> tuple[ExecPlan, list[Buffer], dict[UOp, int]]:
  """The execution plan computing roots on device (from the plan cache when the graph was seen), its inputs, and the
  values of the Variables it uses."""
  norm, inputs, _, var_vals = normalize(roots)
  return lookup_plan(norm, len(inputs), device)[0], inputs, var_vals

def realize_uops(roots: list[UOp], device: str) -> list[UOp]:
  """Compute every root on `device`; returns for each the UOp to use from now on (a view of a realized buffer)."""
  if not roots: return []
  norm, inputs, memo, var_vals = normalize(roots)
  plan, hit = lookup_plan(norm, len(inputs), device)
  if DEBUG.value >= 1: print(f"realize on {device}: {len(plan.kernels)} kernel{'s' if len(plan.kernels) != 1 else ''}{' (plan cache hit)' if hit else ''}")
  bufs = run_plan(plan, inputs, device, var_vals)
  if recording is not None:
    from tinygrad.engine.jit import RecordedRun
    recording.runs.append(RecordedRun(plan, device, inputs, bufs[len(inputs):], var_vals))
  if plan.saved:
    # intermediate kernel outputs stay attached to their nodes while those live, so a later graph through them (the
    # optimizer step after loss.realize() re-reading the forward pass) reads them. test_step_after_loss_reuses_forward
    slot_of = dict(plan.saved)
    for u, nu in memo.items():
      if (s := slot_of.get(nu)) is not None and u.realized is None: u.realized = buffer_uop(bufs[s], u.shape)
  out: list[UOp | None] = [None] * len(roots)
  for i, (r, nr, s) in enumerate(zip(roots, norm, plan.outputs)):
    if s is None: continue
    out[i] = v = buffer_uop(bufs[s], r.shape)
    # a graph of constants and IOTA only (normalize left it unchanged) stays recomputable: later graphs that use it
    # (a shared CONST, an arange feeding a one-hot gather) keep folding it. test_gather_of_computed_index_is_one_load
    if nr is not r: r.realized = v
  # a view of a buffer: of an input, or of a kernel's output (saved above, or another root). test_view_root_before_its_base
  return [resolve(r) if v is None else v for r, v in zip(roots, out)]

def buffer_uop(buf: Buffer, shape: tuple) -> UOp:
  """The Tensor-level node of a realized buffer viewed with `shape` (a reshape unless it is the buffer's own (size,);
  a symbolic shape is always a reshape, so it keeps its Variables). test_one_dim_symbolic_result_keeps_its_shape"""
  b = UOp.unique(Ops.BUFFER, buf.dtype, (), BufferRef(buf.size, buf.device, buf))
  return b if shape == (buf.size,) else UOp(Ops.RESHAPE, buf.dtype, (b,), shape)
