#!/usr/bin/env python3
"""Makes this vector: seals the documented plaintext for the X-Wing key pair
of ../xwing/ as a version 2 recording, written from docs/recording-format.md
with scripts/xwing.py (kyber-py, cryptography) — no kekd code.

    .venv-moto/bin/python tests/vectors/recording-v2/make.py
"""
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "scripts"))
import xwing  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

CHUNK = 65536
KEY_ID = "kek-5d1f0e2a9c4b7a31"  # any well-formed id: the vector's key pair is not kekd's

plaintext = bytes((31 * i + i // 7) % 251 for i in range(200_000))
public = bytes.fromhex(open(os.path.join(HERE, "..", "xwing", "public.hex")).read().strip())
encapsulation, content_key = xwing.encaps(public)
prefix = os.urandom(7)
header = (b"KEKDREC" + b"\x02" + b"\x01" + bytes([len(KEY_ID)]) + KEY_ID.encode()
          + struct.pack(">H", len(encapsulation)) + encapsulation + prefix + struct.pack(">I", CHUNK))
gcm = AESGCM(content_key)
chunks = [plaintext[i:i + CHUNK] for i in range(0, len(plaintext), CHUNK)]
with open(os.path.join(HERE, "sealed.kekdrec"), "wb") as out:
    out.write(header)
    for i, c in enumerate(chunks):
        last = b"\x01" if i == len(chunks) - 1 else b"\x00"
        out.write(gcm.encrypt(prefix + struct.pack(">I", i) + last, c, header))
with open(os.path.join(HERE, "plaintext.sha256"), "w") as f:
    f.write(hashlib.sha256(plaintext).hexdigest() + "\n")
print(f"sealed {len(plaintext)} bytes for {KEY_ID}")
