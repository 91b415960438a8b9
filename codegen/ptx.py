"""PTX renderer: a kernel AST -> optimize_gpu -> linearize -> PTX text for one `.visible .entry`.

It consumes the same linearized Block tree as the LLVM renderer (codegen/llvmir.py) and keeps its semantics:

* Registers are typed virtual registers, one class per storage type: %p (.pred, bool values), %rs (.b16: int8..
  uint16, float16/bfloat16 bits), %r (.b32: int32/uint32), %rd (.b64: int64/uint64 and addresses), %f (.f32),
  %fd (.f64). int8/uint8 values live sign/zero-extended in 16-bit registers and are re-normalised after + * - <<.
  Index arithmetic (dtypes.index = int64) is rendered in 32 bits wherever the value bounds prove it fits; 32-bit
  wrap-around is exact for + * - whose result fits, and // % max where selects only see 32-bit operands.
* Memory: bool is a byte (ld.global.u8 + setp / selp + st.global.u8); float16/bfloat16 are 16-bit loads/stores and
  all their math runs in float32 (the shared half->float32 promotion pass), bf16->f32 is a shift, f32->bf16 is
  cvt.rn.bf16.f32 (sm_80+) or integer round-to-nearest-even (sm_75).
* Semantics as numpy/the CPU backend: add/mul with .rn (never contracted into fma), except an accumulate of a product
  which is one fma.rn; IEEE div.rn/rcp.rn/sqrt.rn; MAX propagates NaN (max.NaN on sm_80+); CMPLT is ordered
  (setp.lt), CMPNE unordered (setp.neu); integer // and % never trap (x/0 -> 0, MIN/-1 -> MIN, x%0 -> 0); shifts by
  >= the bit width give 0 (the sign for an arithmetic right shift); float->int casts saturate, NaN -> 0;
  narrowing float casts round once (round-to-odd to float32, then round-to-nearest).
* Transcendentals: float32 EXP2 is ex2.approx.f32 (<= 2 ulp); float64 EXP2, and LOG2 and SIN of both widths are
  polynomials emitted inline (log2: atanh series on [sqrt(1/2), sqrt(2)); sin: Cody-Waite reduction by pi/2 in
  float64 with fma, Taylor polynomials on [-pi/4, pi/4]); a few ulp in float32 and float64, for |x| < ~1e9 in sin
  (no Payne-Hanek reduction for huger arguments).
* Global loops mapped to threads become %ctaid.x * %ntid.x + %tid.x (codegen/gpu.py); threads past the end exit.
  In group mode (a block per output, codegen/gpu.py) gid is %ctaid.x, the lane %tid.x, and a REDUCE over a "group"
  loop combines the lanes' partials with shfl.sync.bfly within warps and a .shared array + bar.sync across warps;
  a STORE with a 4th source is predicated on it.
  Division of a non-negative 32-bit index by a constant is a mul.hi + shift (or a shift / and for powers of two).
"""
from __future__ import annotations
import math, struct
from dataclasses import dataclass, field
from tinygrad.uop import UOp, Ops
from tinygrad.dtype import DType, dtypes
from codegen.linearize import Block, linearize
from codegen.lower import reduce_identity
from codegen.gpu import optimize_gpu, GPUKernelInfo

# ---- PTX ISA version for a target: the smallest one that knows the architecture (widest driver compatibility)
_PTX_VERSIONS = [(75, "6.3"), (80, "7.0"), (86, "7.1"), (87, "7.4"), (89, "7.8"), (90, "7.8"), (100, "8.6"),
                 (101, "8.6"), (103, "8.8"), (110, "9.0"), (120, "8.7"), (121, "8.8")]

def parse_arch(arch: str) -> tuple[int, str]:
  """'sm_80' -> (80, ''), 'sm_90a' -> (90, 'a')."""
  a = arch.lower().removeprefix("sm_").removeprefix("compute_")
  digits = "".join(c for c in a if c.isdigit())
  if not digits or not a.startswith(digits): raise ValueError(f"PTX: bad architecture {arch!r} (expected like 'sm_80')")
  if int(digits) < 75: raise ValueError(f"PTX: {arch} is not supported (compute capability 7.5 or newer is needed)")
  return int(digits), a[len(digits):]

def ptx_version(arch: str) -> str:
  sm, suffix = parse_arch(arch)
  ver = "6.3"
  for s, v in _PTX_VERSIONS:
    if s <= sm: ver = v
  if suffix and float(ver) < 8.0: ver = "8.0"   # sm_90a and friends
  if sm > _PTX_VERSIONS[-1][0] and float(ver) < 9.0: ver = "9.0"
  return ver

def arch_from_cc(major: int, minor: int) -> str:
  """Compute capability (8, 6) -> 'sm_86'."""
  return f"sm_{major}{minor}"

# ---- types
REG_CLASS = {dtypes.bool: ("pred", "%p"), dtypes.int8: ("b16", "%rs"), dtypes.uint8: ("b16", "%rs"),
             dtypes.int16: ("b16", "%rs"), dtypes.uint16: ("b16", "%rs"), dtypes.float16: ("b16", "%rs"),
             dtypes.bfloat16: ("b16", "%rs"), dtypes.int32: ("b32", "%r"), dtypes.uint32: ("b32", "%r"),
             dtypes.int64: ("b64", "%rd"), dtypes.uint64: ("b64", "%rd"), dtypes.float32: ("f32", "%f"),
             dtypes.float64: ("f64", "%fd")}
ITYPE = {dtypes.int8: "s16", dtypes.uint8: "u16", dtypes.int16: "s16", dtypes.uint16: "u16", dtypes.int32: "s32",
         dtypes.uint32: "u32", dtypes.int64: "s64", dtypes.uint64: "u64", dtypes.float32: "f32", dtypes.float64: "f64",
         dtypes.float16: "b16", dtypes.bfloat16: "b16"}
MEMTYPE = {dtypes.bool: "u8", dtypes.int8: "s8", dtypes.uint8: "u8", dtypes.int16: "s16", dtypes.uint16: "u16",
           dtypes.int32: "s32", dtypes.uint32: "u32", dtypes.int64: "s64", dtypes.uint64: "u64",
           dtypes.float16: "b16", dtypes.bfloat16: "b16", dtypes.float32: "f32", dtypes.float64: "f64"}
REG_BITS = {"b16": 16, "b32": 32, "b64": 64, "f32": 32, "f64": 64, "pred": 1}
I32_MIN, I32_MAX = -2 ** 31, 2 ** 31 - 1

def is_8bit(dt: DType) -> bool: return dt in (dtypes.int8, dtypes.uint8)
def reg_bits(dt: DType) -> int: return REG_BITS[REG_CLASS[dt][0]]
def uty(bits: int) -> str: return f"u{bits}"
def sty(bits: int) -> str: return f"s{bits}"

def imm(val, dt: DType) -> str:
  """A PTX immediate for val of dtype dt."""
  if dt == dtypes.bool: return "1" if val else "0"
  if dt == dtypes.float32: return "0f%08X" % struct.unpack("<I", struct.pack("<f", val))[0]
  if dt == dtypes.float64: return "0d%016X" % struct.unpack("<Q", struct.pack("<d", val))[0]
  if dt == dtypes.float16: return "0x%04X" % struct.unpack("<H", struct.pack("<e", val))[0]
  if dt == dtypes.bfloat16:
    b = struct.unpack("<I", struct.pack("<f", val))[0]
    return "0x%04X" % (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF if not math.isnan(val) else 0x7FC0)
  v = int(val)
  bits = reg_bits(dt)
  return "0x%X" % (v & ((1 << bits) - 1))   # two's complement bits: valid for signed and unsigned types alike

def magic_u(d: int, nbits: int, width: int) -> tuple[int, int]:
  """(m, s) with x // d == (x * m) >> s for 0 <= x < 2**nbits, and m < 2**width, s >= width (so it is a mul.hi and a
  shift). Needs nbits < width. Proof: with l = ceil(log2 d) and s >= nbits + l, m = ceil(2**s / d) = (2**s + e) / d,
  0 <= e < d, so x*m / 2**s = x/d + x*e/(d*2**s) and the error term is < 2**(nbits-s) <= 1/d."""
  assert d >= 2 and nbits < width
  l = (d - 1).bit_length()
  s = max(nbits + l, width)
  m = -(-(1 << s) // d)
  assert m < (1 << width), (d, nbits, width)
  return m, s

@dataclass
class PTXKernel:
  name: str
  src: str
  global_size: tuple[int, int, int]     # grid, in blocks
  local_size: tuple[int, int, int]      # block, in threads
  n_params: int
  param_dtypes: tuple[DType, ...]       # element dtype of each buffer parameter (data0 is the output)
  param_sizes: tuple[int, ...] = ()     # elements of each buffer parameter
  arch: str = "sm_80"
  info: GPUKernelInfo | None = field(default=None, repr=False)

def render_ptx(ast: UOp, arch: str = "sm_80", group: bool = True) -> PTXKernel:
  """Kernel AST (as scheduled) -> PTX for `arch`. group=False turns off block-level reductions (e.g. for NOOPT)."""
  sink, info = optimize_gpu(ast, group)
  prog = linearize(sink)
  params = list(sink.arg)  # every parameter, also one the simplifier made unused
  src = PTXRenderer(arch).render(info.name, prog, params, info, sink)
  return PTXKernel(info.name, src, info.global_size, info.local_size, len(params), tuple(p.dtype for p in params),
                   tuple(p.arg.size for p in params), arch, info)

class PTXRenderer:
  def __init__(self, arch: str = "sm_80"):
    self.arch = arch
    self.sm, _ = parse_arch(arch)

  # ---------------------------------------------------------------- plumbing
  def render(self, name: str, prog: Block, params: list[UOp], info: GPUKernelInfo, sink: UOp) -> str:
    self.lines: list[str] = []
    self.counts: dict[str, int] = {}
    self.reg: dict[UOp, str] = {}
    self.rdt: dict[UOp, DType] = {}
    self.consts: dict[tuple, str] = {}
    self.const_lines: list[str] = []
    self.acc_of: dict[UOp, str] = {}
    self.scopes: list[dict] = [{}]
    self.nlabel = 0
    self.info = info
    users: dict[UOp, int] = {}
    for u in sink.toposort():
      for s in u.src: users[s] = users.get(s, 0) + 1
    # products only feeding a float sum accumulator: rendered as one fma in the ACCUMULATE
    self.fused: set[UOp] = set()
    for u in prog_nodes(prog):
      if u.op is Ops.ACCUMULATE and u.arg.arg is Ops.ADD and u.dtype in (dtypes.float32, dtypes.float64):
        v = u.src[1]
        if v.op is Ops.MUL and v.dtype == u.dtype and users.get(v, 0) == 1: self.fused.add(v)
    self.prologue: list[str] = []
    for p in params:
      r = self.new("b64")
      self.prologue.append(f"ld.param.u64 {r}, [data{p.arg.index}];")
      self.prologue.append(f"cvta.to.global.u64 {r}, {r};")
      self.reg[p], self.rdt[p] = r, dtypes.uint64
    self.shared: list[tuple[str, int]] = []
    if info.gid is not None or info.group: self.render_gid(info)
    self.block(prog)
    body = self.prologue + self.const_lines + self.lines
    decls = [f".reg .{cls} {pfx}<{self.counts[cls] + 1}>;" for cls, pfx in
             (("pred", "%p"), ("b16", "%rs"), ("b32", "%r"), ("b64", "%rd"), ("f32", "%f"), ("f64", "%fd")) if cls in self.counts]
    sig = ", ".join(f".param .u64 data{p.arg.index}" for p in params)
    out = [f"// {name}: grid {info.global_size}, block {info.local_size}, {info.n_threads} threads",
           f".version {ptx_version(self.arch)}", f".target {self.arch}", ".address_size 64", "",
           f".visible .entry {name}({sig})", "{"]
    out += ["  " + d for d in decls]
    out += [f"  .shared .align 8 .b8 {n}[{size}];" for n, size in self.shared]
    out += [("" if l.endswith(":") else "  ") + l for l in body]
    out += ["$L_end:", "  ret;", "}", ""]
    return "\n".join(out)

  def new(self, cls: str) -> str:
    n = self.counts.get(cls, 0) + 1
    self.counts[cls] = n
    return {"pred": "%p", "b16": "%rs", "b32": "%r", "b64": "%rd", "f32": "%f", "f64": "%fd"}[cls] + str(n)
  def newr(self, dt: DType) -> str: return self.new(REG_CLASS[dt][0])
  def emit(self, s: str) -> None: self.lines.append(s)
  def label(self, what: str) -> str:
    self.nlabel += 1
    return f"$L{what}{self.nlabel}"

  def const(self, val, dt: DType) -> str:
    """A register holding the constant (materialised once, in the prologue)."""
    if dtypes.is_float(dt) and isinstance(val, float) and math.isnan(val): key = (dt, "nan")
    else: key = (dt, imm(val, dt))
    if (r := self.consts.get(key)) is None:
      r = self.consts[key] = self.newr(dt)
      cls = REG_CLASS[dt][0]
      self.const_lines.append(f"mov.{'pred' if cls == 'pred' else 'b' + str(REG_BITS[cls]) if cls.startswith('b') else cls} {r}, {imm(val, dt)};")
    return r

  # ---------------------------------------------------------------- values
  def narrow(self, u: UOp) -> bool:
    """Render this int64 (index) value in a 32-bit register: its bounds fit, and the op is exact in 32 bits."""
    if u.dtype != dtypes.int64: return False
    if u.op in (Ops.LOAD, Ops.REDUCE, Ops.DEFINE_ACC, Ops.ACCUMULATE, Ops.BITCAST, Ops.DEFINE_GLOBAL): return False
    lo, hi = u.vmin, u.vmax
    if not (isinstance(lo, int) and isinstance(hi, int) and I32_MIN <= lo and hi <= I32_MAX): return False
    if u.op in (Ops.CONST, Ops.SPECIAL, Ops.RANGE, Ops.ADD, Ops.MUL, Ops.NEG): return True
    if u.op is Ops.CAST: return dtypes.is_int(u.src[0].dtype) and u.src[0].dtype.itemsize <= 4 or self.rdt.get(u.src[0]) == dtypes.int32
    if u.op in (Ops.IDIV, Ops.MOD, Ops.MAX): return all(self.rdt.get(s, s.dtype) == dtypes.int32 or (s.op is Ops.CONST and I32_MIN <= s.arg <= I32_MAX) for s in u.src)
    if u.op is Ops.WHERE: return all(self.rdt.get(s, s.dtype) == dtypes.int32 or (s.op is Ops.CONST and I32_MIN <= s.arg <= I32_MAX) for s in u.src[1:])
    return False

  def get(self, u: UOp, dt: DType | None = None) -> str:
    """The register holding u, as dtype dt (int64 <-> int32 for index values rendered narrow)."""
    want = dt or self.rdt.get(u, u.dtype)
    if u.op is Ops.CONST: return self.const(u.arg, want)
    have, r = self.rdt[u], self.reg[u]
    if have == want: return r
    key = ("conv", u, want)
    if (c := self.lookup(key)) is not None: return c
    if have == dtypes.int32 and want in (dtypes.int64, dtypes.uint64):
      out = self.new("b64")
      self.emit(f"cvt.s64.s32 {out}, {r};")
    elif have in (dtypes.int64, dtypes.uint64) and want in (dtypes.int32, dtypes.uint32):
      out = self.new("b32")
      self.emit(f"cvt.u32.u64 {out}, {r};")
    else: raise AssertionError(f"PTX: no register conversion {have} -> {want} for {u.op}")
    self.scopes[-1][key] = out
    return out

  def lookup(self, key):
    for s in reversed(self.scopes):
      if (r := s.get(key)) is not None: return r
    return None

  def set(self, u: UOp, r: str, dt: DType) -> None: self.reg[u], self.rdt[u] = r, dt

  # ---------------------------------------------------------------- structure
  def render_gid(self, info: GPUKernelInfo) -> None:
    if info.group:  # one block per gid: gid = %ctaid.x, lid = %tid.x
      t = self.new("b32")
      self.prologue.append(f"mov.u32 {t}, %tid.x;")
      self.tid = t
      self.set(info.lid, t, dtypes.int32)
      if info.gid is not None:
        c = self.new("b32")
        self.prologue.append(f"mov.u32 {c}, %ctaid.x;")
        self.set(info.gid, c, dtypes.int32)
      return
    g = info.gid
    total = info.global_size[0] * info.local_size[0]
    a, b, c = self.new("b32"), self.new("b32"), self.new("b32")
    self.prologue += [f"mov.u32 {a}, %ctaid.x;", f"mov.u32 {b}, %ntid.x;", f"mov.u32 {c}, %tid.x;"]
    if total <= 2 ** 31 and self.narrow(g):
      r = self.new("b32")
      self.prologue.append(f"mad.lo.s32 {r}, {a}, {b}, {c};")
      self.set(g, r, dtypes.int32)
      if info.needs_guard:
        p = self.new("pred")
        self.prologue += [f"setp.ge.s32 {p}, {r}, {info.n_threads};", f"@{p} bra $L_end;"]
    else:
      r, t = self.new("b64"), self.new("b64")
      self.prologue += [f"mul.wide.u32 {r}, {a}, {b};", f"cvt.u64.u32 {t}, {c};", f"add.s64 {r}, {r}, {t};"]
      self.set(g, r, dtypes.int64)
      if info.needs_guard:
        p = self.new("pred")
        self.prologue += [f"setp.ge.s64 {p}, {r}, {info.n_threads};", f"@{p} bra $L_end;"]

  def block(self, b: Block) -> None:
    for it in b.items:
      if isinstance(it, Block): self.loop(it)
      else: self.node(it)

  def loop(self, b: Block) -> None:
    r = b.rng
    end = r.arg.end
    wide = end - 1 > I32_MAX
    dt = dtypes.int64 if wide else dtypes.int32
    cls, t = ("b64", "s64") if wide else ("b32", "s32")
    i = self.new(cls)
    self.emit(f"mov.{'b64' if wide else 'b32'} {i}, 0;")
    top = self.label("loop")
    self.emit(f"{top}:")
    self.set(r, i, dt)
    self.scopes.append({})
    self.block(b)
    self.scopes.pop()
    p = self.new("pred")
    self.emit(f"add.{t} {i}, {i}, 1;")
    self.emit(f"setp.lt.{t} {p}, {i}, {end};")
    self.emit(f"@{p} bra {top};")

  def node(self, u: UOp) -> None:
    op = u.op
    if op is Ops.SPECIAL:
      if u not in self.reg: raise NotImplementedError(f"PTX: SPECIAL {u.arg} is not the kernel's global id")
      return
    if u in self.fused: return
    if op is Ops.LOAD: self.load(u)
    elif op is Ops.STORE: self.store(u)
    elif op is Ops.DEFINE_ACC:
      red = u.arg
      if u.dtype.count > 1: raise NotImplementedError("PTX: vector accumulators are not rendered (no vectorisation on GPU)")
      a = self.newr(u.dtype)
      self.emit(f"mov.{self.movty(u.dtype)} {a}, {self.const(reduce_identity(red.arg, u.dtype), u.dtype)};")
      self.set(u, a, u.dtype)
      self.acc_of[red] = a
    elif op is Ops.ACCUMULATE:
      acc, v = u.src
      a = self.reg[acc]
      if v in self.fused:
        t = ITYPE[acc.dtype]
        self.emit(f"fma.rn.{t} {a}, {self.get(v.src[0])}, {self.get(v.src[1])}, {a};")
      else: self.binary(u.arg.arg, acc.dtype, a, self.get(v, acc.dtype), out=a)
    elif op is Ops.REDUCE:
      acc = self.acc_of[u]
      out = self.newr(u.dtype)
      self.emit(f"mov.{self.movty(u.dtype)} {out}, {acc};")
      if any(r.op is Ops.RANGE and r.arg.kind == "group" for r in u.src[1:]): self.group_reduce(u.arg, u.dtype, out)
      self.set(u, out, u.dtype)
    elif op in (Ops.CONST, Ops.DEFINE_GLOBAL, Ops.SINK, Ops.RANGE): return
    elif op in (Ops.LANE, Ops.VECTORIZE) or u.dtype.count > 1:
      raise NotImplementedError(f"PTX: vector op {op} {u.dtype} (the GPU path does not vectorise)")
    else: self.alu(u)

  @staticmethod
  def movty(dt: DType) -> str:
    cls = REG_CLASS[dt][0]
    return "pred" if cls == "pred" else cls if cls.startswith("f") else "b" + str(REG_BITS[cls])

  # ---------------------------------------------------------------- block reductions (group mode)
  def _widen(self, x: str, dt: DType) -> tuple[str, int]:
    """x's bits in a .b32 or .b64 register (for shfl and shared memory)."""
    cls = REG_CLASS[dt][0]
    if cls == "pred":
      w = self.new("b32")
      self.emit(f"selp.u32 {w}, 1, 0, {x};")
      return w, 32
    if cls == "b16":
      w = self.new("b32")
      self.emit(f"cvt.u32.u16 {w}, {x};")
      return w, 32
    if cls in ("f32", "f64"):
      w = self.new("b32" if cls == "f32" else "b64")
      self.emit(f"mov.b{REG_BITS[cls]} {w}, {x};")
      return w, REG_BITS[cls]
    return x, REG_BITS[cls]

  def _narrow_back(self, w: str, dt: DType) -> str:
    cls = REG_CLASS[dt][0]
    if cls == "pred":
      o = self.new("pred")
      self.emit(f"setp.ne.u32 {o}, {w}, 0;")
      return o
    if cls == "b16":
      o = self.new("b16")
      self.emit(f"cvt.u16.u32 {o}, {w};")
      return o
    if cls in ("f32", "f64"):
      o = self.new(cls)
      self.emit(f"mov.b{REG_BITS[cls]} {o}, {w};")
      return o
    return w

  def _shfl(self, w: str, bits: int, off: int) -> str:
    if bits == 32:
      t = self.new("b32")
      self.emit(f"shfl.sync.bfly.b32 {t}, {w}, {off}, 0x1f, 0xffffffff;")
      return t
    lo, hi, lo2, hi2, t = self.new("b32"), self.new("b32"), self.new("b32"), self.new("b32"), self.new("b64")
    self.emit(f"mov.b64 {{{lo}, {hi}}}, {w};")
    self.emit(f"shfl.sync.bfly.b32 {lo2}, {lo}, {off}, 0x1f, 0xffffffff;")
    self.emit(f"shfl.sync.bfly.b32 {hi2}, {hi}, {off}, 0x1f, 0xffffffff;")
    self.emit(f"mov.b64 {t}, {{{lo2}, {hi2}}};")
    return t

  def group_reduce(self, op: Ops, dt: DType, acc: str) -> None:
    """Combine the block's per-lane partial results in register acc: a butterfly over each warp's 32 lanes (every
    lane ends with its warp's result), then lane 0 of each warp writes it to shared memory and, after a barrier,
    every lane reads and combines all warps' results in order. Each reduce has its own shared array, so no second
    barrier is needed (a group reduce runs once per kernel)."""
    for off in (16, 8, 4, 2, 1):
      w, bits = self._widen(acc, dt)
      other = self._narrow_back(self._shfl(w, bits, off), dt)
      self.binary(op, dt, acc, other, out=acc)
    w, bits = self._widen(acc, dt)
    size, nwarps = bits // 8, self.info.group // 32
    name = f"red{len(self.shared)}"
    self.shared.append((name, size * nwarps))
    base, lane, warp, a, p = self.new("b32"), self.new("b32"), self.new("b32"), self.new("b32"), self.new("pred")
    self.emit(f"mov.u32 {base}, {name};")
    self.emit(f"and.b32 {lane}, {self.tid}, 31;")
    self.emit(f"shr.u32 {warp}, {self.tid}, 5;")
    self.emit(f"mad.lo.s32 {a}, {warp}, {size}, {base};")
    self.emit(f"setp.eq.u32 {p}, {lane}, 0;")
    self.emit(f"@{p} st.shared.b{bits} [{a}], {w};")
    self.emit("bar.sync 0;")
    for i in range(nwarps):
      x = self.new("b32" if bits == 32 else "b64")
      self.emit(f"ld.shared.b{bits} {x}, [{base}+{i * size}];" if i else f"ld.shared.b{bits} {x}, [{base}];")
      v = self._narrow_back(x, dt)
      if i == 0: self.emit(f"mov.{self.movty(dt)} {acc}, {v};")
      else: self.binary(op, dt, acc, v, out=acc)

  # ---------------------------------------------------------------- memory
  def address(self, buf: UOp, idx: UOp) -> str:
    """'[reg+off]' for element idx of buf."""
    size = buf.dtype.itemsize
    off, x = 0, idx
    if idx.op is Ops.CONST: off, x = idx.arg, None
    elif idx.op is Ops.ADD and idx.src[1].op is Ops.CONST: off, x = idx.src[1].arg, idx.src[0]
    if not (-2 ** 31 <= off * size < 2 ** 31): off, x = 0, idx
    base = self.reg[buf]
    if x is None: return f"[{base}+{off * size}]" if off else f"[{base}]"
    key = ("addr", buf, x)
    if (a := self.lookup(key)) is None:
      if x not in self.reg and x.op is not Ops.CONST: raise AssertionError(f"PTX: index {x.op} used before it is computed")
      a = self.new("b64")
      if self.rdt.get(x, x.dtype) == dtypes.int32:
        if size == 1:
          self.emit(f"cvt.s64.s32 {a}, {self.get(x)};")
          self.emit(f"add.s64 {a}, {a}, {base};")
        else:
          self.emit(f"mul.wide.s32 {a}, {self.get(x)}, {size};")
          self.emit(f"add.s64 {a}, {a}, {base};")
      else: self.emit(f"mad.lo.s64 {a}, {self.get(x, dtypes.int64)}, {size}, {base};")
      self.scopes[-1][key] = a
    return f"[{a}+{off * size}]" if off else f"[{a}]"

  def load(self, u: UOp) -> None:
    buf, idx = u.src
    dt = u.dtype
    if dt.count > 1: raise NotImplementedError("PTX: vector loads (no vectorisation on GPU)")
    addr = self.address(buf, idx)
    if dt == dtypes.bool:
      t, p = self.new("b16"), self.new("pred")
      self.emit(f"ld.global.u8 {t}, {addr};")
      self.emit(f"setp.ne.u16 {p}, {t}, 0;")
      self.set(u, p, dt)
      return
    r = self.newr(dt)
    self.emit(f"ld.global.{MEMTYPE[dt]} {r}, {addr};")
    self.set(u, r, dt)

  def store(self, u: UOp) -> None:
    buf, idx, v = u.src[:3]
    dt = buf.dtype
    if v.dtype.count > 1 or idx.dtype.count > 1: raise NotImplementedError("PTX: vector stores (no vectorisation on GPU)")
    val = self.get(v, dt if v.dtype == dt else None)
    if dt == dtypes.bool:
      t = self.new("b16")
      self.emit(f"selp.u16 {t}, 1, 0, {val};")
      val = t
    guard = ""
    if len(u.src) > 3:  # an optional gate: STORE(buf, idx, value, valid)
      guard = f"@{self.get(u.src[3])} "
    addr = self.address(buf, idx)
    self.emit(f"{guard}st.global.{MEMTYPE[dt]} {addr}, {val};")

  # ---------------------------------------------------------------- ALU
  def alu(self, u: UOp) -> None:
    op, dt = u.op, u.dtype
    if op is Ops.CAST:
      src = u.src[0]
      if self.narrow(u) and self.rdt.get(src, src.dtype) in (dtypes.int32,) and dtypes.is_int(src.dtype):
        self.set(u, self.get(src), dtypes.int32)  # int32 (or a narrow index) widened to an index: same register
        return
      sdt = self.rdt.get(src, src.dtype) if src.op is not Ops.CONST else src.dtype
      self.set(u, self.cast(self.get(src, sdt), sdt, dt), dt)
      return
    if op is Ops.BITCAST:
      src = u.src[0]
      x = self.get(src, src.dtype)
      if dt == src.dtype: self.set(u, x, dt); return
      out = self.newr(dt)
      if dtypes.bool in (dt, src.dtype): raise NotImplementedError(f"PTX: bitcast {src.dtype} -> {dt}")
      self.emit(f"mov.b{reg_bits(dt)} {out}, {x};")
      if is_8bit(dt): out = self.normalize(out, dt)
      self.set(u, out, dt)
      return
    narrow = self.narrow(u)
    rd = dtypes.int32 if narrow else dt
    if op is Ops.WHERE:
      c, a, b = u.src
      cv = self.get(c)
      if dt == dtypes.bool:
        av, bv = self.get(a), self.get(b)
        t1, nc, t2, out = self.new("pred"), self.new("pred"), self.new("pred"), self.new("pred")
        self.emit(f"and.pred {t1}, {cv}, {av};")
        self.emit(f"not.pred {nc}, {cv};")
        self.emit(f"and.pred {t2}, {nc}, {bv};")
        self.emit(f"or.pred {out}, {t1}, {t2};")
      else:
        out = self.newr(rd)
        self.emit(f"selp.{self.selty(rd)} {out}, {self.get(a, rd)}, {self.get(b, rd)}, {cv};")
      self.set(u, out, rd)
      return
    if len(u.src) == 2:
      a, b = u.src
      sdt = a.dtype
      if sdt == dtypes.int64 and op in (Ops.CMPLT, Ops.CMPNE):  # compare narrow indices in 32 bits
        if all(self.rdt.get(s) == dtypes.int32 or (s.op is Ops.CONST and I32_MIN <= s.arg <= I32_MAX) for s in u.src): sdt = dtypes.int32
      elif narrow: sdt = dtypes.int32
      if op in (Ops.IDIV, Ops.MOD) and b.op is Ops.CONST and b.arg > 0 and dtypes.is_int(sdt) and a.vmin >= 0:
        self.set(u, self.divmod_const(op, sdt, a, b.arg), rd)
        return
      out = self.binary(op, sdt, self.get(a, sdt), self.get(b, sdt))
      self.set(u, out, rd if op not in (Ops.CMPLT, Ops.CMPNE) else dtypes.bool)
      return
    x = self.get(u.src[0], rd)
    self.set(u, self.unary(op, rd, x), rd)

  @staticmethod
  def selty(dt: DType) -> str:
    if dt in (dtypes.float32, dtypes.float64): return ITYPE[dt]
    return "b" + str(reg_bits(dt))

  def normalize(self, r: str, dt: DType) -> str:
    """Re-extend an int8/uint8 value held in a 16-bit register from its low 8 bits."""
    if dt == dtypes.int8:
      t = self.new("b16")
      self.emit(f"shl.b16 {t}, {r}, 8;")
      self.emit(f"shr.s16 {t}, {t}, 8;")
      return t
    if dt == dtypes.uint8:
      t = self.new("b16")
      self.emit(f"and.b16 {t}, {r}, 255;")
      return t
    return r

  def binary(self, op: Ops, dt: DType, a: str, b: str, out: str | None = None) -> str:
    """a op b with operands of (rendered) dtype dt; comparisons give a predicate. out: write into this register."""
    isf = dtypes.is_float(dt)
    if dt in (dtypes.float16, dtypes.bfloat16): raise NotImplementedError(f"PTX: {op} on {dt} (half math is promoted to float32)")
    if dt == dtypes.bool:
      o = out or self.new("pred")
      if op in (Ops.ADD, Ops.OR, Ops.MAX): self.emit(f"or.pred {o}, {a}, {b};")
      elif op in (Ops.MUL, Ops.AND): self.emit(f"and.pred {o}, {a}, {b};")
      elif op in (Ops.XOR, Ops.CMPNE): self.emit(f"xor.pred {o}, {a}, {b};")
      elif op is Ops.CMPLT:
        na = self.new("pred")
        self.emit(f"not.pred {na}, {a};")
        self.emit(f"and.pred {o}, {na}, {b};")
      else: raise NotImplementedError(f"PTX: {op} on bool")
      return o
    t = ITYPE[dt]
    bits = reg_bits(dt)
    if op is Ops.CMPLT:
      o = out or self.new("pred")
      self.emit(f"setp.lt.{t} {o}, {a}, {b};")
      return o
    if op is Ops.CMPNE:
      o = out or self.new("pred")
      self.emit(f"setp.{'neu' if isf else 'ne'}.{t} {o}, {a}, {b};")
      return o
    if op in (Ops.IDIV, Ops.MOD) and not isf: return self.int_divmod(op, dt, a, b, out)
    if op in (Ops.SHL, Ops.SHR): return self.shift(op, dt, a, b, out)
    o = out or self.newr(dt)
    if op is Ops.MAX:
      if not isf: self.emit(f"max.{t} {o}, {a}, {b};")
      elif dt == dtypes.float32 and self.sm >= 80: self.emit(f"max.NaN.f32 {o}, {a}, {b};")
      else:  # NaN-propagating max from max + a NaN test: a+b is NaN when either is
        m, s, p = self.newr(dt), self.newr(dt), self.new("pred")
        self.emit(f"max.{t} {m}, {a}, {b};")
        self.emit(f"add.rn.{t} {s}, {a}, {b};")
        self.emit(f"setp.nan.{t} {p}, {a}, {b};")
        self.emit(f"selp.{t} {o}, {s}, {m}, {p};")
      return o
    if op is Ops.ADD: self.emit(f"add{'.rn' if isf else ''}.{t} {o}, {a}, {b};")
    elif op is Ops.MUL: self.emit(f"mul{'.rn' if isf else '.lo'}.{t} {o}, {a}, {b};")
    elif op is Ops.FDIV:
      if not isf: raise NotImplementedError(f"PTX: FDIV on {dt}")
      self.emit(f"div.rn.{t} {o}, {a}, {b};")
    elif op in (Ops.AND, Ops.OR, Ops.XOR):
      if isf: raise NotImplementedError(f"PTX: {op} on {dt}")
      self.emit(f"{op.name.lower()}.b{bits} {o}, {a}, {b};")
    else: raise NotImplementedError(f"PTX: binary {op} on {dt}")
    if is_8bit(dt) and op in (Ops.ADD, Ops.MUL):
      n = self.normalize(o, dt)
      self.emit(f"mov.b16 {o}, {n};")
    return o

  def int_divmod(self, op: Ops, dt: DType, a: str, b: str, out: str | None = None) -> str:
    """C-style division/remainder that never traps: x/0 -> 0, MIN/-1 -> MIN (x%0 -> 0, MIN%-1 -> 0)."""
    t, bits = ITYPE[dt], reg_bits(dt)
    z, bad, safe, q, o = self.new("pred"), self.new("pred"), self.newr(dt), self.newr(dt), out or self.newr(dt)
    self.emit(f"setp.eq.{t} {z}, {b}, 0;")
    bad_src = z
    if not dtypes.is_unsigned(dt):
      m1, mn = self.new("pred"), self.new("pred")
      self.emit(f"setp.eq.{t} {m1}, {b}, -1;")
      self.emit(f"setp.eq.{t} {mn}, {a}, {self.const(dtypes.min(dt), dt)};")
      self.emit(f"and.pred {m1}, {m1}, {mn};")
      self.emit(f"or.pred {bad}, {z}, {m1};")
      bad_src = bad
    self.emit(f"selp.b{bits} {safe}, 1, {b}, {bad_src};")
    self.emit(f"{'div' if op is Ops.IDIV else 'rem'}.{t} {q}, {a}, {safe};")
    self.emit(f"selp.b{bits} {o}, 0, {q}, {z};")
    return o

  def divmod_const(self, op: Ops, dt: DType, a: UOp, d: int) -> str:
    """a // d or a % d for a constant d > 0 and a >= 0 (then truncation is floor)."""
    x = self.get(a, dt)
    t, bits = ITYPE[dt], reg_bits(dt)
    o = self.newr(dt)
    if d == 1:
      self.emit(f"mov.b{bits} {o}, {x if op is Ops.IDIV else 0};")
      return o
    if d & (d - 1) == 0:
      if op is Ops.IDIV: self.emit(f"shr.u{bits} {o}, {x}, {d.bit_length() - 1};")
      else: self.emit(f"and.b{bits} {o}, {x}, {imm(d - 1, dt)};")
      return o
    hi = a.vmax
    nbits = int(hi).bit_length() if isinstance(hi, int) else bits
    if bits in (32, 64) and nbits < bits and d < 2 ** (bits - 1):
      m, s = magic_u(d, nbits, bits)
      q = self.newr(dt) if op is Ops.MOD else o
      self.emit(f"mul.hi.u{bits} {q}, {x}, {'0x%X' % m};")
      if s > bits: self.emit(f"shr.u{bits} {q}, {q}, {s - bits};")
      if op is Ops.MOD:
        self.emit(f"mul.lo.{t} {q}, {q}, {imm(d, dt)};")
        self.emit(f"sub.{t} {o}, {x}, {q};")
      return o
    self.emit(f"{'div' if op is Ops.IDIV else 'rem'}.{t} {o}, {x}, {self.const(d, dt)};")
    return o

  def shift(self, op: Ops, dt: DType, a: str, b: str, out: str | None = None) -> str:
    """Shift amounts are clamped to the bit width (PTX shifts then give 0, or the sign for shr.s), so shifts by
    >= the width (or a negative amount, seen as unsigned) give 0 / the sign, as on the CPU backend."""
    bits, o = reg_bits(dt), out or self.newr(dt)
    width = dt.bitsize
    amt = self.new("b32")
    if bits == 16:
      c = self.new("b16")
      self.emit(f"min.u16 {c}, {b}, {width};")
      self.emit(f"cvt.u32.u16 {amt}, {c};")
    elif bits == 32: self.emit(f"min.u32 {amt}, {b}, {width};")
    else:
      c = self.new("b64")
      self.emit(f"min.u64 {c}, {b}, {width};")
      self.emit(f"cvt.u32.u64 {amt}, {c};")
    if op is Ops.SHL:
      self.emit(f"shl.b{bits} {o}, {a}, {amt};")
      if is_8bit(dt): self.emit(f"mov.b16 {o}, {self.normalize(o, dt)};")
    else: self.emit(f"shr.{'u' if dtypes.is_unsigned(dt) else 's'}{bits} {o}, {a}, {amt};")
    return o

  def unary(self, op: Ops, dt: DType, x: str) -> str:
    isf = dtypes.is_float(dt)
    if dt == dtypes.bool:
      if op is not Ops.NEG: raise NotImplementedError(f"PTX: {op} on bool")
      o = self.new("pred")
      self.emit(f"not.pred {o}, {x};")
      return o
    if dt in (dtypes.float16, dtypes.bfloat16): raise NotImplementedError(f"PTX: {op} on {dt} (half math is promoted to float32)")
    t, o = ITYPE[dt], self.newr(dt)
    if op is Ops.NEG:
      self.emit(f"neg.{t if isf or not dtypes.is_unsigned(dt) else 's' + t[1:]} {o}, {x};")
      if is_8bit(dt): self.emit(f"mov.b16 {o}, {self.normalize(o, dt)};")
      return o
    if not isf: raise NotImplementedError(f"PTX: {op} on {dt}")
    if op is Ops.SQRT: self.emit(f"sqrt.rn.{t} {o}, {x};")
    elif op is Ops.RECIPROCAL: self.emit(f"rcp.rn.{t} {o}, {x};")
    elif op is Ops.TRUNC: self.emit(f"cvt.rzi.{t}.{t} {o}, {x};")
    elif op is Ops.EXP2:
      if dt == dtypes.float32: self.emit(f"ex2.approx.f32 {o}, {x};")
      else: return self.exp2_f64(x)
    elif op is Ops.LOG2: return self.log2(dt, x)
    elif op is Ops.SIN: return self.sin(dt, x)
    else: raise NotImplementedError(f"PTX: unary {op}")
    return o

  # ---------------------------------------------------------------- casts
  def cast(self, x: str, f: DType, t: DType) -> str:
    if f == t: return x
    if t == dtypes.bool:
      o = self.new("pred")
      if f in (dtypes.float16, dtypes.bfloat16): x, f = self.cast(x, f, dtypes.float32), dtypes.float32
      self.emit(f"setp.{'neu' if dtypes.is_float(f) else 'ne'}.{ITYPE[f]} {o}, {x}, {self.const(0, f)};")
      return o
    if f == dtypes.bool:
      o = self.newr(t)
      self.emit(f"selp.{self.selty(t)} {o}, {self.const(1, t)}, {self.const(0, t)}, {x};")
      return o
    if t in (dtypes.float16, dtypes.bfloat16):
      if f in (dtypes.float16, dtypes.bfloat16): x, f = self.cast(x, f, dtypes.float32), dtypes.float32
      if f != dtypes.float32: x, f = self.to_f32_odd(x, f), dtypes.float32
      o = self.new("b16")
      if t == dtypes.float16: self.emit(f"cvt.rn.f16.f32 {o}, {x};")
      elif self.sm >= 80: self.emit(f"cvt.rn.bf16.f32 {o}, {x};")
      else: self.f32_to_bf16_soft(x, o)
      return o
    if f in (dtypes.float16, dtypes.bfloat16):
      y = self.new("f32")
      if f == dtypes.float16: self.emit(f"cvt.f32.f16 {y}, {x};")
      else:
        w = self.new("b32")
        self.emit(f"cvt.u32.u16 {w}, {x};")
        self.emit(f"shl.b32 {w}, {w}, 16;")
        self.emit(f"mov.b32 {y}, {w};")
      return self.cast(y, dtypes.float32, t)
    if dtypes.is_float(f) and dtypes.is_float(t):
      o = self.newr(t)
      self.emit(f"cvt.f64.f32 {o}, {x};" if t == dtypes.float64 else f"cvt.rn.f32.f64 {o}, {x};")
      return o
    if dtypes.is_float(t):  # int -> float
      o = self.newr(t)
      self.emit(f"cvt.rn.{ITYPE[t]}.{ITYPE[f]} {o}, {x};")
      return o
    if dtypes.is_float(f):  # float -> int: truncate toward zero, saturate, NaN -> 0
      return self.float_to_int(x, f, t)
    # int -> int
    fb, tb = reg_bits(f), reg_bits(t)
    o = self.newr(t)
    if tb > fb: self.emit(f"cvt.{'u' if dtypes.is_unsigned(f) else 's'}{tb}.{ITYPE[f]} {o}, {x};")  # extends by the source's sign
    elif tb < fb: self.emit(f"cvt.u{tb}.u{fb} {o}, {x};")
    else: self.emit(f"mov.b{tb} {o}, {x};")
    if is_8bit(t) and not (is_8bit(f) and dtypes.is_unsigned(f) == dtypes.is_unsigned(t)): o = self.normalize(o, t)
    return o

  def float_to_int(self, x: str, f: DType, t: DType) -> str:
    ft = ITYPE[f]
    nan = self.new("pred")
    self.emit(f"setp.nan.{ft} {nan}, {x}, {x};")
    if reg_bits(t) >= 32:
      o, r = self.newr(t), self.newr(t)
      self.emit(f"cvt.rzi.{ITYPE[t]}.{ft} {r}, {x};")
      self.emit(f"selp.b{reg_bits(t)} {o}, 0, {r}, {nan};")
      return o
    # 8/16-bit targets: saturate in 32 bits, then clamp to the target's range and truncate
    w, o = self.new("b32"), self.new("b16")
    unsigned = dtypes.is_unsigned(t)
    self.emit(f"cvt.rzi.{'u' if unsigned else 's'}32.{ft} {w}, {x};")
    self.emit(f"selp.b32 {w}, 0, {w}, {nan};")
    if unsigned: self.emit(f"min.u32 {w}, {w}, {dtypes.max(t)};")
    else:
      self.emit(f"min.s32 {w}, {w}, {dtypes.max(t)};")
      self.emit(f"max.s32 {w}, {w}, {dtypes.min(t)};")
    self.emit(f"cvt.u16.u32 {o}, {w};")
    return o

  def to_f32_odd(self, x: str, f: DType) -> str:
    """x (float64 or a wide int) -> float32 rounded to odd, so a second rounding to half/bfloat16 is exact."""
    if f in (dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.uint16):
      o = self.new("f32")
      self.emit(f"cvt.rn.f32.{ITYPE[f]} {o}, {x};")
      return o
    r, back, p, bits = self.new("f32"), self.newr(f), self.new("pred"), self.new("b32")
    self.emit(f"cvt.rz.f32.{ITYPE[f]} {r}, {x};")
    if f == dtypes.float64:
      self.emit(f"cvt.f64.f32 {back}, {r};")
      self.emit(f"setp.neu.f64 {p}, {back}, {x};")
    else:
      self.emit(f"cvt.rzi.{ITYPE[f]}.f32 {back}, {r};")
      self.emit(f"setp.ne.{ITYPE[f]} {p}, {back}, {x};")
    self.emit(f"mov.b32 {bits}, {r};")
    t = self.new("b32")
    self.emit(f"or.b32 {t}, {bits}, 1;")
    self.emit(f"selp.b32 {bits}, {t}, {bits}, {p};")
    o = self.new("f32")
    self.emit(f"mov.b32 {o}, {bits};")
    return o

  def f32_to_bf16_soft(self, x: str, o: str) -> None:
    """Round-to-nearest-even float32 -> bfloat16 with integer ops (sm_75 has no cvt.rn.bf16.f32); NaN -> 0x7FC0."""
    b, t, p = self.new("b32"), self.new("b32"), self.new("pred")
    self.emit(f"mov.b32 {b}, {x};")
    self.emit(f"shr.u32 {t}, {b}, 16;")
    self.emit(f"and.b32 {t}, {t}, 1;")
    self.emit(f"add.s32 {t}, {t}, 32767;")
    self.emit(f"add.s32 {t}, {t}, {b};")
    self.emit(f"shr.u32 {t}, {t}, 16;")
    self.emit(f"setp.nan.f32 {p}, {x}, {x};")
    self.emit(f"selp.b32 {t}, 32704, {t}, {p};")
    self.emit(f"cvt.u16.u32 {o}, {t};")

  # ---------------------------------------------------------------- transcendentals
  def horner(self, dt: DType, z: str, coeffs: list[float]) -> str:
    """c0 + z*(c1 + z*(c2 + ...)) with fma."""
    t = ITYPE[dt]
    acc = self.newr(dt)
    self.emit(f"mov.{t} {acc}, {imm(coeffs[-1], dt)};")
    for c in reversed(coeffs[:-1]):
      self.emit(f"fma.rn.{t} {acc}, {acc}, {z}, {imm(c, dt)};")
    return acc

  def exp2_f64(self, x: str) -> str:
    """2**x in float64: n = rint(x), f = x - n in [-1/2, 1/2], 2**f = exp(f*ln2) as a degree-14 polynomial,
    then scaled by 2**n in two steps (so subnormal results round once)."""
    xc, n, f, p = self.new("f64"), self.new("f64"), self.new("f64"), self.new("pred")
    self.emit(f"max.f64 {xc}, {x}, {imm(-1100.0, dtypes.float64)};")
    self.emit(f"min.f64 {xc}, {xc}, {imm(1100.0, dtypes.float64)};")
    self.emit(f"cvt.rni.f64.f64 {n}, {xc};")
    self.emit(f"sub.rn.f64 {f}, {xc}, {n};")
    ln2 = math.log(2)
    poly = self.horner(dtypes.float64, f, [ln2 ** k / math.factorial(k) for k in range(15)])
    ni, n1, n2, e1, e2 = self.new("b32"), self.new("b32"), self.new("b32"), self.new("b64"), self.new("b64")
    self.emit(f"cvt.rni.s32.f64 {ni}, {n};")
    self.emit(f"shr.s32 {n1}, {ni}, 1;")
    self.emit(f"sub.s32 {n2}, {ni}, {n1};")
    s1, s2 = self.new("f64"), self.new("f64")
    for nn, e, s in ((n1, e1, s1), (n2, e2, s2)):
      self.emit(f"add.s32 {nn}, {nn}, 1023;")
      self.emit(f"cvt.u64.u32 {e}, {nn};")
      self.emit(f"shl.b64 {e}, {e}, 52;")
      self.emit(f"mov.b64 {s}, {e};")
    r, o = self.new("f64"), self.new("f64")
    self.emit(f"mul.rn.f64 {r}, {poly}, {s1};")
    self.emit(f"mul.rn.f64 {r}, {r}, {s2};")
    self.emit(f"setp.nan.f64 {p}, {x}, {x};")
    self.emit(f"selp.f64 {o}, {x}, {r}, {p};")
    return o

  def log2(self, dt: DType, x: str) -> str:
    """log2(x) = e + log2(m), m in [sqrt(1/2), sqrt(2)): log(m) = 2 atanh(s), s = (m-1)/(m+1), an odd series in s."""
    t = ITYPE[dt]
    f64 = dt == dtypes.float64
    ibits, mbits, bias = (64, 52, 1023) if f64 else (32, 23, 127)
    icls = "b64" if f64 else "b32"
    # subnormals: scale up by 2**k first
    k = 54 if f64 else 25
    tiny, xs, p = self.newr(dt), self.newr(dt), self.new("pred")
    self.emit(f"setp.lt.{t} {p}, {x}, {imm(2.0 ** (-1022 if f64 else -126), dt)};")
    self.emit(f"mul.rn.{t} {tiny}, {x}, {imm(2.0 ** k, dt)};")
    self.emit(f"selp.{t} {xs}, {tiny}, {x}, {p};")
    eadj = self.newr(dt)
    self.emit(f"selp.{t} {eadj}, {imm(-float(k), dt)}, {imm(0.0, dt)}, {p};")
    b, e, mb = self.new(icls), self.new(icls), self.new(icls)
    self.emit(f"mov.b{ibits} {b}, {xs};")
    self.emit(f"shr.u{ibits} {e}, {b}, {mbits};")
    self.emit(f"and.b{ibits} {e}, {e}, {(1 << (ibits - mbits - 1)) - 1:#x};")
    self.emit(f"and.b{ibits} {mb}, {b}, {(1 << mbits) - 1:#x};")
    self.emit(f"or.b{ibits} {mb}, {mb}, {bias << mbits:#x};")
    m, ef = self.newr(dt), self.newr(dt)
    self.emit(f"mov.b{ibits} {m}, {mb};")
    self.emit(f"cvt.rn.{t}.s{ibits} {ef}, {e};")
    self.emit(f"sub.rn.{t} {ef}, {ef}, {imm(float(bias), dt)};")
    self.emit(f"add.rn.{t} {ef}, {ef}, {eadj};")
    # m in [1, 2): if m > sqrt(2), m /= 2 and e += 1
    big, mh, e1 = self.new("pred"), self.newr(dt), self.newr(dt)
    self.emit(f"setp.gt.{t} {big}, {m}, {imm(math.sqrt(2.0), dt)};")
    self.emit(f"mul.rn.{t} {mh}, {m}, {imm(0.5, dt)};")
    self.emit(f"selp.{t} {m}, {mh}, {m}, {big};")
    self.emit(f"add.rn.{t} {e1}, {ef}, {imm(1.0, dt)};")
    self.emit(f"selp.{t} {ef}, {e1}, {ef}, {big};")
    num, den, s, z = self.newr(dt), self.newr(dt), self.newr(dt), self.newr(dt)
    self.emit(f"sub.rn.{t} {num}, {m}, {imm(1.0, dt)};")
    self.emit(f"add.rn.{t} {den}, {m}, {imm(1.0, dt)};")
    self.emit(f"div.rn.{t} {s}, {num}, {den};")
    self.emit(f"mul.rn.{t} {z}, {s}, {s};")
    nterms = 11 if f64 else 6
    c = 2.0 / math.log(2.0)
    poly = self.horner(dt, z, [c / (2 * i + 1) for i in range(nterms)])
    r = self.newr(dt)
    self.emit(f"mul.rn.{t} {r}, {s}, {poly};")
    self.emit(f"add.rn.{t} {r}, {r}, {ef};")
    # specials: x == 0 -> -inf, x < 0 -> nan, x == inf -> inf, nan -> nan
    q = self.new("pred")
    for cond, val in ((f"setp.eq.{t} {q}, {x}, {imm(0.0, dt)};", -math.inf), (f"setp.lt.{t} {q}, {x}, {imm(0.0, dt)};", math.nan),
                      (f"setp.eq.{t} {q}, {x}, {imm(math.inf, dt)};", math.inf)):
      self.emit(cond)
      self.emit(f"selp.{t} {r}, {imm(val, dt)}, {r}, {q};")
    self.emit(f"setp.nan.{t} {q}, {x}, {x};")
    self.emit(f"selp.{t} {r}, {x}, {r}, {q};")
    return r

  def sin(self, dt: DType, x: str) -> str:
    """sin(x): k = rint(x*2/pi), r = x - k*pi/2 with pi/2 split in three doubles (fma, float64), then the sin or cos
    Taylor polynomial on [-pi/4, pi/4] chosen and signed by k mod 4. float32 inputs are reduced in float64 too."""
    xd = x
    if dt == dtypes.float32:
      xd = self.new("f64")
      self.emit(f"cvt.f64.f32 {xd}, {x};")
    D = dtypes.float64
    k, r = self.new("f64"), self.new("f64")
    self.emit(f"mul.rn.f64 {k}, {xd}, {imm(2.0 / math.pi, D)};")
    self.emit(f"cvt.rni.f64.f64 {k}, {k};")
    nk = self.new("f64")
    self.emit(f"neg.f64 {nk}, {k};")
    c1 = 1.5707963267948966          # pi/2 split into three doubles: c1 + c2 + c3 ~ pi/2 to ~160 bits
    c2 = 6.123233995736766e-17
    c3 = -1.4973849048591698e-33
    self.emit(f"fma.rn.f64 {r}, {nk}, {imm(c1, D)}, {xd};")
    self.emit(f"fma.rn.f64 {r}, {nk}, {imm(c2, D)}, {r};")
    self.emit(f"fma.rn.f64 {r}, {nk}, {imm(c3, D)}, {r};")
    z = self.new("f64")
    self.emit(f"mul.rn.f64 {z}, {r}, {r};")
    ns, nc = (9, 10) if dt == dtypes.float64 else (6, 7)
    sp = self.horner(D, z, [(-1) ** i / math.factorial(2 * i + 1) for i in range(ns)])
    sv = self.new("f64")
    self.emit(f"mul.rn.f64 {sv}, {sp}, {r};")
    cv = self.horner(D, z, [(-1) ** i / math.factorial(2 * i) for i in range(nc)])
    # quadrant
    ki, q, p1, p2 = self.new("b64"), self.new("b64"), self.new("pred"), self.new("pred")
    self.emit(f"cvt.rzi.s64.f64 {ki}, {k};")
    self.emit(f"and.b64 {q}, {ki}, 3;")
    v, nv = self.new("f64"), self.new("f64")
    self.emit(f"and.b64 {ki}, {q}, 1;")
    self.emit(f"setp.ne.s64 {p1}, {ki}, 0;")
    self.emit(f"selp.f64 {v}, {cv}, {sv}, {p1};")
    self.emit(f"and.b64 {ki}, {q}, 2;")
    self.emit(f"setp.ne.s64 {p2}, {ki}, 0;")
    self.emit(f"neg.f64 {nv}, {v};")
    self.emit(f"selp.f64 {v}, {nv}, {v}, {p2};")
    if dt == dtypes.float32:
      o = self.new("f32")
      self.emit(f"cvt.rn.f32.f64 {o}, {v};")
      return o
    return v

def prog_nodes(b: Block):
  for it in b.items:
    if isinstance(it, Block): yield from prog_nodes(it)
    else: yield it
