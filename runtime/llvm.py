"""A small ctypes binding of libllvmlite, the LLVM build inside the llvmlite wheel: IR text -> optimised object code,
and object code -> a callable address. Two reasons not to go through `llvmlite.binding`:
  - importing its 58 Python modules is ~20 ms of a fresh process's first result (the library's dlopen is ~6 ms);
  - it serialises every LLVM call behind one global lock, so kernels could not compile on several threads at once.
LLVM is thread-safe per LLVMContext: each thread compiles in its own context with its own TargetMachine.
The LLVMPY_* signatures used here are those of llvmlite 0.49 and 0.50 (tests/cpu/test_llvm_binding.py)."""
from __future__ import annotations
import ctypes, importlib.util, os, sys, threading
from ctypes import POINTER, c_bool, c_char_p, c_int, c_size_t, c_uint, c_uint64, c_void_p

_P, _S, _OUT = c_void_p, c_char_p, POINTER(c_void_p)
_SIGNATURES: dict[str, tuple[list, object]] = {
  "LLVMPY_GetVersionInfo": ([], c_uint),
  "LLVMPY_InitializeNativeTarget": ([], None),
  "LLVMPY_InitializeNativeAsmPrinter": ([], None),
  "LLVMPY_DisposeString": ([_P], None),
  "LLVMPY_GetHostCPUName": ([_OUT], None),
  "LLVMPY_GetHostCPUFeatures": ([_OUT], c_int),
  "LLVMPY_GetDefaultTargetTriple": ([_OUT], None),
  "LLVMPY_GetTargetFromTriple": ([_S, _OUT], _P),
  # target, triple, cpu, features, opt level, reloc, code model, printmc, jit, abi name
  "LLVMPY_CreateTargetMachine": ([_P, _S, _S, _S, c_int, _S, _S, c_int, c_int, _S], _P),
  "LLVMPY_ContextCreate": ([], _P),
  "LLVMPY_ParseAssembly": ([_P, _S, _OUT], _P),
  "LLVMPY_VerifyModule": ([_P, _OUT], c_bool),
  "LLVMPY_DisposeModule": ([_P], None),
  "LLVMPY_CreatePipelineTuningOptions": ([], _P),
  "LLVMPY_DisposePipelineTuningOptions": ([_P], None),
  "LLVMPY_CreatePassBuilder": ([_P, _P], _P),
  "LLVMPY_DisposePassBuilder": ([_P], None),
  "LLVMPY_buildPerModuleDefaultPipeline": ([_P, c_int], _P),  # (pass builder, speed level)
  "LLVMPY_RunNewModulePassManager": ([_P, _P, _P], None),
  "LLVMPY_DisposeNewModulePassManger": ([_P], None),
  "LLVMPY_TargetMachineEmitToMemory": ([_P, _P, c_int, _OUT], _P),
  "LLVMPY_GetBufferStart": ([_P], _P),
  "LLVMPY_GetBufferSize": ([_P], c_size_t),
  "LLVMPY_DisposeMemoryBuffer": ([_P], None),
  "LLVMPY_CreateMCJITCompiler": ([_P, _P, c_bool, _OUT], _P),
  "LLVMPY_CreateObjectFile": ([_S, c_size_t], _P),
  "LLVMPY_MCJITAddObjectFile": ([_P, _P], None),
  "LLVMPY_FinalizeObject": ([_P], None),
  "LLVMPY_GetFunctionAddress": ([_P, _S], c_uint64),
  "LLVMPY_CreateNewModulePassManager": ([], _P),
  "LLVMPY_module_AddSROAPass": ([_P], None),
  "LLVMPY_module_AddInstCombinePass": ([_P], None),
  "LLVMPY_module_AddSimplifyCFGPass": ([_P], None),
}

# The passes a kernel's IR goes through before code generation (which runs at its O3 level). Codegen hands LLVM loops
# already vectorised, register-tiled and unrolled where that pays (codegen/llvmir.py), every value computed in the
# outermost loop it depends on; of LLVM's O3 pipeline these three are what the kernels' speed needs: SROA (the
# accumulators, allocas, into registers), InstCombine and SimplifyCFG. The 24 kernels of an MLP Adam step compile in
# ~190 ms instead of ~480 and run as fast, within a few percent (docs/design.md "LLVM passes", where the exceptions are).
KERNEL_PASSES = ("SROA", "InstCombine", "SimplifyCFG")

# The two calls that take milliseconds (the optimisation passes, code generation) release the GIL, so kernels compile on the
# pool while the main thread generates the next one (test_optimisation_and_codegen_release_the_gil); every other call
# holds it (PyDLL): a thread that released the GIL waits for it again when the call returns, up to the switch interval
# while the main thread runs Python, and a compile and load made ~25 calls (bench/compile_ab.py, runtime.cpu._SWITCH).
_RELEASE_GIL = {"LLVMPY_RunNewModulePassManager", "LLVMPY_TargetMachineEmitToMemory"}

class LLVMError(RuntimeError): pass

def library_path() -> str:
  """Where pip put libllvmlite, found without importing llvmlite."""
  spec = importlib.util.find_spec("llvmlite")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError("the CPU backend needs llvmlite (pip install llvmlite): it was not found")
  name = {"darwin": "libllvmlite.dylib", "win32": "llvmlite.dll"}.get(sys.platform, "libllvmlite.so")
  return os.path.join(list(spec.submodule_search_locations)[0], "binding", name)

class _Lib:
  def __init__(self):
    self.path = library_path()
    cdll, pydll = ctypes.CDLL(self.path), ctypes.PyDLL(self.path)
    for name, (argtypes, restype) in _SIGNATURES.items():
      fn = getattr(cdll if name in _RELEASE_GIL else pydll, name)
      fn.argtypes, fn.restype = argtypes, restype
      setattr(self, name[7:], fn)  # LLVMPY_ParseAssembly -> self.ParseAssembly
    self.InitializeNativeTarget()
    self.InitializeNativeAsmPrinter()
    v = self.GetVersionInfo()
    self.version = f"{v >> 16 & 0xff}.{v >> 8 & 0xff}.{v & 0xff}"

  def take_string(self, out: c_void_p) -> str:
    """The text of a string LLVM returned through an out-parameter, which is then freed."""
    if not out.value: return ""
    try: return ctypes.string_at(out.value).decode(errors="replace")
    finally: self.DisposeString(out)

  def query(self, fn) -> str:
    out = c_void_p()
    fn(ctypes.byref(out))
    return self.take_string(out)

_lib: _Lib | None = None
_lib_lock = threading.Lock()

def lib() -> _Lib:
  global _lib
  with _lib_lock:
    if _lib is None: _lib = _Lib()
  return _lib

def preload() -> None:
  """Load libllvmlite on a background thread (finding and opening it is ~15 ms, most of it in dlopen, which releases
  the GIL) while the caller builds its first graph; lib() waits for it. A failure is left for lib() to raise."""
  def load():
    try: lib()
    except Exception: pass  # the caller's own lib() raises it, with its message
  if _lib is None: threading.Thread(target=load, name="llvm-preload", daemon=True).start()

def _forget_lock() -> None:
  global _lib_lock
  _lib_lock = threading.Lock()  # a fork during preload() leaves the child a lock that no thread of its own holds

os.register_at_fork(after_in_child=_forget_lock)

def host() -> tuple[str, str, str]:
  """(target triple, CPU name, CPU feature string) of this machine."""
  L = lib()
  return L.query(L.GetDefaultTargetTriple), L.query(L.GetHostCPUName), L.query(L.GetHostCPUFeatures)

class TargetMachine:
  """A TargetMachine with its own LLVMContext: one per thread that compiles (neither may be shared across threads)."""
  def __init__(self, triple: str, cpu: str, features: str, opt: int = 3, passes: tuple[str, ...] | None = KERNEL_PASSES):
    """opt: the code generator's level, and the level of LLVM's default pipeline that runs where passes is None."""
    self.L, self.opt, self.passes = lib(), opt, passes
    self.args = (triple, cpu, features)
    self.ptr = self._new_target_machine()
    self.context = self.L.ContextCreate()

  def _new_target_machine(self) -> int:
    L, (triple, cpu, features) = self.L, self.args
    err = c_void_p()
    target = L.GetTargetFromTriple(triple.encode(), ctypes.byref(err))
    if not target: raise LLVMError(f"LLVM: no target for {triple}: {L.take_string(err)}")
    tm = L.CreateTargetMachine(target, triple.encode(), cpu.encode(), features.encode(), self.opt, b"pic", b"default", 0, 0, b"")
    if not tm: raise LLVMError(f"LLVM: cannot create a target machine for {triple} {cpu}")
    return tm

  def _optimized_module(self, src: str) -> int:
    L, err = self.L, c_void_p()
    mod = L.ParseAssembly(self.context, src.encode(), ctypes.byref(err))
    if not mod: raise LLVMError(f"LLVM IR parsing error\n{L.take_string(err)}")
    if L.VerifyModule(mod, ctypes.byref(err)):
      L.DisposeModule(mod)
      raise LLVMError(f"LLVM IR verification error\n{L.take_string(err)}")
    L.take_string(err)
    pto = L.CreatePipelineTuningOptions()
    pb = L.CreatePassBuilder(self.ptr, pto)
    if self.passes is None: mpm = L.buildPerModuleDefaultPipeline(pb, self.opt)
    else:
      mpm = L.CreateNewModulePassManager()
      for name in self.passes: getattr(L, f"module_Add{name}Pass")(mpm)
    L.RunNewModulePassManager(mpm, mod, pb)
    L.DisposeNewModulePassManger(mpm)
    L.DisposePassBuilder(pb)
    L.DisposePipelineTuningOptions(pto)
    return mod

  def emit(self, src: str, assembly: bool = False) -> bytes:
    """Optimised object code (or assembly text) for the LLVM IR module `src`."""
    L, err = self.L, c_void_p()
    mod = self._optimized_module(src)
    try:
      mb = L.TargetMachineEmitToMemory(self.ptr, mod, int(not assembly), ctypes.byref(err))
      if not mb: raise LLVMError(f"LLVM: code generation failed: {L.take_string(err)}")
      try: return ctypes.string_at(L.GetBufferStart(mb), L.GetBufferSize(mb))
      finally: L.DisposeMemoryBuffer(mb)
    finally: L.DisposeModule(mod)

  def load(self, obj: bytes, names: tuple[str, ...]) -> tuple[list[int], tuple]:
    """Link object code into memory (an MCJIT engine, which takes ownership of a fresh TargetMachine); returns the
    addresses of the functions `names` and what must stay alive while they can be called. Engines are never freed:
    kernels live as long as the process's kernel cache."""
    L, err = self.L, c_void_p()
    empty = L.ParseAssembly(self.context, b"", ctypes.byref(err))
    # llvmlite's own memory manager on 64-bit ARM (as llvmlite does: MCJIT's default there breaks relocation ranges)
    use_lmm = os.uname().machine.lower() in ('arm64', 'aarch64') if hasattr(os, 'uname') else False
    engine = L.CreateMCJITCompiler(empty, self._new_target_machine(), use_lmm, ctypes.byref(err))
    if not engine: raise LLVMError(f"LLVM: cannot create a JIT engine: {L.take_string(err)}")
    objfile = L.CreateObjectFile(obj, len(obj))
    L.MCJITAddObjectFile(engine, objfile)
    L.FinalizeObject(engine)
    addrs = [L.GetFunctionAddress(engine, name.encode()) for name in names]
    if (missing := [n for n, a in zip(names, addrs) if not a]): raise LLVMError(f"LLVM: function {missing[0]} not found in its object code")
    return addrs, (engine, objfile, obj)
