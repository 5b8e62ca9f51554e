#!/usr/bin/env python3
"""An independent X-Wing (ML-KEM-768 + X25519) for kekd's hybrid key pairs.

The reference a third party can check kekd against, written from the
specification (draft-connolly-cfrg-xwing-kem) with kyber-py's ML-KEM
(FIPS 203) and the `cryptography` package's X25519, sharing no code with
kekd. Keys and ciphertexts are hex on the command line and on stdout:

  xwing.py keygen               -> private key (2464 bytes), public key (1216)
  xwing.py encaps PUBLIC        -> ciphertext (1120 bytes), shared secret (32)
  xwing.py decaps PRIVATE CT    -> shared secret

The private key is X-Wing's expanded form, sk_M || sk_X || pk_X: the FIPS
203 decapsulation key, the X25519 scalar and its public key.
"""
import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from kyber_py.ml_kem import ML_KEM_768

LABEL = b"\\.//^\\"
assert LABEL.hex() == "5c2e2f2f5e5c"


def raw_public(key):
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def combiner(ss_m, ss_x, ct_x, pk_x):
    return hashlib.sha3_256(LABEL + ss_m + ss_x + ct_x + pk_x).digest()


def keygen():
    pk_m, sk_m = ML_KEM_768.keygen()
    x = X25519PrivateKey.generate()
    sk_x = x.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    pk_x = raw_public(x.public_key())
    return sk_m + sk_x + pk_x, pk_m + pk_x


def encaps(pk):
    assert len(pk) == 1216, "an X-Wing public key is 1216 bytes"
    pk_m, pk_x = pk[:1184], pk[1184:]
    ss_m, ct_m = ML_KEM_768.encaps(pk_m)
    e = X25519PrivateKey.generate()
    ct_x = raw_public(e.public_key())
    ss_x = e.exchange(X25519PublicKey.from_public_bytes(pk_x))
    return ct_m + ct_x, combiner(ss_m, ss_x, ct_x, pk_x)


def decaps(sk, ct):
    assert len(sk) == 2464, "an expanded X-Wing private key is 2464 bytes"
    assert len(ct) == 1120, "an X-Wing ciphertext is 1120 bytes"
    sk_m, sk_x, pk_x = sk[:2400], sk[2400:2432], sk[2432:]
    ct_m, ct_x = ct[:1088], ct[1088:]
    ss_m = ML_KEM_768.decaps(sk_m, ct_m)
    x = X25519PrivateKey.from_private_bytes(sk_x)
    ss_x = x.exchange(X25519PublicKey.from_public_bytes(ct_x))
    return combiner(ss_m, ss_x, ct_x, pk_x)


def main(argv):
    if argv[1:2] == ["keygen"] and len(argv) == 2:
        for part in keygen():
            print(part.hex())
    elif argv[1:2] == ["encaps"] and len(argv) == 3:
        for part in encaps(bytes.fromhex(argv[2])):
            print(part.hex())
    elif argv[1:2] == ["decaps"] and len(argv) == 4:
        print(decaps(bytes.fromhex(argv[2]), bytes.fromhex(argv[3])).hex())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
