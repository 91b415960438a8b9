"""On-disk cache of compiled object code: one file per key, written to a temp file and renamed (atomic, safe across
processes). It never breaks a run: any I/O error is a warning and the caller compiles without the cache.

Location: $CACHEDB if set (a directory), else $XDG_CACHE_HOME/tinygrad, else ~/.cache/tinygrad. CACHELEVEL=0 disables.
"""
from __future__ import annotations
import itertools, os, threading, warnings
try: from _sha256 import sha256  # CPython 3.11's own SHA-256: importing hashlib loads OpenSSL (~3 ms of a fresh process)
except ImportError:
  try: from _sha2 import sha256  # CPython 3.12+
  except ImportError: from hashlib import sha256

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

def cache_key(*parts: str) -> str: return sha256("\0".join(parts).encode()).hexdigest()

MAGIC = b"TGOBJ1"
_writes = itertools.count()

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
  return payload if sha256(payload).digest() == digest else None

def cache_put(table: str, key: str, payload: bytes) -> None:
  if not enabled(): return
  folder = os.path.join(cache_dir(), table, key[:2])
  # a temp name unique to this process, thread and write (tempfile's mkstemp: ~5 ms to import in a fresh process)
  tmp = os.path.join(folder, f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_writes)}")
  try:
    os.makedirs(folder, exist_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
      with os.fdopen(fd, "wb") as f: f.write(MAGIC + sha256(payload).digest() + payload)
      os.replace(tmp, os.path.join(folder, key))
    except BaseException:
      try: os.unlink(tmp)
      except OSError: pass
      raise
  except OSError as e: _warn("write", e)
