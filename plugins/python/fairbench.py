"""fairbench.py - the Python side of fairbench's Python bridge (python.so).

A backend is a module NAME.py in a backends folder with a class `Backend`
(see docs/python-backends.md). The bridge calls:

    Backend(model, settings)                   create: convert weights; raise to refuse
    backend.prefill(tokens, flags, logits)     -> next token (argmax of the last position)
    backend.decode(token, logits)              -> next token
    backend.reset()                            forget all positions
    backend.memory()                           -> Memory(device_bytes, device_peak_bytes, host_bytes)
    backend.effective_settings()               -> Effective(...): what really runs
    module.probe()                             -> Probe(available, device, reason)

`tokens` is a read-only buffer of int32, `logits` None or a writable buffer of
float32 (n_vocab floats; n_tokens * n_vocab when flags is LOGITS_ALL), valid
only during the call. Token ids, positions and the context length are checked
by the bridge before the call. Raise an exception to fail: its class picks
the status (see STATUS below), its last line is the sentence.

Weights: model.tensor(name) is a Tensor over the host's memory-mapped GGUF
bytes, no copy: .array() is a read-only numpy view for F32/F16 (a converted
array for BF16), .dequantize() any block format through the host's decoder.
"""
import ctypes
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field

# Status codes of fairbench/plugin.h.
OK, INVALID_ARGUMENT, UNSUPPORTED, UNAVAILABLE, OUT_OF_MEMORY, CONTEXT_FULL, CANCELLED, INTERNAL = range(8)
LOGITS_NONE, LOGITS_LAST, LOGITS_ALL = 0, 1, 2

# GGUF tensor type ids.
F32, F16, BF16 = 0, 1, 30


class Unsupported(NotImplementedError):
    """A setting the backend cannot honour (FB_ERR_UNSUPPORTED)."""


class Unavailable(RuntimeError):
    """The framework or device is not here (FB_ERR_UNAVAILABLE)."""


# Exception class -> status; the first match in order wins, INTERNAL otherwise.
STATUS = [
    (Unavailable, UNAVAILABLE),
    (NotImplementedError, UNSUPPORTED),
    (ImportError, UNAVAILABLE),
    (MemoryError, OUT_OF_MEMORY),
    (KeyboardInterrupt, CANCELLED),
    (ValueError, INVALID_ARGUMENT),
]

# print() from a backend must not reach the host's stdout (its report).
sys.stdout = sys.stderr


@dataclass
class Probe:
    available: bool
    device: str = ""
    reason: str = ""


@dataclass
class Memory:
    device_bytes: int = 0
    device_peak_bytes: int = 0
    host_bytes: int = 0


@dataclass
class Effective:
    weight_precision: str          # "f32", "f16", "bf16", "native": what the weights are stored as
    accumulate_precision: str      # what sums are accumulated in
    jit: bool = False              # run-time compilation used
    graphs: bool = False           # graph replay used
    threads: int = 0               # CPU threads used (0 for a GPU's compute)
    kernel_cache_hit: int = -1     # 1 hit, 0 miss, -1 not applicable
    device: str = ""
    notes: str = ""
    options: dict = field(default_factory=dict)  # the per-backend options in effect


@dataclass
class Settings:
    weight_precision: str
    accumulate_precision: str
    allow_jit: bool
    allow_graphs: bool
    jit_cache: str                 # "cold" or "warm"
    threads: int                   # 0 = all cores
    max_context: int               # KV-cache positions (the bridge enforces it)
    cache_dir: str
    device_index: int
    options: dict                  # the module's per-backend options, as strings


class Tensor:
    """One tensor of the mapped GGUF: name, GGUF type id, shape (numpy order:
    rows first), and its bytes as a read-only buffer (no copy)."""

    def __init__(self, name, type_id, shape, buffer, address, dequantize_fn):
        self.name, self.type, self.shape, self.buffer = name, type_id, tuple(shape), buffer
        self._address, self._dequantize = address, dequantize_fn

    @property
    def size(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def array(self):
        """A numpy array over the mapped bytes: F32/F16 without a copy, BF16
        widened to float32 (numpy has no bfloat16)."""
        import numpy as np
        if self.type == F32:
            return np.frombuffer(self.buffer, dtype=np.float32).reshape(self.shape)
        if self.type == F16:
            return np.frombuffer(self.buffer, dtype=np.float16).reshape(self.shape)
        if self.type == BF16:
            bits = np.frombuffer(self.buffer, dtype=np.uint16).astype(np.uint32) << 16
            return bits.view(np.float32).reshape(self.shape)
        return self.dequantize()

    def dequantize(self):
        """float32 values of any format the host decodes (bit-exact with ggml)."""
        import numpy as np
        out = np.empty(self.shape, dtype=np.float32)
        if self._dequantize(self.type, self._address, out.ctypes.data, self.size) != 0:
            raise Unsupported(f"the host cannot decode tensor {self.name} of GGUF type {self.type}")
        return out


class Model:
    """The host's model view: hyper-parameters as attributes (n_embd, n_layer,
    n_head, n_head_kv, head_dim, n_ff, n_ctx, n_vocab, n_rot, rope_freq_base,
    rms_eps, tied_output, path, name, arch) and tensors by GGUF name."""

    def __init__(self, view):
        decoder = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.c_int64)(view.pop("dequantize_row_f32"))
        tensors = view.pop("tensors")
        self.__dict__.update(view)
        self.tensors = {name: Tensor(name, t, shape, buf, addr, decoder)
                        for name, (t, shape, buf, addr) in tensors.items()}

    def tensor(self, name):
        return self.tensors[name]

    def layer(self, i, name):
        """Tensor `name` of layer i, e.g. layer(0, "attn_q")."""
        return self.tensors[f"blk.{i}.{name}.weight"]


class Backend:
    """Base class. Subclasses implement __init__(model, settings), decode,
    reset, memory and effective_settings; prefill defaults to a decode per
    token."""

    def prefill(self, tokens, flags, logits):
        ids = memoryview(tokens).cast("B").cast("i")
        n_vocab_bytes = None
        if logits is not None:
            out = memoryview(logits).cast("B")
            n_vocab_bytes = len(out) // (len(ids) if flags == LOGITS_ALL else 1)
        next_token = 0
        for i, token in enumerate(ids):
            row = None
            if flags == LOGITS_ALL:
                row = out[i * n_vocab_bytes:(i + 1) * n_vocab_bytes]
            elif flags == LOGITS_LAST and i == len(ids) - 1:
                row = out
            next_token = self.decode(token, row)
        return next_token

    def memory(self):
        return Memory()


def cpu_count():
    """The CPUs this process may run on (its affinity mask): what threads = 0 means."""
    import os
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_name():
    """The CPU's model name from /proc/cpuinfo, or "" when unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_device(detail):
    """A CPU backend's device string: "CPU: <model name>, <detail>" ("CPU, <detail>" when unknown)."""
    name = cpu_name()
    return f"CPU: {name}, {detail}" if name else f"CPU, {detail}"


def write_logits(out, values):
    """Copy n_vocab float32 logits (anything numpy reads) into the host's buffer."""
    import numpy as np
    dst = np.frombuffer(out, dtype=np.float32)
    dst[:] = np.asarray(values, dtype=np.float32).reshape(-1)


def argmax(values):
    """Index of the largest value, lowest on ties (numpy's argmax is)."""
    import numpy as np
    return int(np.argmax(np.asarray(values).reshape(-1)))


# ------------------------------------------------------------------ the bridge's entry points

_modules = {}


def _load(path, name):
    module = _modules.get(path)
    if module is None:
        # Loaded by file under a private name: torch.py must not shadow torch.
        spec = importlib.util.spec_from_file_location(f"fairbench_backend_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[path] = module
    return module


def _not_installed(error):
    return f"{error.name} is not installed in {sys.executable}"


def _probe(path, name):
    try:
        module = _load(path, name)
        result = module.probe() if hasattr(module, "probe") else Probe(True, f"Python {sys.version.split()[0]}")
        return (int(bool(result.available)), str(result.device), str(result.reason))
    except ModuleNotFoundError as e:
        return (0, "", _not_installed(e))
    except Exception as e:
        return (0, "", f"probe raised {_last_line(e)}")


def _create(path, name, model, settings):
    try:
        module = _load(path, name)
    except ModuleNotFoundError as e:
        raise Unavailable(_not_installed(e)) from None
    return module.Backend(Model(model), Settings(**settings))


def _memory(backend):
    m = backend.memory()
    return (int(m.device_bytes), int(m.device_peak_bytes), int(m.host_bytes))


def _effective_settings(backend):
    e = backend.effective_settings()
    options = ", ".join(f"{k}={v}" for k, v in e.options.items())
    return (str(e.weight_precision), str(e.accumulate_precision), int(bool(e.jit)), int(bool(e.graphs)),
            int(e.threads), int(e.kernel_cache_hit), str(e.device), str(e.notes), options)


def _close(backend):
    close = getattr(backend, "close", None)
    if close is not None:
        close()
    import gc
    gc.collect()


def _last_line(value):
    """The traceback's last line, "Type: message", as one line: a message of
    several lines is joined with "; "."""
    text = "".join(traceback.format_exception_only(type(value), value)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(value).__name__


def _describe(exc_type, value):
    """(status, sentence) for an exception the bridge caught."""
    status = INTERNAL
    if isinstance(exc_type, type):
        for cls, code in STATUS:
            if issubclass(exc_type, cls):
                status = code
                break
    if value is None:
        return (status, getattr(exc_type, "__name__", "an exception"))
    if isinstance(value, (Unsupported, Unavailable)) and str(value).strip():
        return (status, "; ".join(line.strip() for line in str(value).strip().splitlines()))
    return (status, _last_line(value))
