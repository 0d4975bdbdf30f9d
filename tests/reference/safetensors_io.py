"""Writes .safetensors files for the reference scripts, in the format nn/safetensors.cpp reads: an
8-byte little-endian header length, a JSON header (each tensor's dtype, shape and byte offsets,
and an optional __metadata__ map of strings), padded with spaces to a multiple of 8, then the
tensors' raw little-endian bytes in the order given."""
import json
import struct

import numpy as np

DTYPES = {np.float32: "F32", np.float64: "F64", np.int64: "I64"}


def save_safetensors(path, tensors, metadata=None):
    """tensors: name -> torch tensor or numpy array (float32, float64 or int64), in file order."""
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, t in tensors.items():
        a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
        b = np.ascontiguousarray(a).tobytes()  # (ascontiguousarray turns a 0-d array into 1-d)
        header[name] = {"dtype": DTYPES[a.dtype.type], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
