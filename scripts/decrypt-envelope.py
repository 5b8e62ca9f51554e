#!/usr/bin/env python3
"""Break-glass recovery of a kekd private key, with only an AWS SDK (boto3)
and an AES-GCM library (cryptography) — no kekd code.

    kekctl export kek-0123456789abcdef --out env.json
    (umask 077; python3 scripts/decrypt-envelope.py env.json > private.pem)
    (umask 077; python3 scripts/decrypt-envelope.py env.json --key BACKUP_KEY_ARN > private.pem)

Needs KMS Decrypt permission on one of the envelope's wrapping keys for its
encryption context. A kekd-envelope-v2 holds the data key wrapped under the
primary key and under each backup key: without --key the script tries them
in order until one decrypts; with --key it uses that one. The region is
taken from each key ARN; the endpoint and credentials from the usual AWS
environment. Prints the private key after checking it against the exported
public key (exits 1 if they differ): an RSA key as PKCS#8 PEM, a hybrid
(x25519-mlkem768) key as one line of hex of its expanded form, which is
what scripts/open-recording.py reads. Refuses to write into a file that
others can read (run it under umask 077, as above).
The integration tests run this script against moto for real.
"""
import base64
import json
import os
import stat
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
    private = AESGCM(data_key).decrypt(
        base64.b64decode(env["nonce"]), base64.b64decode(env["ciphertext"]), canonical_context(ctx)
    )
    if env.get("key_type", "rsa") == "x25519-mlkem768":
        sys.stdout.write(hybrid_key(path, private, export["public_key_pem"]) + "\n")
        return
    if env.get("key_type", "rsa") != "rsa":
        sys.exit(f"{path}: unknown key type {env['key_type']!r}")
    key = serialization.load_der_private_key(private, password=None)
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


def hybrid_key(path, private, public_pem):
    """The expanded X-Wing key as hex, once it matches the exported public
    key: ML-KEM's encapsulation key inside the decapsulation key, then the
    X25519 public key of the scalar (docs/recording-format.md)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    if len(private) != 2464:
        sys.exit(f"{path}: the decrypted hybrid key is {len(private)} bytes, not 2464")
    ek, sk_x, pk_x = private[1152:2336], private[2400:2432], private[2432:]
    derived = X25519PrivateKey.from_private_bytes(sk_x).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    lines = public_pem.strip().splitlines()
    if lines[0] != "-----BEGIN X25519-MLKEM768 PUBLIC KEY-----":
        sys.exit(f"{path}: public_key_pem is not an X25519-MLKEM768 public key")
    public = base64.b64decode("".join(lines[1:-1]))
    if derived != pk_x or ek + pk_x != public:
        sys.exit(f"{path}: the decrypted private key does not match public_key_pem")
    return private.hex()


def refuse_readable_output():
    """A plaintext private key must not land in a file others can read."""
    st = os.fstat(sys.stdout.fileno())
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
        sys.exit(
            f"refusing to write a private key into a file with mode {stat.S_IMODE(st.st_mode):o}: "
            "others could read it; run under umask 077 (see the usage above)"
        )


if __name__ == "__main__":
    refuse_readable_output()
    args = sys.argv[1:]
    if len(args) == 1:
        main(args[0])
    elif len(args) == 3 and args[1] == "--key":
        main(args[0], args[2])
    else:
        sys.exit("usage: decrypt-envelope.py EXPORT.json [--key KEY_ARN]")
