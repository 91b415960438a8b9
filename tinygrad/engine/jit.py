"""TinyJit: run a function twice normally, record the execution plans its second call runs, then replay them.

A replay skips the Python work of the function (building graphs, differentiating, looking up plans) and runs the
recorded plans directly with the new input buffers. Three kinds of buffer appear in a recording:
  * the buffers of the Tensor arguments: replaced by the new arguments' buffers;
  * state: the buffer a tensor held before the function replaced or assigned it (parameters, optimizer moments,
    BatchNorm running statistics, the random-number key): replaced by the buffer that tensor holds at replay time,
    and the tensor is pointed at the new value afterwards;
  * everything else the function read (weights it did not change, constants it built): read as recorded.
Buffers the recorded plans produce are allocated fresh on every replay, so outputs of earlier calls stay valid.
Symbolic shapes: a bound Variable among the arguments (or in a Tensor argument's shape) is keyed by the Variable, not
its value; a replay passes the new values to the kernels, sizes the buffers that depend on them, and shapes the
returned tensors with them.
"""
from __future__ import annotations
import functools, gc, weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar
from tinygrad.device import Buffer, Device
from tinygrad.helpers import DEBUG
from tinygrad import uop as _uop
from tinygrad.engine import realize as _realize
from tinygrad.engine.realize import ExecPlan, NativeBatch, native_batch, run_kernel, buffer_uop
from tinygrad.tensor import Tensor, _PENDING, _resolved, _is_buffer  # tinygrad/__init__ imports tensor before this module
from tinygrad.uop import UOp, Ops, unbind, sym_eval

R = TypeVar("R")

@dataclass
class RecordedRun:
  plan: ExecPlan
  device: str
  inputs: list[Buffer]      # the buffers the plan read when it was recorded
  made: list[Buffer]        # the buffers it allocated (its outputs and intermediates)
  var_vals: dict = field(default_factory=dict)  # the Variables' values it ran with

@dataclass
class Recording:
  """What one TinyJit call did, as plans and buffer roles; filled by realize_uops and Tensor state updates."""
  runs: list[RecordedRun] = field(default_factory=list)
  state: dict = field(default_factory=dict)   # Tensor -> its UOp before the first update during the call
  def note_state(self, t) -> None:
    if t not in self.state: self.state[t] = t.uop

@dataclass
class _Spec:
  """Shape (Variables unbound), dtype and device of one Tensor argument."""
  shape: tuple
  dtype: Any
  device: str
  def describe(self) -> str: return f"shape {self.shape} {self.dtype} on {self.device}"

@dataclass
class _Captured:
  """A recording flattened into one kernel list over a table of buffer slots: slots [0, len(specs)) are the Tensor
  arguments; state slots are read from their tensors; `fresh` slots (returned values and new state) are allocated
  on every replay; every other slot keeps the recorded buffer (a constant, or an intermediate reused each replay)."""
  specs: list[_Spec]
  table: list[Buffer]
  fresh: list[int]
  state_in: list[tuple[Any, int]]                      # (tensor, slot of the buffer it held when recorded)
  state_out: list[tuple[Any, int, tuple[int, ...]]]    # (tensor, slot of its new value, shape)
  watched: list[tuple[Any, int]]                       # (weakref to a tensor holding a read-only slot's buffer, slot)
  kernels: list[tuple[Any, tuple[int, ...], Any]]      # (CompiledKernel or BufferCopy, slots output first, device)
  outputs: Any                                         # the return value with each Tensor replaced by a _Slot
  var_vals: dict                                       # the Variables' values when recorded (those not in the arguments stay)
  sym_sizes: dict[int, UOp]                            # slot -> its size in terms of Variables (allocated on every replay)
  batch: NativeBatch | None = None                     # every kernel in one native call, where they can be

@dataclass(frozen=True)
class _Slot:
  """A returned Tensor in a recording: the table slot of the buffer holding it, and its shape (Variables unbound)."""
  slot: int
  shape: tuple

def _whole_buffer(u) -> Buffer | None:
  """The buffer u stands for when u is a whole realized buffer (or a reshape of one), else None."""
  u = _resolved(u)
  return (u if u.src == () else u.src[0]).arg.buf if _is_buffer(u) else None

def _buffer_of(t) -> Buffer:
  if (b := _whole_buffer(t.uop)) is None: raise RuntimeError(f"TinyJit: a tensor of shape {t.shape} is not a realized buffer")
  return b

def _tensor_args(args: tuple, kwargs: dict) -> tuple[list, list, list, dict]:
  """The Tensor arguments in call order, their shapes with Variables unbound, everything else (which becomes part of
  the cache key: a bound Variable by the Variable alone), and the values of the bound Variables among the arguments
  and in the Tensors' shapes."""
  tensors, shapes, other, var_vals = [], [], [], {}
  for k, v in list(enumerate(args)) + sorted(kwargs.items()):
    if isinstance(v, Tensor):
      tensors.append(v)
      shapes.append(unbind(v.shape, var_vals) if _uop.symbolic_in_use else v.shape)
    else: other.append((k, repr(unbind(v, var_vals) if isinstance(v, UOp) and v.op is Ops.BIND else v)))
  return tensors, shapes, other, var_vals

def _rebind(shape: tuple, var_vals: dict) -> tuple:
  """An unbound shape with each Variable bound to its value in var_vals."""
  if not var_vals: return shape  # no Variables in this recording: the shape is all ints
  return tuple(d.substitute({v: v.bind(x) for v, x in var_vals.items()}) if isinstance(d, UOp) else d for d in shape)

def _map_leaves(x: Any, leaf: type, fn: Callable) -> Any:
  """x with every instance of `leaf` inside (nested lists, tuples, dicts) replaced by fn(it)."""
  if isinstance(x, leaf): return fn(x)
  if isinstance(x, (list, tuple)): return type(x)(_map_leaves(v, leaf, fn) for v in x)
  if isinstance(x, dict): return {k: _map_leaves(v, leaf, fn) for k, v in x.items()}
  return x

def _flat_leaves(x: Any, leaf: type) -> list:
  out: list = []
  _map_leaves(x, leaf, out.append)
  return out

class TinyJit(Generic[R]):
  """Decorate a function whose Tensor inputs keep their shapes: call 1 runs it, call 2 records it, calls 3+ replay.

  Non-Tensor arguments are part of the key: a call with different ones runs and records separately. A call whose
  Tensor arguments differ in shape, dtype or device from the recorded ones raises RuntimeError.
  """
  def __init__(self, fn: Callable[..., R]):
    self.fn = fn
    self.calls: dict[tuple, int] = {}
    self.captured: dict[tuple, _Captured] = {}
    functools.update_wrapper(self, fn)

  def reset(self) -> None:
    self.calls.clear()
    self.captured.clear()

  def __get__(self, obj, objtype=None):  # decorating a method: bind the instance as the first argument
    return self if obj is None else functools.partial(self.__call__, obj)

  def __call__(self, *args, **kwargs) -> R:
    tensors, shapes, other, var_vals = _tensor_args(args, kwargs)
    key = tuple(other)
    n = self.calls[key] = self.calls.get(key, 0) + 1
    bufs = _contiguous_inputs(tensors)
    if (cap := self.captured.get(key)) is not None: return self._replay(cap, tensors, shapes, bufs, n, var_vals)
    if n == 1:
      out = self.fn(*args, **kwargs)
      Tensor.realize_all(_flat_leaves(out, Tensor))
      return out
    return self._record(key, tensors, shapes, args, kwargs)

  def _record(self, key: tuple, tensors: list, shapes: list, args: tuple, kwargs: dict) -> R:
    if _realize.recording is not None: raise RuntimeError("TinyJit: a jitted function called another jitted function while it was being recorded")
    rec = _realize.recording = Recording()
    try:
      out = self.fn(*args, **kwargs)
      Tensor.realize_all(_flat_leaves(out, Tensor) + list(rec.state) + _PENDING)
      for t in _flat_leaves(out, Tensor):  # a returned view (x.topk(2)[1], y.T) is copied into a buffer of its own
        if (b := _whole_buffer(t.uop)) is None or b.size != sym_eval(t.numel()):
          t.uop = t.contiguous().uop  # not replace(): the copy is an output, not state the function updates
          t.realize()
    finally: _realize.recording = None
    arg_bufs = [_buffer_of(t) for t in tensors]
    slot: dict[Buffer, int] = {}
    def slot_of(b: Buffer) -> int: return slot.setdefault(b, len(slot))
    for b in arg_bufs: slot_of(b)
    kernels = [(ck, tuple(slot_of(b) for b in [(run.inputs + run.made)[i] for i in slots]), Device[run.device])
               for run in rec.runs for ck, slots in run.plan.kernels]
    made = {b for run in rec.runs for b in run.made}
    var_vals = {v: x for run in rec.runs for v, x in run.var_vals.items()}
    sym_sizes = {slot_of(b): size for run in rec.runs for b, (size, _) in zip(run.made, run.plan.new_bufs) if isinstance(size, UOp)}
    state_in, state_out = [], []
    for t, old in rec.state.items():
      if (old_buf := _whole_buffer(old)) is None:
        raise RuntimeError(f"TinyJit: a tensor of shape {t.shape} was updated inside the jitted function but was not realized "
                           "before the call; realize it (e.g. with .realize()) before the first call")
      state_in.append((t, slot_of(old_buf)))
      if (b := _buffer_of(t)) in made: state_out.append((t, slot_of(b), unbind(t.shape, {})))
    def as_slot(t):
      b = _buffer_of(t)
      if b not in made and b not in arg_bufs:
        raise RuntimeError(f"TinyJit: the jitted function returned a tensor of shape {t.shape} that it did not compute; return only computed values")
      return _Slot(slot_of(b), unbind(t.shape, {}))
    outputs = _map_leaves(out, Tensor, as_slot)
    fresh = sorted(({s for _, s, _ in state_out} | {x.slot for x in _flat_leaves(outputs, _Slot)} | set(sym_sizes)) - set(range(len(tensors))))
    cap = _Captured([_Spec(shape, t.dtype, t.device) for t, shape in zip(tensors, shapes)], list(slot), fresh, state_in, state_out,
                    _watch(slot, made, arg_bufs, {t for t, _ in state_in}), kernels, outputs, var_vals, sym_sizes)
    if len(devs := {dev for _, _, dev in kernels}) == 1: cap.batch = native_batch([(ck, slots) for ck, slots, _ in kernels], devs.pop())
    self.captured[key] = cap
    if DEBUG >= 1: print(f"TinyJit: recorded {len(kernels)} kernels in {len(rec.runs)} realizes of {getattr(self.fn, '__name__', 'fn')}")
    return out

  def _replay(self, cap: _Captured, tensors: list, shapes: list, bufs: list[Buffer], n: int, arg_vals: dict) -> R:
    if len(tensors) != len(cap.specs):
      raise RuntimeError(f"TinyJit: call {n} got {len(tensors)} Tensor arguments; the captured kernels expect {len(cap.specs)}")
    for i, (t, shape, s) in enumerate(zip(tensors, shapes, cap.specs)):
      if (shape, t.dtype, t.device) != (s.shape, s.dtype, s.device):
        raise RuntimeError(f"TinyJit: call {n} got input {i} of {_Spec(t.shape, t.dtype, t.device).describe()}; the captured kernels "
                           f"expect {s.describe()}. Make a new TinyJit per shape.")
    var_vals = {**cap.var_vals, **arg_vals}
    table = cap.table.copy()
    table[:len(bufs)] = bufs
    for t, i in cap.state_in: table[i] = _buffer_of(t)
    for ref, i in cap.watched:  # a tensor the function only reads may have been assigned a new value since
      if (t := ref()) is not None and (b := _whole_buffer(t.uop)) is not None and b.size == table[i].size: table[i] = b
    for i in cap.fresh:
      size = sym_eval(cap.sym_sizes[i], var_vals) if i in cap.sym_sizes else table[i].size
      table[i] = Buffer(table[i].device, size, table[i].dtype)
    if cap.batch is None or DEBUG.value >= 2 or not cap.batch.run(table):
      # DEBUG>=2 (a timing line per kernel), no native workers, or another thread using them
      for ck, slots, dev in cap.kernels: run_kernel(ck, [table[i] for i in slots], dev, var_vals)
    for t, i, shape in cap.state_out: t.uop = buffer_uop(table[i], _rebind(shape, var_vals))
    return _map_leaves(cap.outputs, _Slot, lambda x: Tensor._wrap(buffer_uop(table[x.slot], _rebind(x.shape, var_vals)), table[x.slot].device))

def _watch(slot: dict[Buffer, int], made: set[Buffer], args: list[Buffer], state: set) -> list[tuple[Any, int]]:
  """Every live Tensor (found once, at record time) that holds a buffer the recording only reads: replays read its
  buffer at call time, so `opt.lr.assign(...)` between calls is seen (assign makes a new buffer)."""
  out = []
  for t in gc.get_objects():
    if type(t) is Tensor and t not in state and (b := _whole_buffer(t.uop)) is not None and b in slot and b not in made and b not in args:
      out.append((weakref.ref(t), slot[b]))
  return out

def _contiguous_inputs(tensors: list) -> list[Buffer]:
  """Realize the Tensor arguments as whole buffers (a strided view is copied once), so replays can swap buffers;
  returns those buffers."""
  bufs = [_whole_buffer(t.uop) for t in tensors]
  if _PENDING or any(b is None or b.size != sym_eval(t.numel()) for t, b in zip(tensors, bufs)):  # also realizes pending state
    Tensor.realize_all([t for t, b in zip(tensors, bufs) if b is None])
    for t in tensors:
      if (b := _whole_buffer(t.uop)) is None or b.size != sym_eval(t.numel()): t.replace(t.contiguous()).realize()
    bufs = [_buffer_of(t) for t in tensors]
  return bufs
