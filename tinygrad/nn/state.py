"""State dicts and the safetensors format.

safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw
little-endian data. safe_save writes to a temporary file in the same directory and renames it over the target, so a
failed save never destroys the previous file.
"""
from __future__ import annotations
import json, os, struct, tempfile
from collections import OrderedDict
from typing import Any
from tinygrad.tensor import Tensor
from tinygrad.dtype import DType, dtypes, to_np_dtype

SAFE_DTYPES: dict[str, DType] = {"F16": dtypes.float16, "BF16": dtypes.bfloat16, "F32": dtypes.float32, "F64": dtypes.float64,
  "I8": dtypes.int8, "I16": dtypes.int16, "I32": dtypes.int32, "I64": dtypes.int64, "U8": dtypes.uint8, "U16": dtypes.uint16,
  "U32": dtypes.uint32, "U64": dtypes.uint64, "BOOL": dtypes.bool}
SAFE_NAMES = {v: k for k, v in SAFE_DTYPES.items()}

def get_state_dict(obj: Any, prefix: str = "", tensor_type=Tensor) -> dict[str, Tensor]:
  """Every Tensor reachable through attributes, lists, tuples and dicts, keyed by its dotted path ('l1.weight')."""
  if isinstance(obj, tensor_type): return {prefix.strip("."): obj}
  if hasattr(obj, "_asdict"): return get_state_dict(obj._asdict(), prefix, tensor_type)
  if isinstance(obj, OrderedDict) or isinstance(obj, dict): items = obj.items()
  elif isinstance(obj, (list, tuple)): items = enumerate(obj)
  elif hasattr(obj, "__dict__"): items = vars(obj).items()
  else: return {}
  out: dict[str, Tensor] = {}
  for k, v in items: out.update(get_state_dict(v, f"{prefix}{k}.", tensor_type))
  return out

def get_parameters(obj: Any) -> list[Tensor]:
  """The tensors of get_state_dict(obj), each once."""
  seen, out = set(), []
  for t in get_state_dict(obj).values():
    if id(t) not in seen: seen.add(id(t)); out.append(t)
  return out

def load_state_dict(model: Any, state_dict: dict[str, Tensor], strict: bool = True, verbose: bool = False, consume: bool = False, realize: bool = True) -> None:
  """Copy state_dict's tensors into model's tensors of the same name (cast to the model's dtype, moved to its device)."""
  model_sd = get_state_dict(model)
  missing = [k for k in model_sd if k not in state_dict]
  unexpected = [k for k in state_dict if k not in model_sd]
  bad_shape = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {model_sd[k].shape}" for k in model_sd
               if k in state_dict and tuple(state_dict[k].shape) != model_sd[k].shape]
  problems = []
  if strict and missing: problems.append(f"missing keys: {missing}")
  if strict and unexpected: problems.append(f"unexpected keys: {unexpected}")
  if bad_shape: problems.append(f"shape mismatch: {'; '.join(bad_shape)}")
  if problems: raise RuntimeError("load_state_dict: " + "; ".join(problems))
  loaded = []
  for k, t in model_sd.items():
    if k not in state_dict: continue
    v = state_dict[k]
    if not isinstance(v, Tensor): v = Tensor(v)
    t.replace(v.to(t.device).cast(t.dtype).contiguous())
    loaded.append(t)
    if verbose: print(f"loaded {k} {t.shape} {t.dtype}")
    if consume: del state_dict[k]
  if realize: Tensor.realize_all(loaded)

def safe_save(tensors: dict[str, Tensor], fn: str, metadata: dict[str, str] | None = None) -> None:
  header: dict[str, Any] = {}
  offset, payloads = 0, []
  for name, t in tensors.items():
    if t.dtype not in SAFE_NAMES: raise TypeError(f"safe_save: {name} has dtype {t.dtype}, which safetensors cannot store")
    data = t.numpy().tobytes()
    header[name] = {"dtype": SAFE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
    payloads.append(data)
    offset += len(data)
  if metadata: header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
  hb = json.dumps(header, separators=(",", ":")).encode()
  hb += b" " * (-len(hb) % 8)  # the data starts 8-byte aligned
  folder = os.path.dirname(os.path.abspath(fn))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".safe_save-", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(struct.pack("<Q", len(hb)))
      f.write(hb)
      for p in payloads: f.write(p)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, fn)
  except BaseException:
    try: os.unlink(tmp)
    except OSError: pass
    raise

def safe_load_metadata(fn: str) -> tuple[int, dict[str, Any]]:
  with open(fn, "rb") as f:
    raw = f.read(8)
    if len(raw) != 8: raise ValueError(f"safe_load: {fn} is not a safetensors file (shorter than 8 bytes)")
    n = struct.unpack("<Q", raw)[0]
    if n > os.path.getsize(fn) - 8: raise ValueError(f"safe_load: {fn} is not a safetensors file (header of {n} bytes)")
    try: header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError) as e: raise ValueError(f"safe_load: {fn} has a corrupt header ({e})") from None
  return 8 + n, header

def safe_load(fn: str) -> dict[str, Tensor]:
  """Tensors of a safetensors file, by name (the file's order)."""
  import numpy as np
  start, header = safe_load_metadata(fn)
  out: dict[str, Tensor] = {}
  with open(fn, "rb") as f:
    for name, info in header.items():
      if name == "__metadata__": continue
      if info["dtype"] not in SAFE_DTYPES: raise TypeError(f"safe_load: {name} has unsupported dtype {info['dtype']}")
      dt = SAFE_DTYPES[info["dtype"]]
      b, e = info["data_offsets"]
      want = dt.itemsize * int(np.prod(info["shape"], dtype=np.int64))
      if e - b != want or start + e > os.path.getsize(fn):
        raise ValueError(f"safe_load: {fn}: tensor {name!r} ({info['dtype']}, shape {info['shape']}) needs {want} bytes at "
                         f"offsets {b}..{e}, but the file has {os.path.getsize(fn) - start} data bytes (truncated or corrupt)")
      f.seek(start + b)
      arr = np.frombuffer(f.read(e - b), dtype=to_np_dtype(dt)).reshape(info["shape"])
      out[name] = Tensor(arr)
  return out
