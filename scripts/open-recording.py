#!/usr/bin/env python3
"""Reference opener of kekd recordings, written from docs/recording-format.md
with only Python's `cryptography` package (and, for version 2, kyber-py
through xwing.py beside this file) — no kekd code. The tests run it against
recordings sealed by kekd and against the committed test vectors.

    python3 scripts/open-recording.py PRIVATE_KEY RECORDING OUT

PRIVATE_KEY is an RSA private key in PEM (version 1 recordings) or the
expanded X-Wing private key as one line of hex (version 2).

Exits 1 (and writes nothing) if any chunk fails authentication.
"""
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TAG = 16


def read_header(f):
    def take(n, what):
        b = f.read(n)
        if len(b) != n:
            sys.exit(f"file ends inside the header ({what})")
        return b

    raw = b""
    magic = take(7, "magic"); raw += magic
    if magic != b"KEKDREC":
        sys.exit("not a kekd recording (magic)")
    version = take(1, "version"); raw += version
    if version == b"\x02":
        key_type = take(1, "key type"); raw += key_type
        if key_type != b"\x01":
            sys.exit(f"unsupported key type {key_type[0]}")
    elif version != b"\x01":
        sys.exit(f"unsupported version {version[0]}")
    id_len = take(1, "id length"); raw += id_len
    key_id = take(id_len[0], "key-pair id"); raw += key_id
    wl = take(2, "wrapped key length"); raw += wl
    wrapped = take(struct.unpack(">H", wl)[0], "wrapped key"); raw += wrapped
    prefix = take(7, "nonce prefix"); raw += prefix
    cs = take(4, "chunk size"); raw += cs
    return raw, version[0], key_id.decode("ascii"), wrapped, prefix, struct.unpack(">I", cs)[0]


def content_key_of(key_path, version, wrapped):
    text = open(key_path, "rb").read()
    if version == 2:
        # The content key is the X-Wing shared secret of the encapsulation.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import xwing

        return xwing.decaps(bytes.fromhex(text.decode("ascii").strip()), wrapped)
    key = serialization.load_pem_private_key(text, password=None)
    return key.decrypt(
        wrapped,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )


def main(key_path, rec_path, out_path):
    plain = []
    with open(rec_path, "rb") as f:
        header, version, key_id, wrapped, prefix, chunk = read_header(f)
        content_key = content_key_of(key_path, version, wrapped)
        gcm = AESGCM(content_key)
        cur = f.read(chunk + TAG)
        counter = 0
        while True:
            nxt = f.read(chunk + TAG) if len(cur) == chunk + TAG else b""
            last = len(nxt) == 0
            nonce = prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")
            try:
                plain.append(gcm.decrypt(nonce, cur, header))
            except Exception:
                sys.exit(f"chunk {counter} failed authentication")
            if last:
                break
            counter += 1
            cur = nxt
    with open(out_path, "wb") as out:
        for p in plain:
            out.write(p)
    print(f"opened {sum(map(len, plain))} bytes sealed for {key_id}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: open-recording.py PRIVATE_KEY RECORDING OUT")
    main(*sys.argv[1:])
