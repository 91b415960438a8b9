"""A small PTX interpreter for the subset codegen/ptx.py emits, so kernel semantics (GPU index mapping, casts,
guards, loops) are tested without a GPU. Registers hold raw bit patterns (PTX registers are untyped storage); each
instruction reads its operands as its type suffix says. Every thread runs to completion on its own (the renderer
emits no barriers). Float32 math uses numpy float32 scalars (IEEE rounding), float64 fma is computed exactly.

It models PTX as documented, so it checks the renderer's logic (index math, guards, normalisation, rounding steps),
not the hardware; it raises on anything the ISA leaves unspecified (integer division by zero, MIN/-1) so an
unguarded case fails loudly.
"""
from __future__ import annotations
import math, re, struct
from fractions import Fraction
import numpy as np

class PTXEmuError(Exception): pass

SHARED_BASE = 0x100
REG_WIDTH = {"%p": 1, "%rs": 16, "%r": 32, "%rd": 64, "%f": 32, "%fd": 64}

def _regwidth(name: str) -> int:
  m = re.match(r"(%[a-z]+)\d+$", name)
  if not m or m.group(1) not in REG_WIDTH: raise PTXEmuError(f"unknown register {name}")
  return REG_WIDTH[m.group(1)]

def tbits(ty: str) -> int:
  if ty == "pred": return 1
  if ty == "bf16": return 16
  return int(ty[1:])

def to_val(bits: int, ty: str):
  n = tbits(ty)
  bits &= (1 << n) - 1
  if ty[0] == "s": return bits - (1 << n) if bits >> (n - 1) else bits
  if ty[0] in "ub": return bits
  if ty == "f32": return np.frombuffer(struct.pack("<I", bits), np.float32)[0]
  if ty == "f64": return np.frombuffer(struct.pack("<Q", bits), np.float64)[0]
  if ty == "f16": return np.frombuffer(struct.pack("<H", bits), np.float16)[0]
  raise PTXEmuError(f"type {ty}")

def from_val(v, ty: str) -> int:
  if ty == "f32": return struct.unpack("<I", np.float32(v).tobytes())[0]
  if ty == "f64": return struct.unpack("<Q", np.float64(v).tobytes())[0]
  if ty == "f16": return struct.unpack("<H", np.float16(v).tobytes())[0]
  return int(v) & ((1 << tbits(ty)) - 1)

def round_int(x: int, mant: int, mode: str) -> float:
  """The int x rounded to a float with `mant` significant bits (rn: nearest even, rz: toward zero)."""
  if x == 0: return 0.0
  s, a = (-1 if x < 0 else 1), abs(x)
  sh = a.bit_length() - mant
  if sh > 0:
    q, r = a >> sh, a & ((1 << sh) - 1)
    if mode == "rn" and (r > (1 << (sh - 1)) or (r == (1 << (sh - 1)) and q & 1)): q += 1
    a = q << sh
  return s * float(a)

def f32_rz(x: float) -> np.float32:
  f = np.float32(x)
  if np.isnan(x): return f
  if abs(float(f)) > abs(x): f = np.nextafter(f, np.float32(0))
  return f

def fma64(a, b, c):
  a, b, c = float(a), float(b), float(c)
  if not all(map(math.isfinite, (a, b, c))): return np.float64(a * b + c)
  r = Fraction(a) * Fraction(b) + Fraction(c)
  if r == 0: return np.float64(a * b + c)  # the sign of an exact zero
  try: return np.float64(float(r))
  except OverflowError: return np.float64(math.inf if r > 0 else -math.inf)

def fma32(a, b, c):
  return np.float32(fma64(float(a), float(b), float(c))) if all(map(math.isfinite, (float(a), float(b), float(c)))) else np.float32(np.float32(a) * np.float32(b) + np.float32(c))

def _sat(v: float, ty: str) -> int:
  n = tbits(ty)
  lo, hi = (0, (1 << n) - 1) if ty[0] == "u" else (-(1 << (n - 1)), (1 << (n - 1)) - 1)
  if math.isnan(v): return 0
  if v == math.inf: return hi
  if v == -math.inf: return lo
  return max(lo, min(hi, int(v)))

class Kernel:
  def __init__(self, src: str):
    self.src = src
    body = src[src.index("{") + 1: src.rindex("}")]
    m = re.search(r"\.entry\s+(\w+)\(([^)]*)\)", src)
    if not m: raise PTXEmuError("no .entry")
    self.name = m.group(1)
    self.params = [p.split()[-1] for p in m.group(2).split(",") if p.strip()]
    self.ins: list[tuple] = []
    self.labels: dict[str, int] = {}
    self.shared: dict[str, int] = {}    # .shared array -> offset in the block's shared memory
    self.shared_size = 0
    for line in body.splitlines():
      line = line.split("//")[0].strip()
      if line.startswith(".shared"):
        m = re.fullmatch(r"\.shared\s+\.align\s+(\d+)\s+\.b8\s+(\w+)\[(\d+)\];", line)
        if not m: raise PTXEmuError(f"shared declaration {line}")
        al = int(m.group(1))
        self.shared_size = (self.shared_size + al - 1) // al * al
        self.shared[m.group(2)] = SHARED_BASE + self.shared_size
        self.shared_size += int(m.group(3))
        continue
      if not line or line.startswith(".reg"): continue
      if line.endswith(":"): self.labels[line[:-1]] = len(self.ins); continue
      assert line.endswith(";"), line
      line = line[:-1]
      pred = None
      if line.startswith("@"):
        p, line = line.split(None, 1)
        pred = (p[1:].lstrip("!"), p.startswith("@!"))
      parts = line.split(None, 1)
      opcode, ops = parts[0], ([o.strip() for o in re.split(r",(?![^{]*})", parts[1])] if len(parts) > 1 else [])
      self.ins.append((pred, opcode.split("."), ops))

  def run(self, params: list[int], mem: "Memory", grid: tuple, block: tuple, max_steps: int = 10 ** 7) -> None:
    mem.written = {}
    for bx in range(grid[0]):
      shared = Memory()
      if self.shared_size: shared.bufs.append((SHARED_BASE, np.zeros(self.shared_size, np.uint8)))
      gens = {tx: self.thread(params, mem, shared, bx, tx, block[0], max_steps) for tx in range(block[0])}
      at: dict[int, tuple] = {}
      def resume(tx, val=None):
        mem.thread = (bx, tx)
        try: at[tx] = gens[tx].send(val)
        except StopIteration: at.pop(tx, None); gens.pop(tx)
      for tx in list(gens): resume(tx)
      while at:
        warps: dict[int, list[int]] = {}
        for tx, ev in at.items():
          if ev[0] == "shfl": warps.setdefault(tx // 32, []).append(tx)
        full = [w for w, txs in warps.items() if len(txs) == 32]
        if full:
          for w in full:
            txs = sorted(warps[w])
            offs = {at[t][2] for t in txs}
            if len(offs) != 1: raise PTXEmuError(f"warp {w}: lanes shuffle with different offsets {offs}")
            off, vals = offs.pop(), {t % 32: at[t][1] for t in txs}
            for t in txs: resume(t, vals[(t % 32) ^ off])
          continue
        if all(ev[0] == "bar" for ev in at.values()):
          if len(at) != block[0]: raise PTXEmuError(f"bar.sync reached by {len(at)} of {block[0]} threads (others exited)")
          for tx in list(at): resume(tx)
          continue
        raise PTXEmuError(f"block {bx}: threads stuck at different sync points: {sorted(set(ev[0] for ev in at.values()))}")

  def thread(self, params, mem, shared, ctaid, tid, ntid, max_steps):
    regs: dict[str, int] = {}
    special = {"%ctaid.x": ctaid, "%tid.x": tid, "%ntid.x": ntid}
    def rd(op: str, ty: str):
      if op in special: return special[op]
      if op in self.shared: return self.shared[op]
      if op.startswith("%"):
        if op not in regs: raise PTXEmuError(f"read of unset register {op}")
        return to_val(regs[op], ty) if ty != "pred" else regs[op]
      if ty == "pred": return bool(int(op))
      if op.startswith("0f"): return to_val(int(op[2:], 16), "f32") if ty == "f32" else to_val(int(op[2:], 16), ty)
      if op.startswith("0d"): return to_val(int(op[2:], 16), "f64")
      v = int(op, 16) if op.lower().startswith(("0x", "-0x")) else int(op)
      if ty[0] in "fb" and ty not in ("b16", "b32", "b64"): raise PTXEmuError(f"int immediate {op} for {ty}")
      return to_val(v & ((1 << tbits(ty)) - 1), ty) if ty[0] in "sub" else v
    def wr(op: str, v, ty: str):
      if ty == "pred": regs[op] = bool(v); return
      w = _regwidth(op)
      b = from_val(v, ty)
      n = tbits(ty)
      if w > n and ty[0] == "s" and b >> (n - 1): b |= ((1 << w) - 1) ^ ((1 << n) - 1)   # sign-extend into the register
      regs[op] = b & ((1 << w) - 1)
    def addr(op: str) -> int:
      m = re.fullmatch(r"\[(%\w+)(?:\+(-?\d+))?\]", op)
      if not m: raise PTXEmuError(f"address {op}")
      return rd(m.group(1), "u64") + int(m.group(2) or 0)
    pc, steps = 0, 0
    ins, labels = self.ins, self.labels
    while pc < len(ins):
      steps += 1
      if steps > max_steps: raise PTXEmuError("step limit")
      pred, opc, ops = ins[pc]
      pc += 1
      if pred is not None:
        pv = regs[pred[0]]
        if pv == pred[1]: continue
      o = opc[0]
      ty = opc[-1]
      if o == "ret": return
      if o == "bra": pc = labels[ops[0]]; continue
      if o == "bar":
        yield ("bar",)
        continue
      if o == "shfl":
        assert opc[1:3] == ["sync", "bfly"] and ty == "b32" and ops[3] == "0x1f" and ops[4] == "0xffffffff", opc
        wr(ops[0], (yield ("shfl", rd(ops[1], "b32"), int(ops[2], 0))), "b32")
        continue
      if o in ("ld", "st") and opc[1] not in ("global", "shared", "param"): raise PTXEmuError(f"state space {opc[1]}")
      space = shared if o in ("ld", "st") and opc[1] == "shared" else mem
      if o == "ld":
        if opc[1] == "param": wr(ops[0], params[self.params.index(ops[1].strip("[]"))], "u64"); continue
        wr(ops[0], space.load(addr(ops[1]), ty), ty if ty != "bf16" else "b16"); continue
      if o == "st": space.store(addr(ops[0]), rd(ops[1], ty if ty[0] != "f" or ty == "f32" or ty == "f64" else "b16"), ty); continue
      if o == "cvta": wr(ops[0], rd(ops[1], "u64"), "u64"); continue
      if o == "mov":
        if ty == "pred": wr(ops[0], rd(ops[1], "pred"), "pred"); continue
        if ops[0].startswith("{"):   # mov.b64 {lo, hi}, x
          lo, hi = [x.strip() for x in ops[0].strip("{}").split(",")]
          v = regs[ops[1]]
          wr(lo, v & 0xFFFFFFFF, "b32"); wr(hi, v >> 32, "b32")
          continue
        if ops[1].startswith("{"):   # mov.b64 x, {lo, hi}
          lo, hi = [x.strip() for x in ops[1].strip("{}").split(",")]
          wr(ops[0], (regs[lo] & 0xFFFFFFFF) | (regs[hi] & 0xFFFFFFFF) << 32, "b64")
          continue
        bt, src = "b" + str(tbits(ty)), ops[1]
        if src in special: bits = special[src]
        elif src.startswith("%"):
          if src not in regs: raise PTXEmuError(f"read of unset register {src}")
          bits = regs[src] & ((1 << tbits(ty)) - 1)
        else: bits = from_val(rd(src, ty), ty) if ty[0] == "f" else rd(src, bt)
        wr(ops[0], bits, bt)
        continue
      if o == "setp": wr(ops[0], self.setp(opc[1], ty, rd(ops[1], ty), rd(ops[2], ty)), "pred"); continue
      if o == "selp": wr(ops[0], rd(ops[1], ty) if rd(ops[3], "pred") else rd(ops[2], ty), ty); continue
      if o == "cvt": self.cvt(opc, ops, rd, wr); continue
      if ty == "pred":
        if o == "not": wr(ops[0], not rd(ops[1], "pred"), "pred")
        else:
          a, b = rd(ops[1], "pred"), rd(ops[2], "pred")
          wr(ops[0], {"and": a and b, "or": a or b, "xor": a != b}[o], "pred")
        continue
      if o in ("mad", "mul") and opc[1] == "wide":
        src = ty
        dst = ty[0] + str(2 * tbits(ty))
        v = rd(ops[1], src) * rd(ops[2], src)
        if o == "mad": v += rd(ops[3], dst)
        wr(ops[0], v, dst); continue
      if o == "mul" and opc[1] == "hi":
        n = tbits(ty)
        wr(ops[0], (rd(ops[1], ty) * rd(ops[2], ty)) >> n, ty); continue
      srcs = [rd(x, ty) for x in ops[1:]]
      wr(ops[0], self.alu(o, opc, ty, srcs), ty)
    raise PTXEmuError("fell off the end of the kernel")

  @staticmethod
  def setp(cmp: str, ty: str, a, b) -> bool:
    if ty[0] == "f":
      a, b = float(a), float(b)
      nan = math.isnan(a) or math.isnan(b)
      if cmp == "nan": return nan
      if cmp.endswith("u") and cmp != "nan": return nan or Kernel.setp(cmp[:-1], ty, a, b)
      if nan: return False
    return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b, "ne": a != b}[cmp]

  @staticmethod
  def alu(o: str, opc: list[str], ty: str, s: list):
    isf = ty[0] == "f"
    with np.errstate(all="ignore"):
      if o == "add": return s[0] + s[1]
      if o == "sub": return s[0] - s[1]
      if o == "mul": return s[0] * s[1]
      if o == "mad": return s[0] * s[1] + s[2]
      if o == "neg": return -s[0]
      if o == "fma": return fma32(*s) if ty == "f32" else fma64(*s)
      if o in ("max", "min"):
        if isf:
          a, b = s
          if math.isnan(a) or math.isnan(b):
            if "NaN" in opc: return a + b
            return b if math.isnan(a) else a
          if a == b == 0: return (a if math.copysign(1, a) > 0 else b) if o == "max" else (a if math.copysign(1, a) < 0 else b)
        return max(s) if o == "max" else min(s)
      if o in ("div", "rem"):
        a, b = s
        if isf: return a / b
        if b == 0: raise PTXEmuError(f"{o}.{ty} by zero")
        n = tbits(ty)
        if ty[0] == "s" and a == -(1 << (n - 1)) and b == -1: raise PTXEmuError(f"{o}.{ty} MIN/-1")
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return q if o == "div" else a - b * q
      if o == "and": return s[0] & s[1]
      if o == "or": return s[0] | s[1]
      if o == "xor": return s[0] ^ s[1]
      if o == "not": return ~s[0]
      if o == "shl": return s[0] << min(s[1], tbits(ty)) if s[1] < tbits(ty) else 0
      if o == "shr":
        n = tbits(ty)
        amt = min(s[1], n)
        if ty[0] == "s": return s[0] >> amt if amt < n else (-1 if s[0] < 0 else 0)
        return s[0] >> amt if amt < n else 0
      if o == "sqrt": return np.sqrt(s[0])
      if o == "rcp": return (np.float32(1) if ty == "f32" else np.float64(1)) / s[0]
      if o == "ex2": return np.float32(np.exp2(np.float64(s[0])))
    raise PTXEmuError(f"unsupported instruction {'.'.join(opc)}")

  @staticmethod
  def cvt(opc, ops, rd, wr):
    with np.errstate(all="ignore"): Kernel._cvt(opc, ops, rd, wr)

  @staticmethod
  def _cvt(opc, ops, rd, wr):
    mods = opc[1:]
    dty, sty = mods[-2], mods[-1]
    rnd = mods[0] if len(mods) == 3 else None
    if sty == "bf16": raise PTXEmuError("cvt from bf16 is not emitted")
    v = rd(ops[1], sty if sty != "bf16" else "b16")
    if dty[0] in "su" and sty[0] in "su":
      wr(ops[0], v, dty); return
    if dty[0] == "f" or dty == "bf16":
      if sty[0] in "su":
        mant = {"f32": 24, "f64": 53, "f16": 11}[dty]
        r = round_int(v, mant, rnd or "rn")
        wr(ops[0], np.float32(r) if dty == "f32" else r, dty); return
      x = float(v)
      if dty == sty:  # rounding to an integer in the same format
        r = {"rzi": math.trunc, "rni": lambda y: np.rint(y), "rmi": math.floor, "rpi": math.ceil}[rnd](x) if math.isfinite(x) else x
        wr(ops[0], r, dty); return
      if dty == "f64": wr(ops[0], x, "f64"); return
      if dty == "f32":
        wr(ops[0], f32_rz(x) if rnd == "rz" else np.float32(x), "f32"); return
      if dty == "f16": wr(ops[0], np.float16(np.float32(x)), "f16"); return
      if dty == "bf16":
        import ml_dtypes
        wr(ops[0], struct.unpack("<H", np.array(np.float32(x)).astype(ml_dtypes.bfloat16).tobytes())[0], "b16"); return
    if dty[0] in "su":  # float -> int
      x = float(v)
      r = {"rzi": math.trunc, "rni": lambda y: int(np.rint(y))}[rnd](x) if math.isfinite(x) else x
      wr(ops[0], _sat(r, dty), dty); return
    raise PTXEmuError(f"cvt {'.'.join(opc)}")

class Memory:
  """Buffers at fake device addresses."""
  def __init__(self):
    self.bufs: list[tuple[int, np.ndarray]] = []
    self.written: dict[int, tuple] = {}   # address -> the thread that stored it (this kernel run): races are errors
    self.thread: tuple = (0, 0)
  def _race(self, a: int, n: int, what: str) -> None:
    for x in range(a, a + n):
      if (t := self.written.get(x)) is not None and t != self.thread:
        raise PTXEmuError(f"race: thread {self.thread} {what} {x:#x}, stored by thread {t}")
  def add(self, arr: np.ndarray) -> int:
    base = (len(self.bufs) + 1) << 32
    self.bufs.append((base, arr.view(np.uint8).reshape(-1)))
    return base
  def _find(self, a: int, n: int) -> tuple[np.ndarray, int]:
    for base, b in self.bufs:
      if base <= a and a + n <= base + len(b): return b, a - base
    raise PTXEmuError(f"out-of-bounds access at {a:#x} ({n} bytes)")
  def load(self, a: int, ty: str):
    n = max(1, tbits(ty) // 8)
    b, off = self._find(a, n)
    if a % n: raise PTXEmuError(f"misaligned {ty} access at {a:#x}")
    self._race(a, n, "loads")
    raw = int.from_bytes(bytes(b[off:off + n]), "little")
    if ty[0] == "s": return to_val(raw, ty)
    if ty in ("f32", "f64"): return to_val(raw, ty)
    return raw
  def store(self, a: int, v, ty: str) -> None:
    n = max(1, tbits(ty) // 8)
    b, off = self._find(a, n)
    if a % n: raise PTXEmuError(f"misaligned {ty} access at {a:#x}")
    self._race(a, n, "stores")
    for x in range(a, a + n): self.written[x] = self.thread
    raw = from_val(v, ty) if ty in ("f32", "f64") else int(v) & ((1 << (8 * n)) - 1)
    b[off:off + n] = np.frombuffer(raw.to_bytes(n, "little"), np.uint8)
