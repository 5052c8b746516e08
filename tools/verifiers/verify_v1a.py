"""Verifies a Standard Webhooks `v1a` (ed25519) signature with PyNaCl, independently of
eventgate's own code. Reads one JSON object on stdin:
{"public_key": "whpk_…", "id": …, "timestamp": …, "body": …, "signature": "v1a,… v1,…"}
and exits 0 when one `v1a` signature in the header verifies with the key, 1 otherwise."""

import base64
import json
import sys

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey


def main() -> int:
    given = json.load(sys.stdin)
    public = given["public_key"]
    if not public.startswith("whpk_"):
        print("not a whpk_ public key", file=sys.stderr)
        return 2
    key = VerifyKey(base64.b64decode(public[len("whpk_"):]))
    signed = f'{given["id"]}.{given["timestamp"]}.{given["body"]}'.encode()
    for part in given["signature"].split(" "):
        version, _, signature = part.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(signed, base64.b64decode(signature))
            return 0
        except BadSignatureError:
            continue
    return 1


if __name__ == "__main__":
    sys.exit(main())
