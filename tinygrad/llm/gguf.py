"""GGUF, llama.cpp's weight format: metadata and tensors, quantised blocks dequantised to float32 in a kernel.

Layout (v2 and v3, little-endian): b"GGUF", uint32 version, uint64 tensor count, uint64 metadata count; each metadata
entry is a string key, a uint32 value type and the value (strings are a uint64 length and UTF-8 bytes, arrays a uint32
element type, a uint64 count and the elements); each tensor is a name, uint32 n_dims, n_dims uint64 dims (fastest
varying first, so the Tensor shape is reversed), a uint32 ggml type and a uint64 offset into the data section, which
starts at the next multiple of general.alignment (default 32) after the tensor infos.

Quantised types are blocks of a fixed number of elements; see the dequantisers below for each block's bytes.
"""
from __future__ import annotations
import pathlib, struct
from typing import Any, Callable
from tinygrad.tensor import Tensor
from tinygrad.dtype import DType, dtypes
from tinygrad.helpers import prod, round_up
from tinygrad.nn.state import _Source, _decode

_VALUE_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9

class _Reader:
  """Little-endian values from a _Source, with errors that name the file and what was being read."""
  def __init__(self, src: _Source): self.src, self.f = src, src.open()
  def take(self, n: int, what: str) -> bytes:
    if n > self.src.size - self.f.tell():
      raise ValueError(self.src.error(f"{what} needs {n} bytes at offset {self.f.tell()}, but the file has {self.src.size} (truncated or corrupt)"))
    return self.f.read(n)
  def unpack(self, fmt: str, what: str) -> tuple:
    return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))
  def one(self, fmt: str, what: str) -> Any: return self.unpack(fmt, what)[0]
  def string(self, what: str) -> str:
    raw = self.take(self.one("Q", what), what)
    try: return raw.decode("utf-8")
    except UnicodeDecodeError as e: raise ValueError(self.src.error(f"{what} is not UTF-8 ({e})")) from None
  def value(self, vtype: int, what: str) -> Any:
    if vtype in _VALUE_FORMATS: return self.one(_VALUE_FORMATS[vtype], what)
    if vtype == _STRING: return self.string(what)
    if vtype == _ARRAY:
      etype, n = self.unpack("IQ", what)
      if etype in _VALUE_FORMATS:  # one unpack for the whole array (token scores can be 100k floats)
        fmt = _VALUE_FORMATS[etype]
        return list(struct.unpack(f"<{n}{fmt}", self.take(n * struct.calcsize(fmt), what)))
      return [self.value(etype, what) for _ in range(n)]
    raise ValueError(self.src.error(f"{what} has value type {vtype}, expected one of 0..12 (GGUF metadata types)"))

# ---------------------------------------------------------------- dequantisation: (blocks, block bytes) uint8 -> (blocks, elements) float32

def _f16(b: Tensor) -> Tensor: return _decode(b, dtypes.float16).cast(dtypes.float32)  # (..., 2) bytes -> (..., 1)
def _shifts(x: Tensor, n: int, step: int) -> Tensor:
  """(n, 1) shift amounts 0, step, 2*step, ... of x's dtype, for taking fields out of x's bytes or words."""
  return (Tensor.arange(n, dtype=x.dtype, device=x.device) * step).reshape(n, 1)
def _nibbles(q: Tensor) -> Tensor:
  """(..., k) bytes -> (..., 2, k): the low nibbles, then the high nibbles."""
  return (q.unsqueeze(-2).expand(q.shape[:-1] + (2, q.shape[-1])) >> _shifts(q, 2, 4)) & 0xF
def _bits(word: Tensor, n: int) -> Tensor:
  """(..., 1) words -> (..., n): bit i of each word."""
  return (word >> _shifts(word, n, 1).reshape(n)) & 1

def _q8_0(b: Tensor) -> Tensor:  # f16 d, 32 int8 q: d*q
  return _f16(b[:, 0:2]) * b[:, 2:34].bitcast(dtypes.int8).cast(dtypes.float32)
def _q4_0(b: Tensor) -> Tensor:  # f16 d, 16 bytes: element j is the low nibble of byte j, element 16+j its high nibble: d*(q-8)
  return _f16(b[:, 0:2]) * (_nibbles(b[:, 2:18]).reshape(-1, 32).cast(dtypes.float32) - 8)
def _q4_1(b: Tensor) -> Tensor:  # f16 d, f16 m, 16 bytes of nibbles as Q4_0: d*q+m
  return _f16(b[:, 0:2]) * _nibbles(b[:, 4:20]).reshape(-1, 32).cast(dtypes.float32) + _f16(b[:, 2:4])
def _q5(b: Tensor, qh_at: int) -> Tensor:  # the nibbles as Q4_0 plus a 5th bit: bit j of the uint32 qh for element j
  q = _nibbles(b[:, qh_at + 4:qh_at + 20]).reshape(-1, 32).cast(dtypes.uint32)
  return (q | (_bits(_decode(b[:, qh_at:qh_at + 4], dtypes.uint32), 32) << 4)).cast(dtypes.float32)
def _q5_0(b: Tensor) -> Tensor: return _f16(b[:, 0:2]) * (_q5(b, 2) - 16)  # f16 d, uint32 qh, 16 bytes: d*(q-16)
def _q5_1(b: Tensor) -> Tensor: return _f16(b[:, 0:2]) * _q5(b, 4) + _f16(b[:, 2:4])  # f16 d, f16 m, qh, 16 bytes: d*q+m

def _k_scales(s: Tensor) -> tuple[Tensor, Tensor]:
  """Q4_K/Q5_K's 12 bytes -> 8 six-bit scales and 8 six-bit mins. Sub-blocks 0-3: the low 6 bits of bytes 0-3 (scales)
  and 4-7 (mins); sub-blocks 4-7: the nibbles of bytes 8-11 (low: scale, high: min) below the top 2 bits of bytes 0-3
  (scales) and 4-7 (mins)."""
  a, m, c = s[:, 0:4], s[:, 4:8], s[:, 8:12]
  scales = (a & 63).cat((c & 15) | ((a >> 6) << 4), dim=1)
  mins = (m & 63).cat((c >> 4) | ((m >> 6) << 4), dim=1)
  return scales.cast(dtypes.float32).unsqueeze(-1), mins.cast(dtypes.float32).unsqueeze(-1)
def _q4_k(b: Tensor) -> Tensor:
  """f16 d, f16 dmin, 12 bytes of scales, 128 bytes: 8 sub-blocks of 32; sub-block 2i / 2i+1 are the low / high nibbles of
  bytes 32i..32i+31: d*scale*q - dmin*min."""
  scales, mins = _k_scales(b[:, 4:16])
  q = _nibbles(b[:, 16:144].reshape(-1, 4, 32)).reshape(-1, 8, 32).cast(dtypes.float32)
  return (_f16(b[:, 0:2]).unsqueeze(-1) * scales * q - _f16(b[:, 2:4]).unsqueeze(-1) * mins).reshape(-1, 256)
def _q5_k(b: Tensor) -> Tensor:
  """f16 d, f16 dmin, 12 bytes of scales, 32 bytes qh, 128 bytes of nibbles as Q4_K; element l of sub-block j has 5th bit
  bit j of qh[l]."""
  scales, mins = _k_scales(b[:, 4:16])
  q = _nibbles(b[:, 48:176].reshape(-1, 4, 32)).reshape(-1, 8, 32)
  hi = (b[:, 16:48].reshape(-1, 1, 32) >> _shifts(b, 8, 1)) & 1
  q = (q | (hi << 4)).cast(dtypes.float32)
  return (_f16(b[:, 0:2]).unsqueeze(-1) * scales * q - _f16(b[:, 2:4]).unsqueeze(-1) * mins).reshape(-1, 256)
def _q6_k(b: Tensor) -> Tensor:
  """128 bytes ql, 64 bytes qh, 16 int8 scales, f16 d. Two halves h of 128 elements, each four groups g of 32: element
  l of group g takes nibble g//2 of ql[64h + 32(g%2) + l] and bits 2g, 2g+1 of qh[32h + l]; scale 8h + 2g + l//16:
  d*scale*(q-32)."""
  nb = b.shape[0]
  low = _nibbles(b[:, 0:128].reshape(nb, 2, 2, 32)).transpose(2, 3).reshape(nb, 2, 4, 32)  # (half, nibble, chunk): g = 2*nibble + chunk
  hi = (b[:, 128:192].reshape(nb, 2, 1, 32) >> _shifts(b, 4, 2)) & 3
  q = (low | (hi << 4)).cast(dtypes.float32) - 32
  scales = b[:, 192:208].bitcast(dtypes.int8).cast(dtypes.float32).reshape(nb, 2, 4, 2, 1).expand(nb, 2, 4, 2, 16).reshape(nb, 2, 4, 32)
  return (_f16(b[:, 208:210]).reshape(-1, 1, 1, 1) * scales * q).reshape(-1, 256)

# ggml type -> (name, elements per block, bytes per block, dequantiser)
GGML_QUANTS: dict[int, tuple[str, int, int, Callable[[Tensor], Tensor]]] = {2: ("Q4_0", 32, 18, _q4_0), 3: ("Q4_1", 32, 20, _q4_1),
  6: ("Q5_0", 32, 22, _q5_0), 7: ("Q5_1", 32, 24, _q5_1), 8: ("Q8_0", 32, 34, _q8_0), 12: ("Q4_K", 256, 144, _q4_k),
  13: ("Q5_K", 256, 176, _q5_k), 14: ("Q6_K", 256, 210, _q6_k)}
GGML_DTYPES: dict[int, DType] = {0: dtypes.float32, 1: dtypes.float16, 24: dtypes.int8, 25: dtypes.int16, 26: dtypes.int32,
  27: dtypes.int64, 28: dtypes.float64, 30: dtypes.bfloat16}
_UNSUPPORTED = {9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
  20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"}

def gguf_load(tensor: Tensor | str | pathlib.Path) -> tuple[dict, dict[str, Tensor]]:
  """(metadata, tensors) of a GGUF file, given as its bytes in a uint8 Tensor or as a path. Metadata values are Python
  ints, floats, bools, strs and lists; F32/F16/BF16/F64/I8..I64 tensors keep their dtype, quantised ones are float32."""
  src = _Source(tensor, "gguf_load")
  r = _Reader(src)
  if (magic := r.take(4, "the magic")) != b"GGUF": raise ValueError(src.error(f"not a GGUF file: it starts with {magic!r}, expected b'GGUF'"))
  if (version := r.one("I", "the version")) not in (2, 3):
    raise ValueError(src.error(f"GGUF version {version} ({version:#x}), expected 2 or 3 (little-endian)"))
  n_tensors, n_kv = r.unpack("QQ", "the counts")
  kv: dict[str, Any] = {}
  for i in range(n_kv):
    key = r.string(f"metadata key {i}")
    kv[key] = r.value(r.one("I", f"the type of {key!r}"), f"metadata {key!r}")
  infos = []
  for i in range(n_tensors):
    name = r.string(f"tensor name {i}")
    dims = r.unpack(f"{r.one('I', f'tensor {name!r}')}Q", f"tensor {name!r}")
    infos.append((name, tuple(reversed(dims)), *r.unpack("IQ", f"tensor {name!r}")))
  align = kv.get("general.alignment", 32)
  if not isinstance(align, int) or align <= 0: raise ValueError(src.error(f"general.alignment is {align!r}, expected a positive integer"))
  data = round_up(r.f.tell(), align)
  out: dict[str, Tensor] = {}
  for name, shape, ggml_type, offset in infos:
    n, what = prod(shape), f"tensor {name!r} (shape {shape})"
    if (dt := GGML_DTYPES.get(ggml_type)) is not None:
      out[name] = _decode(src.tensor(data + offset, n * dt.itemsize, what), dt).reshape(shape)
    elif ggml_type in GGML_QUANTS:
      qname, per_block, nbytes, dequant = GGML_QUANTS[ggml_type]
      if n % per_block: raise ValueError(src.error(f"{what} is {qname} but has {n} elements, not a multiple of its {per_block}-element blocks"))
      blocks = src.tensor(data + offset, n // per_block * nbytes, what).reshape(n // per_block, nbytes)
      out[name] = dequant(blocks).reshape(shape)
    else:
      kind = _UNSUPPORTED.get(ggml_type, "unknown")
      supported = ", ".join([q[0] for q in GGML_QUANTS.values()] + ["F32, F16, BF16, F64, I8, I16, I32, I64"])
      raise ValueError(src.error(f"{what} has ggml type {ggml_type} ({kind}), which is not supported (supported: {supported})"))
  return kv, out
