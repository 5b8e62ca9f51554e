#!/usr/bin/env python3
"""Break-glass recovery of a kekd private key, with only an AWS SDK (boto3)
and an AES-GCM library (cryptography) — no kekd code.

    kekctl export kek-0123456789abcdef --out env.json
    python3 scripts/decrypt-envelope.py env.json > private.pem
    python3 scripts/decrypt-envelope.py env.json --key BACKUP_KEY_ARN > private.pem

Needs KMS Decrypt permission on one of the envelope's wrapping keys for its
encryption context. A kekd-envelope-v2 holds the data key wrapped under the
primary key and under each backup key: without --key the script tries them
in order until one decrypts; with --key it uses that one. The region is
taken from each key ARN; the endpoint and credentials from the usual AWS
environment. Prints the private key as PEM
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


def wrappings(env):
    """Every (key ARN, encrypted data key) of the envelope, primary first."""
    yield env["wrapping_key_arn"], env["encrypted_data_key"]
    for w in env.get("backups", []):
        yield w["wrapping_key_arn"], w["encrypted_data_key"]


def main(path, only_key=None):
    export = json.load(open(path))
    env = export["envelope"]
    if env["format"] not in ("kekd-envelope-v1", "kekd-envelope-v2"):
        sys.exit(f"{path}: unknown envelope format {env['format']!r}")
    ctx = env["encryption_context"]
    data_key, errors = None, []
    for arn, edk in wrappings(env):
        if only_key and arn != only_key:
            continue
        kms = boto3.client("kms", region_name=arn.split(":")[3])
        try:
            data_key = kms.decrypt(
                KeyId=arn, CiphertextBlob=base64.b64decode(edk), EncryptionContext=ctx
            )["Plaintext"]
            break
        except Exception as e:  # try the next wrapping; report all if none works
            errors.append(f"{arn}: {e}")
    if data_key is None:
        if only_key and not errors:
            sys.exit(f"{path}: the envelope has no wrapping under {only_key}")
        sys.exit(f"{path}: no wrapping decrypted:\n  " + "\n  ".join(errors))
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
    args = sys.argv[1:]
    if len(args) == 1:
        main(args[0])
    elif len(args) == 3 and args[1] == "--key":
        main(args[0], args[2])
    else:
        sys.exit("usage: decrypt-envelope.py EXPORT.json [--key KEY_ARN]")
