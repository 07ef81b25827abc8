"""A minimal GGUF v3 writer (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): metadata plus F32, F16 and
BF16 tensors, which is all the default model needs. numpy only.

Shapes are given PyTorch-style (row-major, outermost first); GGUF lists dimensions innermost first, so a [out, in]
nn.Linear weight is written with ne = [in, out] and its bytes are unchanged.
"""
from __future__ import annotations

import struct
from typing import Any, Dict, List, Tuple

import numpy as np

GGUF_MAGIC = 0x46554747  # "GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# Metadata value types.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)
# Tensor types.
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30


def f32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even f32 -> bf16 bit patterns (as uint16)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(np.float32)


class GgufWriter:
    def __init__(self) -> None:
        self.kv: List[Tuple[str, int, Any, int]] = []  # key, type, value, array element type
        self.tensors: List[Tuple[str, Tuple[int, ...], int, bytes]] = []

    # -- metadata -------------------------------------------------------------------------------------------------
    def add(self, key: str, vtype: int, value: Any, elem_type: int = -1) -> None:
        if any(k == key for k, *_ in self.kv):
            raise ValueError(f"duplicate key {key}")
        self.kv.append((key, vtype, value, elem_type))

    def add_string(self, key: str, v: str) -> None: self.add(key, T_STRING, v)
    def add_uint32(self, key: str, v: int) -> None: self.add(key, T_UINT32, int(v))
    def add_int32(self, key: str, v: int) -> None: self.add(key, T_INT32, int(v))
    def add_float32(self, key: str, v: float) -> None: self.add(key, T_FLOAT32, float(v))
    def add_bool(self, key: str, v: bool) -> None: self.add(key, T_BOOL, bool(v))
    def add_array(self, key: str, elem_type: int, items: List[Any]) -> None: self.add(key, T_ARRAY, list(items), elem_type)

    # -- tensors --------------------------------------------------------------------------------------------------
    def add_tensor(self, name: str, data: np.ndarray, ggml_type: int) -> None:
        """`data`: float array in PyTorch layout; stored as `ggml_type` (F32, F16 or BF16)."""
        a = np.ascontiguousarray(data, dtype=np.float32)
        if ggml_type == GGML_F32:
            raw = a.tobytes()
        elif ggml_type == GGML_F16:
            raw = a.astype("<f2").tobytes()
        elif ggml_type == GGML_BF16:
            raw = f32_to_bf16_bits(a).astype("<u2").tobytes()
        else:
            raise ValueError(f"unsupported tensor type {ggml_type}")
        ne = tuple(int(d) for d in reversed(a.shape))  # innermost dimension first
        self.tensors.append((name, ne, ggml_type, raw))

    # -- encoding -------------------------------------------------------------------------------------------------
    @staticmethod
    def _str(s: str) -> bytes:
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype: int, v: Any, elem_type: int) -> bytes:
        if vtype == T_STRING:
            return self._str(v)
        if vtype == T_ARRAY:
            out = [struct.pack("<IQ", elem_type, len(v))]
            out += [self._value(elem_type, x, -1) for x in v]
            return b"".join(out)
        fmt = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
               T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d"}[vtype]
        return struct.pack(fmt, v)

    def write(self, path: str) -> int:
        kv = [("general.alignment", T_UINT32, ALIGNMENT, -1)] + [x for x in self.kv if x[0] != "general.alignment"]
        head = [struct.pack("<IIQQ", GGUF_MAGIC, GGUF_VERSION, len(self.tensors), len(kv))]
        for key, vtype, value, et in kv:
            head.append(self._str(key) + struct.pack("<I", vtype) + self._value(vtype, value, et))
        offset = 0
        offsets = []
        for name, ne, t, raw in self.tensors:
            offsets.append(offset)
            head.append(self._str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}q", *ne) + struct.pack("<IQ", t, offset))
            offset += (len(raw) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        header = b"".join(head)
        pad = (-len(header)) % ALIGNMENT
        with open(path, "wb") as f:
            f.write(header + b"\0" * pad)
            for (name, ne, t, raw), off in zip(self.tensors, offsets):
                f.write(raw)
                f.write(b"\0" * ((-len(raw)) % ALIGNMENT))
            return f.tell()
