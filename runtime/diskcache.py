"""On-disk cache of compiled object code: one file per key, written to a temp file and renamed (atomic, safe across
processes). It never breaks a run: any I/O error is a warning and the caller compiles without the cache.

Location: $CACHEDB if set (a directory), else $XDG_CACHE_HOME/tinygrad, else ~/.cache/tinygrad. CACHELEVEL=0 disables.
"""
from __future__ import annotations
import hashlib, os, warnings

_warned: set[str] = set()

def cache_dir() -> str:
  if (d := os.environ.get("CACHEDB")): return d
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "tinygrad")

def enabled() -> bool: return int(os.environ.get("CACHELEVEL", "2")) > 0

def _warn(what: str, err: Exception) -> None:
  if what in _warned: return
  _warned.add(what)
  warnings.warn(f"tinygrad disk cache: {what} failed ({err}); compiling without the cache", RuntimeWarning, stacklevel=3)

def cache_key(*parts: str) -> str: return hashlib.sha256("\0".join(parts).encode()).hexdigest()

MAGIC = b"TGOBJ1"

def cache_get(table: str, key: str) -> bytes | None:
  if not enabled(): return None
  path = os.path.join(cache_dir(), table, key[:2], key)
  try:
    with open(path, "rb") as f: data = f.read()
  except FileNotFoundError: return None
  except OSError as e:
    _warn("read", e)
    return None
  # a file is MAGIC + sha256(payload) + payload; anything else (truncated, corrupt) is a miss
  if len(data) < len(MAGIC) + 32 or not data.startswith(MAGIC): return None
  digest, payload = data[len(MAGIC):len(MAGIC) + 32], data[len(MAGIC) + 32:]
  return payload if hashlib.sha256(payload).digest() == digest else None

def cache_put(table: str, key: str, payload: bytes) -> None:
  if not enabled(): return
  folder = os.path.join(cache_dir(), table, key[:2])
  try:
    import tempfile  # only a cache write needs it (fresh-process start)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
      with os.fdopen(fd, "wb") as f: f.write(MAGIC + hashlib.sha256(payload).digest() + payload)
      os.replace(tmp, os.path.join(folder, key))
    except BaseException:
      try: os.unlink(tmp)
      except OSError: pass
      raise
  except OSError as e: _warn("write", e)
