#!/usr/bin/env python3
"""Break-glass recovery of a kekd private key, with only an AWS SDK (boto3)
and an AES-GCM library (cryptography) — no kekd code.

    kekctl export kek-0123456789abcdef --out env.json
    python3 scripts/decrypt-envelope.py env.json > private.pem

Needs KMS Decrypt permission on the envelope's wrapping key for its
encryption context. The region is taken from the key ARN; the endpoint and
credentials from the usual AWS environment. Prints the private key as PEM
after checking it against the exported public key; exits 1 if they differ.
The integration tests run this script against moto for real.
"""
import base64
import json
import struct
import sys

import boto3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def canonical_context(ctx):
    """u16-BE length-prefixed key and value, pairs sorted by key bytes."""
    out = b""
    for k, v in sorted(ctx.items(), key=lambda kv: kv[0].encode()):
        for s in (k.encode(), v.encode()):
            out += struct.pack(">H", len(s)) + s
    return out


def main(path):
    export = json.load(open(path))
    env = export["envelope"]
    if env["format"] != "kekd-envelope-v1":
        sys.exit(f"{path}: unknown envelope format {env['format']!r}")
    ctx = env["encryption_context"]
    region = env["wrapping_key_arn"].split(":")[3]
    kms = boto3.client("kms", region_name=region)
    data_key = kms.decrypt(
        KeyId=env["wrapping_key_arn"],
        CiphertextBlob=base64.b64decode(env["encrypted_data_key"]),
        EncryptionContext=ctx,
    )["Plaintext"]
    pkcs8 = AESGCM(data_key).decrypt(
        base64.b64decode(env["nonce"]), base64.b64decode(env["ciphertext"]), canonical_context(ctx)
    )
    key = serialization.load_der_private_key(pkcs8, password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public.decode().strip() != export["public_key_pem"].strip():
        sys.exit(f"{path}: the decrypted private key does not match public_key_pem")
    sys.stdout.write(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: decrypt-envelope.py EXPORT.json")
    main(sys.argv[1])
