"""LLVM IR renderer: a linearized kernel (Block tree) -> LLVM IR text with opaque pointers and explicit vector types.

Accumulators live in allocas (mem2reg turns them into phis); loops are rendered with a phi counter.
Float semantics follow numpy except for fused multiply-add: `contract` on fmul/fadd lets LLVM fuse a*b+c into one FMA
(one rounding instead of two: never less accurate, and twice the multiply-add throughput in matmul and conv); the only
other fast-math flag is `reassoc` on the final horizontal sum of a vector accumulator. NaN-propagating llvm.maximum,
ordered/unordered compares as numpy's <, !=. A LOAD with a third source (a lane mask) is `llvm.masked.load`, a STORE
with a fourth `llvm.masked.store`; a LOAD with a Strided arg reads the span of elements its lanes pick and shuffles
them out (lanes s apart, or reading each element twice).
"""
from __future__ import annotations
import math, struct
from tinygrad.uop import UOp, Ops, affine
from tinygrad.dtype import DType, dtypes
from codegen.linearize import Block
from codegen.lower import reduce_identity
from codegen.opt import Strided

SCALAR = {dtypes.bool: "i1", dtypes.int8: "i8", dtypes.uint8: "i8", dtypes.int16: "i16", dtypes.uint16: "i16",
          dtypes.int32: "i32", dtypes.uint32: "i32", dtypes.int64: "i64", dtypes.uint64: "i64", dtypes.float16: "half",
          dtypes.bfloat16: "bfloat", dtypes.float32: "float", dtypes.float64: "double"}
MANGLE = {"half": "f16", "bfloat": "bf16", "float": "f32", "double": "f64"}

def ltype(dt: DType, mem: bool = False) -> str:
  s = "i8" if mem and dt.scalar == dtypes.bool else SCALAR[dt.scalar]
  return s if dt.count == 1 else f"<{dt.count} x {s}>"

def mangle(dt: DType, mem: bool = False) -> str:
  s = ltype(dt.scalar, mem)
  s = MANGLE.get(s, s)
  return s if dt.count == 1 else f"v{dt.count}{s}"

def const_literal(val, dt: DType) -> str:
  dt = dt.scalar
  if dt == dtypes.bool: return "true" if val else "false"
  if dtypes.is_int(dt): return str(int(val))
  if dt == dtypes.float16: return "0xH%04X" % struct.unpack("<H", struct.pack("<e", val))[0]
  if dt == dtypes.bfloat16: return "0xR%04X" % (struct.unpack("<I", struct.pack("<f", val))[0] >> 16)
  if dt == dtypes.float32: val = struct.unpack("<f", struct.pack("<f", val))[0] if math.isfinite(val) else val
  return "0x%016X" % struct.unpack("<Q", struct.pack("<d", val))[0]

STREAM_BYTES = 32 << 20  # outputs at least this large are written with non-temporal stores (larger than the caches)

def _blocks(b: Block) -> list[Block]:
  return [b] + [x for it in b.items if isinstance(it, Block) for x in _blocks(it)]

def _i32_divmod(u: UOp) -> bool:
  c, x = u.src[1], u.src[0]
  return dtypes.is_int(u.dtype) and c.op is Ops.CONST and c.arg > 0 and -2 ** 31 <= x.vmin and x.vmax < 2 ** 31

# Reduce loops of constant size are unrolled here: LLVM runs no loop passes on kernels (runtime.llvm.KERNEL_PASSES). A
# loop is unrolled completely when its copies (with any loops inside them, also unrolled) take at most UNROLL_LINES
# lines of IR: a 3x3 convolution window, ten classes. An innermost loop is otherwise unrolled by 4 or 2 within
# PARTIAL_LINES: a row sum's one accumulator chain, a weight gradient's loop over a batch of 128 (each ~5% slower as a
# loop). test_reduce_loops_are_unrolled_in_the_ir
# A loop updating fewer than ACC_CHAINS accumulators gives its copies separate ones (copy k adds into the k % n-th),
# combined after the loop: one accumulator is one chain of dependent adds (4 cycles each), which held a full sum to
# ~100 GB/s from the caches. A register-tiled matmul's dozen accumulators are left alone.
# test_one_accumulator_is_split_across_unrolled_copies
UNROLL_LINES, PARTIAL_LINES, ACC_CHAINS = 640, 300, 4

class LLVMRenderer:
  def __init__(self, vector_bits: int = 512): self.vector_bits = vector_bits

  def render(self, name: str, prog: Block, params: list[UOp], thread_range: UOp | None) -> str:
    self.lines: list[str] = []
    self.decls: set[str] = set()
    self.names: dict[UOp, str] = {}
    self.acc_of: dict[UOp, str] = {}
    self.n = 0
    self.allocas: list[str] = []
    self.cur_block = "body"
    self.thread_range = thread_range
    self.nontemporal = self.nt_stores = False  # any !nontemporal access (the metadata node); any such store (a fence)
    self.loops: list[UOp] = []  # the RANGEs of the loops around the node being rendered, outermost first
    self.loaded = {u.src[0] for b in _blocks(prog) for u in b.items if isinstance(u, UOp) and u.op is Ops.LOAD}
    bufs, variables = [p for p in params if p.op is Ops.DEFINE_GLOBAL], [p for p in params if p.op is Ops.DEFINE_VAR]
    for p in bufs: self.names[p] = f"%data{p.arg.index}"
    for i, v in enumerate(variables): self.names[v] = f"%var{i}"
    self.block(prog)
    args = ", ".join([f"ptr noalias align 16 %data{p.arg.index}" for p in bufs] + [f"i64 %var{i}" for i in range(len(variables))]) + ", i64 %start, i64 %end"
    # non-temporal stores are weakly ordered: a fence makes them visible before the kernel returns to its caller
    end = ["  fence seq_cst", "  ret void"] if self.nt_stores else ["  ret void"]
    body = "\n".join(["entry:"] + self.allocas + ["  br label %body", "body:"] + self.lines + end)
    # noinline: the _chunks entry calls it, and an inlined copy would be compiled twice
    attrs = f'attributes #0 = {{ nounwind noinline "min-legal-vector-width"="{self.vector_bits}" "prefer-vector-width"="{self.vector_bits}" }}'
    meta = "\n!0 = !{i32 1}" if self.nontemporal else ""
    chunks = self.chunk_entry(name, len(bufs), len(variables))
    return "\n".join(sorted(self.decls)) + f"\n\ndefine void @{name}({args}) #0 {{\n{body}\n}}\n{chunks}{attrs}{meta}\n"

  @staticmethod
  def chunk_entry(name: str, nbufs: int, nvars: int) -> str:
    """`{name}_chunks(ptr args, i64 start, i64 end)`: the kernel behind one signature for every kernel, its buffers and
    Variables read from an array of 64-bit words; runtime.workers calls a threaded kernel's chunks, and a TinyJit
    replay's kernels, through it."""
    loads = [f"  %p{i} = getelementptr i64, ptr %args, i64 {i}\n  %a{i} = load {'ptr' if i < nbufs else 'i64'}, ptr %p{i}" for i in range(nbufs + nvars)]
    call = ", ".join([f"ptr %a{i}" for i in range(nbufs)] + [f"i64 %a{i}" for i in range(nbufs, nbufs + nvars)] + ["i64 %start", "i64 %end"])
    return f"\ndefine void @{name}_chunks(ptr %args, i64 %start, i64 %end) nounwind {{\n" + "\n".join(loads) + f"\n  call void @{name}({call})\n  ret void\n}}\n"

  def tmp(self) -> str:
    self.n += 1
    return f"%v{self.n}"
  def emit(self, s: str) -> None: self.lines.append("  " + s)
  def declare(self, ret: str, fn: str, args: list[str]) -> str:
    self.decls.add(f"declare {ret} @{fn}({', '.join(args)})")
    return f"@{fn}"

  # ---- values
  def val(self, u: UOp, as_dtype: DType | None = None) -> str:
    """The operand for u; a scalar is broadcast when a vector of as_dtype is wanted."""
    if u.op is Ops.CONST: s = const_literal(u.arg, u.dtype)
    elif u.op is Ops.VECTORIZE:  # every lane the same value (a broadcast)
      if as_dtype is not None and as_dtype.count == 1: return self.val(u.src[0])
      x = u.src[0]
      return f"splat ({ltype(x.dtype)} {self.val(x)})" if x.op is Ops.CONST else self.val_broadcast(self.val(x), x.dtype, u.dtype.count)
    elif u.op is Ops.LANE: s = "<" + ", ".join(f"i64 {i}" for i in range(u.arg)) + ">"
    else: s = self.names[u]
    if as_dtype is not None and as_dtype.count > 1 and u.dtype.count == 1 and u.op is not Ops.LANE:
      return f"splat ({ltype(u.dtype)} {s})" if u.op is Ops.CONST else self.val_broadcast(s, u.dtype, as_dtype.count)
    return s

  def block(self, b: Block) -> None:
    for it in b.items:
      if isinstance(it, Block): self.loop(it)
      else: self.node(it)

  def loop(self, b: Block) -> None:
    r = b.rng
    unrollable = r is not self.thread_range and not r.src and r.arg.kind == "reduce"
    if unrollable and r.arg.end * len(b.items) <= UNROLL_LINES:  # render the first copy; keep it if all copies are short
      mark, block_name = len(self.lines), self.cur_block
      self.names[r] = "0"
      self.block(b)
      copy = self.lines[mark:]
      if len(copy) * r.arg.end <= UNROLL_LINES and all(ln.startswith(" ") for ln in copy):  # no label: no loop inside
        chains, init = self.split_accumulators(b, r.arg.end)
        self.lines += init
        for k in range(1, r.arg.end):
          self.names[r] = str(k)
          self.block_with_accumulators(b, chains, k)
        self.combine_accumulators(chains)
        return
      del self.lines[mark:]
      self.cur_block = block_name
    i = r.arg.id
    start, end = ("%start", "%end") if r is self.thread_range else ("0", self.val(r.src[0]) if r.src else str(r.arg.end))
    pre, hdr, ext = self.cur_block, f"loop{i}", f"exit{i}"
    init_at = len(self.lines)
    if r is self.thread_range or r.src:  # an empty [start, end) (a symbolic size can be 0) must not run the body once
      guard = self.tmp()
      self.emit(f"{guard} = icmp slt i64 {start}, {end}")
      self.emit(f"br i1 {guard}, label %{hdr}, label %{ext}")
    else: self.emit(f"br label %{hdr}")
    self.lines.append(f"{hdr}:")
    name = f"%r{i}"
    self.names[r] = name
    phi_at = len(self.lines)
    self.lines.append("")  # the phi, filled in once the latch is known
    self.cur_block = hdr
    mark = len(self.lines)
    self.loops.append(r)
    self.block(b)
    step = 1
    if unrollable and not any(isinstance(it, Block) for it in b.items):
      step = next((f for f in (4, 2) if r.arg.end % f == 0 and r.arg.end >= 2 * f and (len(self.lines) - mark) * f <= PARTIAL_LINES), 1)
    chains, init = self.split_accumulators(b, step)
    for k in range(1, step):  # copy k at r + k; the loop steps by `step`
      self.names[r] = self.tmp()
      self.emit(f"{self.names[r]} = add nuw nsw i64 {name}, {k}")
      self.block_with_accumulators(b, chains, k)
    nxt, cond = self.tmp(), self.tmp()
    self.emit(f"{nxt} = add nuw nsw i64 {name}, {step}")
    self.emit(f"{cond} = icmp slt i64 {nxt}, {end}")
    self.emit(f"br i1 {cond}, label %{hdr}, label %{ext}")
    self.lines[phi_at] = f"  {name} = phi i64 [{start}, %{pre}], [{nxt}, %{self.cur_block}]"
    self.lines[init_at:init_at] = init  # the extra accumulators start before the loop
    self.loops.pop()
    self.lines.append(f"{ext}:")
    self.cur_block = ext
    self.combine_accumulators(chains)

  def split_accumulators(self, b: Block, copies: int) -> tuple[list[tuple[UOp, list[str]]], list[str]]:
    """For each accumulator defined outside loop b that its body updates, the allocas its `copies` copies add into
    (the first is its own), when there are fewer than ACC_CHAINS of them; and the lines starting the new ones."""
    accs = list(dict.fromkeys(u.src[0] for u in b.items if isinstance(u, UOp) and u.op is Ops.ACCUMULATE and u.src[0] not in b.items))
    n = min(copies, ACC_CHAINS // len(accs)) if accs else 1
    if n < 2: return [], []
    chains, init = [], []
    for acc in accs:
      names = [self.names[acc]]
      for _ in range(1, n):
        a, line = self.accumulator(acc)
        names.append(a)
        init.append(line)
      chains.append((acc, names))
    return chains, init

  def accumulator(self, acc: UOp) -> tuple[str, str]:
    """A new alloca for the DEFINE_ACC acc, and the line starting it at its reduce's identity."""
    a = f"%acc{len(self.allocas)}"
    self.allocas.append(f"  {a} = alloca {ltype(acc.dtype)}, align 64")
    ident = UOp.const(acc.dtype, reduce_identity(acc.arg.arg, acc.dtype.scalar))
    return a, f"  store {ltype(acc.dtype)} {self.val(ident)}, ptr {a}"

  def block_with_accumulators(self, b: Block, chains: list[tuple[UOp, list[str]]], k: int) -> None:
    """Copy k of loop b's body, its ACCUMULATEs adding into the (k % n)-th of their accumulators."""
    for acc, names in chains: self.names[acc] = names[k % len(names)]
    self.block(b)
    for acc, names in chains: self.names[acc] = names[0]

  def combine_accumulators(self, chains: list[tuple[UOp, list[str]]]) -> None:
    for acc, names in chains:
      t = ltype(acc.dtype)
      parts = []
      for a in names:
        parts.append(self.tmp())
        self.emit(f"{parts[-1]} = load {t}, ptr {a}")
      while len(parts) > 1:  # pairwise
        parts = [self.binary(acc.arg.arg, acc.dtype, x, y, acc.dtype) for x, y in zip(parts[::2], parts[1::2])] + parts[len(parts) // 2 * 2:]
      self.emit(f"store {t} {parts[0]}, ptr {names[0]}")

  @staticmethod
  def identity_mask(v: UOp, op: Ops) -> UOp | None:
    """m where v is where(m, x, the reduce's identity): a vector loop's invalid lanes adding nothing (codegen.opt.vectorize)."""
    if v.op is not Ops.WHERE or v.src[0].dtype.count != v.dtype.count: return None
    e = v.src[2].src[0] if v.src[2].op is Ops.VECTORIZE else v.src[2]
    return v.src[0] if e.op is Ops.CONST and e.arg == reduce_identity(op, e.dtype.scalar) else None

  def gep(self, buf: UOp, idx: str, idx_dtype: DType, inbounds: bool = True) -> str:
    p = self.tmp()
    self.emit(f"{p} = getelementptr {'inbounds ' if inbounds else ''}{ltype(buf.dtype, mem=True)}, ptr {self.val(buf)}, {ltype(idx_dtype)} {idx}")
    return p

  def node(self, u: UOp) -> None:
    op = u.op
    if op is Ops.LOAD: self.names[u] = self.load(u)
    elif op is Ops.STORE: self.store(u)
    elif op is Ops.DEFINE_ACC:
      a, init = self.accumulator(u)
      self.names[u] = self.acc_of[u.arg] = a
      self.lines.append(init)
    elif op is Ops.ACCUMULATE:
      acc, v = u.src
      t, cur = ltype(acc.dtype), self.tmp()
      self.emit(f"{cur} = load {t}, ptr {self.names[acc]}")
      if (mask := self.identity_mask(v, u.arg.arg)) is not None:
        # acc + where(m, x, 0) as where(m, acc + x, acc): the same values (the sum never holds -0.0), and one masked
        # FMA where fmul, select and fadd were three. test_masked_reduce_lanes_accumulate_by_masked_fma
        new, out = self.binary(u.arg.arg, acc.dtype, cur, self.val(v.src[1], acc.dtype), acc.dtype), self.tmp()
        self.emit(f"{out} = select {ltype(mask.dtype)} {self.val(mask)}, {t} {new}, {t} {cur}")
        new = out
      else: new = self.binary(u.arg.arg, acc.dtype, cur, self.val(v, acc.dtype), acc.dtype)
      self.emit(f"store {t} {new}, ptr {self.names[acc]}")
    elif op is Ops.REDUCE:
      acc = self.acc_of[u]
      adt = u.src[0].dtype
      cur = self.tmp()
      self.emit(f"{cur} = load {ltype(adt)}, ptr {acc}")
      self.names[u] = self.horizontal(u.arg, adt, cur) if adt.count > u.dtype.count else cur
    else: self.names[u] = self.alu(u)

  def load(self, u: UOp) -> str:
    buf, idx = u.src[:2]
    mt, out = ltype(u.dtype, mem=True), self.tmp()
    if isinstance(u.arg, Strided): out = self.strided_load(u)
    elif len(u.src) == 3 and idx.dtype.count == 1:  # masked (a vector loop's partial last iteration): lanes past the end read nothing
      self.masked_load(out, u.dtype, buf, idx, self.val(u.src[2]))
    elif idx.dtype.count == 1:  # scalar, or a contiguous vector at a scalar base
      p = self.gep(buf, self.val(idx), idx.dtype)
      if self.streamed_load(u):
        self.emit(f"{out} = load {mt}, ptr {p}, align {u.dtype.itemsize}, !nontemporal !0")
        self.nontemporal = True
      else: self.emit(f"{out} = load {mt}, ptr {p}, align {u.dtype.scalar.itemsize}")
    else:  # gather lane by lane; a masked lane reads element 0 (not a masked.gather: slower)  test_transposed_operand_gathers_masked_lanes
      iv, cur = self.val(idx), "poison"
      if len(u.src) == 3:
        safe = self.tmp()
        self.emit(f"{safe} = select {ltype(u.src[2].dtype)} {self.val(u.src[2])}, {ltype(idx.dtype)} {iv}, {ltype(idx.dtype)} zeroinitializer")
        iv = safe
      st = ltype(buf.dtype, mem=True)
      for lane in range(u.dtype.count):
        i, p, x, nxt = self.tmp(), None, self.tmp(), self.tmp()
        self.emit(f"{i} = extractelement {ltype(idx.dtype)} {iv}, i64 {lane}")
        p = self.gep(buf, i, dtypes.index)
        self.emit(f"{x} = load {st}, ptr {p}")
        self.emit(f"{nxt} = insertelement {mt} {cur}, {st} {x}, i64 {lane}")
        cur = nxt
      out = cur
    if u.dtype.scalar == dtypes.bool:
      b = self.tmp()
      self.emit(f"{b} = icmp ne {mt} {out}, {'zeroinitializer' if u.dtype.count > 1 else '0'}")
      return b
    return out

  def masked_load(self, out: str, dt: DType, buf: UOp, idx: UOp, mask: str) -> None:
    mt, n = ltype(dt, mem=True), dt.count
    fn = self.declare(mt, f"llvm.masked.load.{mangle(dt, mem=True)}.p0", ["ptr", f"<{n} x i1>", mt])
    p = self.gep(buf, self.val(idx), idx.dtype, inbounds=False)  # a padded row's base may lie before the buffer
    self.emit(f"{out} = call {mt} {fn}(ptr align {dt.scalar.itemsize} {p}, <{n} x i1> {mask}, {mt} zeroinitializer)")

  def strided_load(self, u: UOp) -> str:
    """Lane l reads base + picks[l]: one masked load of the span from the base, only the elements
    some valid lane picks enabled (so nothing past the last valid lane is touched), and a shuffle. Lanes s apart
    (a stride-2 conv's input), reading each element twice ((LANE + 1) // 2: a stride-2 window's gradient), or two rows
    interleaved."""
    buf, idx = u.src[:2]
    w, picks = u.dtype.count, u.arg.picks
    # the span rounded up to a power of two: a legal vector width, its tail disabled; at least 2, so a load whose lanes
    # all pick one element is a vector too (a <1 x T> would be rendered T). test_all_lanes_picking_one_element_load
    n = max(2, 1 << max(picks).bit_length())
    first = {p: l for l, p in reversed(list(enumerate(picks)))}  # the first lane picking each element
    wide = u.dtype.scalar.vec(n)
    if len(u.src) == 3:  # valid lanes are a prefix: element e is read iff the first lane picking it is valid (index w: false)
      m = self.tmp()
      sel = ", ".join(f"i32 {first.get(e, w)}" for e in range(n))
      self.emit(f"{m} = shufflevector <{w} x i1> {self.val(u.src[2])}, <{w} x i1> zeroinitializer, <{n} x i32> <{sel}>")
    else: m = "<" + ", ".join(f"i1 {'true' if e in first else 'false'}" for e in range(n)) + ">"
    if u.arg.guard:  # and only the elements inside the buffer: 0 <= base + e < size
      vt, at, lo, hi, ok = f"<{n} x i64>", self.tmp(), self.tmp(), self.tmp(), self.tmp()
      self.emit(f"{at} = add {vt} {self.val_broadcast(self.val(idx), idx.dtype, n)}, <{', '.join(f'i64 {e}' for e in range(n))}>")
      self.emit(f"{lo} = icmp sge {vt} {at}, zeroinitializer")
      self.emit(f"{hi} = icmp slt {vt} {at}, splat (i64 {buf.arg.size})")
      self.emit(f"{ok} = and <{n} x i1> {lo}, {hi}")
      m2 = self.tmp()
      self.emit(f"{m2} = and <{n} x i1> {ok}, {m}")
      m = m2
    ld, out = self.tmp(), self.tmp()
    self.masked_load(ld, wide, buf, idx, m)
    self.emit(f"{out} = shufflevector {ltype(wide, mem=True)} {ld}, {ltype(wide, mem=True)} poison, <{w} x i32> <{', '.join(f'i32 {p}' for p in picks)}>")
    return out

  def store(self, u: UOp) -> None:
    buf, idx, v = u.src[:3]
    vdt = buf.dtype.vec(idx.dtype.count) if idx.dtype.count > 1 else buf.dtype.vec(v.dtype.count) if v.dtype.count > 1 else buf.dtype
    val = self.val(v, vdt)
    mt = ltype(vdt, mem=True)
    if vdt.scalar == dtypes.bool:
      z = self.tmp()
      self.emit(f"{z} = zext {ltype(vdt)} {val} to {mt}")
      val = z
    if idx.dtype.count == 1 and len(u.src) == 4:  # masked: lanes past the loop's end write nothing
      fn = self.declare("void", f"llvm.masked.store.{mangle(vdt, mem=True)}.p0", [mt, "ptr", ltype(u.src[3].dtype)])
      p = self.gep(buf, self.val(idx), idx.dtype)
      self.emit(f"call void {fn}({mt} {val}, ptr align {vdt.scalar.itemsize} {p}, {ltype(u.src[3].dtype)} {self.val(u.src[3])})")
      return
    assert len(u.src) == 3, "a masked store is contiguous: vectorize only splits an output loop the store is contiguous in"
    if idx.dtype.count == 1:
      p = self.gep(buf, self.val(idx), idx.dtype)
      if self.streams(u, vdt):
        self.emit(f"store {mt} {val}, ptr {p}, align {vdt.itemsize}, !nontemporal !0")
        self.nontemporal = self.nt_stores = True
      else: self.emit(f"store {mt} {val}, ptr {p}, align {buf.dtype.scalar.itemsize}")
      return
    iv, st = self.val(idx), ltype(buf.dtype, mem=True)
    for lane in range(idx.dtype.count):
      i, x = self.tmp(), self.tmp()
      self.emit(f"{i} = extractelement {ltype(idx.dtype)} {iv}, i64 {lane}")
      self.emit(f"{x} = extractelement {mt} {val}, i64 {lane}")
      p = self.gep(buf, i, dtypes.index)
      self.emit(f"store {st} {x}, ptr {p}")

  def streams(self, u: UOp, vdt: DType) -> bool:
    """A store of whole vector registers into an output far larger than the caches, at an index that is a multiple of
    the vector (buffers are 64-byte aligned): non-temporal, so the line is not first read from memory only to be
    overwritten (write-allocate). Not for a buffer the kernel also reads (softmax's stored values are read back).
    (a*b+c).relu() on 16M floats, with vs without: 6.4 vs 7.6 ms (bench/kernel_ab.py nontemporal).
    test_large_outputs_are_stored_non_temporally"""
    return u.src[0] not in self.loaded and self.whole_vectors_of_large(u.src[0], u.src[1], vdt)

  def streamed_load(self, u: UOp) -> bool:
    """A load of whole vector registers from an input far larger than the caches, each element read once (every loop
    around it moves its index): non-temporal (vmovntdqa), so its lines do not evict what the next kernels and the
    interpreter use. A tiny realize right after a 16M-float sum's partials kernel: 29-66 us instead of 52-75, the kernel
    itself 1-3% slower (bench/kernel_ab.py ntload, alternating call by call; run in blocks of calls it measured up to
    12% faster); a dot product and (a*b+c).relu() stream as fast as before. The whole sum (bench.py --only sum, processes
    alternated): 0.71-0.89x -> 0.98-1.18x torch. test_large_inputs_read_once_are_loaded_non_temporally"""
    if len(u.src) != 2 or isinstance(u.arg, Strided) or not self.loops: return False
    terms, _ = affine(u.src[1])
    return all(r in terms for r in self.loops) and self.whole_vectors_of_large(u.src[0], u.src[1], u.dtype)

  def whole_vectors_of_large(self, buf: UOp, idx: UOp, vdt: DType) -> bool:
    """Is the access whole vector registers at indices that are multiples of the vector (buffers are 64-byte aligned:
    the aligned address a non-temporal access requires), spanning STREAM_BYTES or more of its buffer?"""
    if vdt.itemsize * 8 != self.vector_bits or not isinstance(idx.vmax, int) or (idx.vmax - idx.vmin + vdt.count) * buf.dtype.itemsize < STREAM_BYTES: return False
    terms, const = affine(idx)
    return all(c % vdt.count == 0 for c in terms.values()) and const % vdt.count == 0

  def horizontal(self, op: Ops, dt: DType, v: str) -> str:
    s, out = dt.scalar, self.tmp()
    ty, sty = ltype(dt), ltype(s)
    if dtypes.is_float(s):
      if op is Ops.MAX:
        fn = self.declare(sty, f"llvm.vector.reduce.fmaximum.{mangle(dt)}", [ty])
        self.emit(f"{out} = call {sty} {fn}({ty} {v})")
      else:
        name = {Ops.ADD: "fadd", Ops.MUL: "fmul"}[op]
        fn = self.declare(sty, f"llvm.vector.reduce.{name}.{mangle(dt)}", [sty, ty])
        self.emit(f"{out} = call reassoc {sty} {fn}({sty} {const_literal(reduce_identity(op, s), s)}, {ty} {v})")
      return out
    name = {Ops.ADD: "add", Ops.MUL: "mul"}.get(op) if s != dtypes.bool else {Ops.ADD: "or", Ops.MUL: "and", Ops.MAX: "or"}[op]
    if name is None: name = "umax" if dtypes.is_unsigned(s) else "smax"
    fn = self.declare(sty, f"llvm.vector.reduce.{name}.{mangle(dt)}", [ty])
    self.emit(f"{out} = call {sty} {fn}({ty} {v})")
    return out

  def call(self, fn: str, dt: DType, args: list[str], flags: str = "") -> str:
    ty, out = ltype(dt), self.tmp()
    f = self.declare(ty, f"llvm.{fn}.{mangle(dt)}", [ty] * len(args))
    self.emit(f"{out} = call {flags}{ty} {f}({', '.join(f'{ty} {a}' for a in args)})")
    return out

  def binary(self, op: Ops, dt: DType, a: str, b: str, src_dt: DType) -> str:
    """a op b, both of type src_dt; the result has type dt (bool for comparisons)."""
    ty, s, out = ltype(src_dt), src_dt.scalar, self.tmp()
    isf, isu, isb = dtypes.is_float(s), dtypes.is_unsigned(s), s == dtypes.bool
    if op in (Ops.ADD, Ops.MUL, Ops.MAX) and isb: ins = {Ops.ADD: "or", Ops.MUL: "and", Ops.MAX: "or"}[op]
    elif op is Ops.MAX:
      return self.call("maximum" if isf else "umax" if isu else "smax", src_dt, [a, b])
    elif op in (Ops.IDIV, Ops.MOD) and not isf: return self.int_divmod(op, src_dt, a, b)
    elif op in (Ops.SHL, Ops.SHR): return self.shift(op, src_dt, a, b)
    elif op is Ops.CMPLT: ins = "fcmp olt" if isf else "icmp ult" if isu or isb else "icmp slt"
    elif op is Ops.CMPNE: ins = "fcmp une" if isf else "icmp ne"
    else: ins = {Ops.ADD: "fadd contract" if isf else "add", Ops.MUL: "fmul contract" if isf else "mul", Ops.FDIV: "fdiv",
                 Ops.AND: "and", Ops.OR: "or", Ops.XOR: "xor"}[op]
    self.emit(f"{out} = {ins} {ty} {a}, {b}")
    return out

  def int_divmod(self, op: Ops, dt: DType, a: str, b: str) -> str:
    """C-style division/remainder that never traps: x/0 -> 0, MIN/-1 -> MIN (x%0 -> 0, MIN%-1 -> 0)."""
    ty, s = ltype(dt), dt.scalar
    lit = lambda v: self.val(UOp.const(dt, v))
    z, bad, safe, q, out = self.tmp(), self.tmp(), self.tmp(), self.tmp(), self.tmp()
    self.emit(f"{z} = icmp eq {ty} {b}, {lit(0)}")
    bad_src = z
    if not dtypes.is_unsigned(s):
      m1, mn, both = self.tmp(), self.tmp(), self.tmp()
      self.emit(f"{m1} = icmp eq {ty} {b}, {lit(-1)}")
      self.emit(f"{mn} = icmp eq {ty} {a}, {lit(dtypes.min(s))}")
      self.emit(f"{both} = and {ltype(dtypes.bool.vec(dt.count))} {m1}, {mn}")
      self.emit(f"{bad} = or {ltype(dtypes.bool.vec(dt.count))} {z}, {both}")
      bad_src = bad
    self.emit(f"{safe} = select {ltype(dtypes.bool.vec(dt.count))} {bad_src}, {ty} {lit(1)}, {ty} {b}")
    ins = ("udiv" if dtypes.is_unsigned(s) else "sdiv") if op is Ops.IDIV else ("urem" if dtypes.is_unsigned(s) else "srem")
    self.emit(f"{q} = {ins} {ty} {a}, {safe}")
    self.emit(f"{out} = select {ltype(dtypes.bool.vec(dt.count))} {z}, {ty} {lit(0)}, {ty} {q}")
    return out

  def i32_divmod(self, u: UOp) -> str:
    """x // c and x % c for a constant c > 0 and x within 32 bits (index arithmetic) as 32-bit ops, unsigned when x >= 0:
    x86 has no 64-bit vector multiply-high, so LLVM turns a <16 x i64> division by a constant into 16 scalar ones.
    test_int_division_by_constant_in_lanes_matches_python"""
    x, c = u.src
    nt = dtypes.uint32 if x.vmin >= 0 else dtypes.int32
    nt = nt.vec(x.dtype.count) if x.dtype.count > 1 else nt
    ins = {(Ops.IDIV, True): "udiv", (Ops.MOD, True): "urem", (Ops.IDIV, False): "sdiv", (Ops.MOD, False): "srem"}[(u.op, x.vmin >= 0)]
    q = self._fop(ins, nt, self.cast(self.val(x), x.dtype, nt), self.val(UOp.const(nt.scalar, c.arg), nt if nt.count > 1 else None))
    return self.cast(q, nt, u.dtype)

  def shift(self, op: Ops, dt: DType, a: str, b: str) -> str:
    """Shifts by >= the bit width give 0 (or the sign for an arithmetic right shift) instead of LLVM poison."""
    ty, s, bt = ltype(dt), dt.scalar, ltype(dtypes.bool.vec(dt.count))
    lit = lambda v: self.val(UOp.const(dt, v))
    over, amt, r, out = self.tmp(), self.tmp(), self.tmp(), self.tmp()
    self.emit(f"{over} = icmp uge {ty} {b}, {lit(s.bitsize)}")
    self.emit(f"{amt} = select {bt} {over}, {ty} {lit(s.bitsize - 1)}, {ty} {b}")
    ins = "shl" if op is Ops.SHL else "lshr" if dtypes.is_unsigned(s) else "ashr"
    self.emit(f"{r} = {ins} {ty} {a}, {amt}")
    if ins == "ashr": return r
    self.emit(f"{out} = select {bt} {over}, {ty} {lit(0)}, {ty} {r}")
    return out

  def alu(self, u: UOp) -> str:
    op, dt = u.op, u.dtype
    if op is Ops.WHERE:
      c, a, b = u.src
      out = self.tmp()
      cv = self.val(c, dtypes.bool.vec(dt.count) if dt.count > 1 else None)
      self.emit(f"{out} = select {ltype(dtypes.bool.vec(dt.count) if dt.count > 1 else dtypes.bool)} {cv}, {ltype(dt)} {self.val(a, dt)}, {ltype(dt)} {self.val(b, dt)}")
      return out
    if op is Ops.CAST: return self.cast(self.val(u.src[0]), u.src[0].dtype, dt)
    if op is Ops.BITCAST:
      out = self.tmp()
      self.emit(f"{out} = bitcast {ltype(u.src[0].dtype)} {self.val(u.src[0])} to {ltype(dt)}")
      return out
    if op in (Ops.IDIV, Ops.MOD) and _i32_divmod(u): return self.i32_divmod(u)
    if len(u.src) == 2:
      sdt = u.src[0].dtype if u.src[0].dtype.count >= u.src[1].dtype.count else u.src[1].dtype
      sdt = sdt if dt.count == 1 or sdt.count > 1 else sdt.vec(dt.count)
      return self.binary(op, dt, self.val(u.src[0], sdt), self.val(u.src[1], sdt), sdt)
    x, s, out = self.val(u.src[0], dt), dt.scalar, self.tmp()
    ty = ltype(dt)
    if op is Ops.NEG:
      if s == dtypes.bool: self.emit(f"{out} = xor {ty} {x}, {self.val(UOp.const(dt, True))}")
      elif dtypes.is_float(s): self.emit(f"{out} = fneg {ty} {x}")
      else: self.emit(f"{out} = sub {ty} {self.val(UOp.const(dt, 0))}, {x}")
      return out
    if op is Ops.RECIPROCAL:
      self.emit(f"{out} = fdiv {ty} {self.val(UOp.const(dt, 1.0))}, {x}")
      return out
    if op is Ops.EXP2 and s == dtypes.float32: return self.exp2_f32(x, dt)
    if op is Ops.LOG2 and s == dtypes.float32: return self.log2_f32(x, dt)
    return self.call({Ops.EXP2: "exp2", Ops.LOG2: "log2", Ops.SIN: "sin", Ops.SQRT: "sqrt", Ops.TRUNC: "trunc"}[op], dt, [x])

  # vectorisable float32 transcendentals (llvm.exp2/log2 on vectors become one libm call per lane)
  def _fconst(self, v: float, dt: DType) -> str: return self.val(UOp.const(dtypes.float32, v), dt if dt.count > 1 else None)
  def _fop(self, ins: str, dt: DType, a: str, b: str) -> str:
    out = self.tmp()
    self.emit(f"{out} = {ins} {ltype(dt)} {a}, {b}")
    return out
  def _poly(self, x: str, coeffs: list[float], dt: DType) -> str:
    """Horner: c0 + x*(c1 + x*(c2 + ...)), one fused multiply-add per step (softmax 4096x1024 kernel: 2.2 -> 1.85 ms)."""
    acc = self._fconst(coeffs[-1], dt)
    for c in reversed(coeffs[:-1]): acc = self._fop("fadd contract", dt, self._fop("fmul contract", dt, acc, x), self._fconst(c, dt))
    return acc
  def exp2_f32(self, x: str, dt: DType) -> str:
    """2^x = 2^n * 2^f with n = round(x), |f| <= 1/2, 2^f by its Taylor series to degree 7 (error < 1e-8); the scale
    2^n is applied as two exact powers of two so results down to the subnormals are right. NaN passes through."""
    n, ty = dt.count, ltype(dt)
    i32 = ltype(dtypes.int32.vec(n))
    b = ltype(dtypes.bool.vec(n))
    lo, hi = self.tmp(), self.tmp()
    self.emit(f"{lo} = call {ty} {self.declare(ty, f'llvm.maxnum.{mangle(dt)}', [ty, ty])}({ty} {x}, {ty} {self._fconst(-151.0, dt)})")
    self.emit(f"{hi} = call {ty} {self.declare(ty, f'llvm.minnum.{mangle(dt)}', [ty, ty])}({ty} {lo}, {ty} {self._fconst(129.0, dt)})")
    r = self.tmp()
    self.emit(f"{r} = call {ty} {self.declare(ty, f'llvm.rint.{mangle(dt)}', [ty])}({ty} {hi})")
    f = self._fop("fsub", dt, hi, r)
    ln2 = 0.6931471805599453
    p = self._poly(f, [ln2 ** k / __import__("math").factorial(k) for k in range(8)], dt)
    ni, n1, n2, e1, e2, s1, s2 = (self.tmp() for _ in range(7))
    self.emit(f"{ni} = fptosi {ty} {r} to {i32}")
    self.emit(f"{n1} = ashr {i32} {ni}, {self._ivec(n, 1)}")
    self.emit(f"{n2} = sub {i32} {ni}, {n1}")
    for nk, ek, sk in ((n1, e1, s1), (n2, e2, s2)):
      t = self.tmp()
      self.emit(f"{t} = add {i32} {nk}, {self._ivec(n, 127)}")
      self.emit(f"{ek} = shl {i32} {t}, {self._ivec(n, 23)}")
      self.emit(f"{sk} = bitcast {i32} {ek} to {ty}")
    res = self._fop("fmul", dt, self._fop("fmul", dt, p, s1), s2)
    nan, out = self.tmp(), self.tmp()
    self.emit(f"{nan} = fcmp uno {ty} {x}, {x}")
    self.emit(f"{out} = select {b} {nan}, {ty} {x}, {ty} {res}")
    return out
  def log2_f32(self, x: str, dt: DType) -> str:
    """log2 x = e + 2*atanh((m-1)/(m+1))/ln 2 with x = m * 2^e, m in [sqrt(1/2), sqrt(2)); subnormals are scaled by
    2^23 first. x < 0 -> NaN, 0 -> -inf, inf -> inf, NaN -> NaN (numpy's float32 log2)."""
    n, ty = dt.count, ltype(dt)
    i32, b = ltype(dtypes.int32.vec(n)), ltype(dtypes.bool.vec(n))
    sub, xs, eadj = self.tmp(), self.tmp(), self.tmp()
    self.emit(f"{sub} = fcmp olt {ty} {x}, {self._fconst(1.1754943508222875e-38, dt)}")
    self.emit(f"{xs} = select {b} {sub}, {ty} {self._fop('fmul', dt, x, self._fconst(8388608.0, dt))}, {ty} {x}")
    self.emit(f"{eadj} = select {b} {sub}, {i32} {self._ivec(n, -23)}, {i32} {self._ivec(n, 0)}")
    bits, ex, eb, mb, mo, m = (self.tmp() for _ in range(6))
    self.emit(f"{bits} = bitcast {ty} {xs} to {i32}")
    self.emit(f"{ex} = lshr {i32} {bits}, {self._ivec(n, 23)}")
    self.emit(f"{eb} = and {i32} {ex}, {self._ivec(n, 255)}")
    self.emit(f"{mb} = and {i32} {bits}, {self._ivec(n, 0x7FFFFF)}")
    self.emit(f"{mo} = or {i32} {mb}, {self._ivec(n, 0x3F800000)}")
    self.emit(f"{m} = bitcast {i32} {mo} to {ty}")
    big, mh, m2, e0, e1, e2, ef = (self.tmp() for _ in range(7))
    self.emit(f"{big} = fcmp ogt {ty} {m}, {self._fconst(1.4142135623730951, dt)}")
    self.emit(f"{mh} = fmul {ty} {m}, {self._fconst(0.5, dt)}")
    self.emit(f"{m2} = select {b} {big}, {ty} {mh}, {ty} {m}")
    self.emit(f"{e0} = sub {i32} {eb}, {self._ivec(n, 127)}")
    self.emit(f"{e1} = add {i32} {e0}, {eadj}")
    self.emit(f"{e2} = add {i32} {e1}, {self._fconst_i(big, n)}")
    self.emit(f"{ef} = sitofp {i32} {e2} to {ty}")
    num = self._fop("fsub", dt, m2, self._fconst(1.0, dt))
    den = self._fop("fadd", dt, m2, self._fconst(1.0, dt))
    t = self._fop("fdiv", dt, num, den)
    t2 = self._fop("fmul", dt, t, t)
    inv_ln2 = 1.4426950408889634
    series = self._poly(t2, [2 * inv_ln2 / (2 * k + 1) for k in range(6)], dt)
    res = self._fop("fadd", dt, ef, self._fop("fmul", dt, t, series))
    neg, zero, inf, nan, o1, o2, o3, out = (self.tmp() for _ in range(8))
    self.emit(f"{neg} = fcmp olt {ty} {x}, {self._fconst(0.0, dt)}")
    self.emit(f"{zero} = fcmp oeq {ty} {x}, {self._fconst(0.0, dt)}")
    self.emit(f"{inf} = fcmp oeq {ty} {x}, {self._fconst(float('inf'), dt)}")
    self.emit(f"{nan} = fcmp uno {ty} {x}, {x}")
    self.emit(f"{o1} = select {b} {inf}, {ty} {x}, {ty} {res}")
    self.emit(f"{o2} = select {b} {zero}, {ty} {self._fconst(float('-inf'), dt)}, {ty} {o1}")
    self.emit(f"{o3} = select {b} {neg}, {ty} {self._fconst(float('nan'), dt)}, {ty} {o2}")
    self.emit(f"{out} = select {b} {nan}, {ty} {x}, {ty} {o3}")
    return out
  def _fconst_i(self, cond: str, n: int) -> str:
    out = self.tmp()
    self.emit(f"{out} = zext {ltype(dtypes.bool.vec(n))} {cond} to {ltype(dtypes.int32.vec(n))}")
    return out

  def cast(self, x: str, f: DType, t: DType) -> str:
    if f.scalar == t.scalar: return x
    if t.count > 1 and f.count == 1:  # broadcast first
      x = self.val_broadcast(x, f, t.count)
      f = f.vec(t.count)
    fs, ts, out = f.scalar, t.scalar, self.tmp()
    ft, tt = ltype(f), ltype(t)
    if ts == dtypes.bool:
      zero = "zeroinitializer" if f.count > 1 else ("0.0" if dtypes.is_float(fs) else "0")
      self.emit(f"{out} = {'fcmp une' if dtypes.is_float(fs) else 'icmp ne'} {ft} {x}, {zero}")
    elif fs == dtypes.bool: self.emit(f"{out} = {'uitofp' if dtypes.is_float(ts) else 'zext'} {ft} {x} to {tt}")
    elif dtypes.is_float(fs) and dtypes.is_float(ts):
      f32 = dtypes.float32.vec(f.count)
      if {fs, ts} == {dtypes.float16, dtypes.bfloat16}: return self.cast(self.cast(x, f, f32), f32, t)
      if fs == dtypes.float64 and ts in (dtypes.float16, dtypes.bfloat16): return self.cast(self.f64_to_f32_odd(x, f), f32, t)
      if ts == dtypes.bfloat16: return self.f32_to_bf16(self.cast(x, f, f32) if fs != dtypes.float32 else x, t)
      if fs == dtypes.bfloat16: return self.cast(self.bf16_to_f32(x, f), f32, t)
      self.emit(f"{out} = {'fpext' if ts.itemsize > fs.itemsize else 'fptrunc'} {ft} {x} to {tt}")
    elif dtypes.is_float(ts): self.emit(f"{out} = {'uitofp' if dtypes.is_unsigned(fs) else 'sitofp'} {ft} {x} to {tt}")
    elif dtypes.is_float(fs):  # saturating: NaN -> 0 and out-of-range -> min/max instead of poison
      kind = "fptoui" if dtypes.is_unsigned(ts) else "fptosi"
      fn = self.declare(tt, f"llvm.{kind}.sat.{mangle(t)}.{mangle(f)}", [ft])
      self.emit(f"{out} = call {tt} {fn}({ft} {x})")
    elif ts.itemsize == fs.itemsize:
      return x
    elif ts.itemsize < fs.itemsize: self.emit(f"{out} = trunc {ft} {x} to {tt}")
    else: self.emit(f"{out} = {'zext' if dtypes.is_unsigned(fs) else 'sext'} {ft} {x} to {tt}")
    return out

  # float conversions done with integer ops, so no compiler-rt helper (__truncdfhf2, __truncsfbf2) is ever called
  def _ivec(self, n: int, v: int) -> str:
    return self.val(UOp.const(dtypes.int32, v), dtypes.int32.vec(n) if n > 1 else None)
  def f64_to_f32_odd(self, x: str, f: DType) -> str:
    """double -> float rounding to odd, so that a second rounding to half/bfloat16 equals one direct rounding."""
    n, ft = f.count, ltype(f)
    f32, i32, b = ltype(dtypes.float32.vec(n)), ltype(dtypes.int32.vec(n)), ltype(dtypes.bool.vec(n))
    fabs = self.declare(ft, f"llvm.fabs.{mangle(f)}", [ft])
    r, back, ab, ax, inexact, over, bits, dn, tz, odd, res, out = (self.tmp() for _ in range(12))
    self.emit(f"{r} = fptrunc {ft} {x} to {f32}")
    self.emit(f"{back} = fpext {f32} {r} to {ft}")
    self.emit(f"{ab} = call {ft} {fabs}({ft} {back})")
    self.emit(f"{ax} = call {ft} {fabs}({ft} {x})")
    self.emit(f"{inexact} = fcmp one {ft} {back}, {x}")
    self.emit(f"{over} = fcmp ogt {ft} {ab}, {ax}")
    self.emit(f"{bits} = bitcast {f32} {r} to {i32}")
    self.emit(f"{dn} = sub {i32} {bits}, {self._ivec(n, 1)}")
    self.emit(f"{tz} = select {b} {over}, {i32} {dn}, {i32} {bits}")
    self.emit(f"{odd} = or {i32} {tz}, {self._ivec(n, 1)}")
    self.emit(f"{res} = select {b} {inexact}, {i32} {odd}, {i32} {bits}")
    self.emit(f"{out} = bitcast {i32} {res} to {f32}")
    return out

  def f32_to_bf16(self, x: str, t: DType) -> str:
    """Round to nearest even on the bits; NaN stays a quiet NaN."""
    n = t.count
    f32, i32, i16, b = ltype(dtypes.float32.vec(n)), ltype(dtypes.int32.vec(n)), ltype(dtypes.int16.vec(n)), ltype(dtypes.bool.vec(n))
    bits, sh, lsb, bias, sum_, hi, nan, sel, tr, out = (self.tmp() for _ in range(10))
    self.emit(f"{bits} = bitcast {f32} {x} to {i32}")
    self.emit(f"{sh} = lshr {i32} {bits}, {self._ivec(n, 16)}")
    self.emit(f"{lsb} = and {i32} {sh}, {self._ivec(n, 1)}")
    self.emit(f"{bias} = add {i32} {lsb}, {self._ivec(n, 0x7FFF)}")
    self.emit(f"{sum_} = add {i32} {bits}, {bias}")
    self.emit(f"{hi} = lshr {i32} {sum_}, {self._ivec(n, 16)}")
    self.emit(f"{nan} = fcmp uno {f32} {x}, {x}")
    self.emit(f"{sel} = select {b} {nan}, {i32} {self._ivec(n, 0x7FC0)}, {i32} {hi}")
    self.emit(f"{tr} = trunc {i32} {sel} to {i16}")
    self.emit(f"{out} = bitcast {i16} {tr} to {ltype(t)}")
    return out

  def bf16_to_f32(self, x: str, f: DType) -> str:
    n = f.count
    f32, i32, i16 = ltype(dtypes.float32.vec(n)), ltype(dtypes.int32.vec(n)), ltype(dtypes.int16.vec(n))
    bits, ext, sh, out = self.tmp(), self.tmp(), self.tmp(), self.tmp()
    self.emit(f"{bits} = bitcast {ltype(f)} {x} to {i16}")
    self.emit(f"{ext} = zext {i16} {bits} to {i32}")
    self.emit(f"{sh} = shl {i32} {ext}, {self._ivec(n, 16)}")
    self.emit(f"{out} = bitcast {i32} {sh} to {f32}")
    return out

  def val_broadcast(self, x: str, dt: DType, n: int) -> str:
    t1, t2 = self.tmp(), self.tmp()
    vt = f"<{n} x {ltype(dt)}>"
    self.emit(f"{t1} = insertelement {vt} poison, {ltype(dt)} {x}, i64 0")
    self.emit(f"{t2} = shufflevector {vt} {t1}, {vt} poison, <{n} x i32> zeroinitializer")
    return t2
