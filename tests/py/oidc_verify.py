"""Verifies tokens of the test OIDC issuer with PyJWT, an implementation independent of the
one Arcan and the issuer use (jsonwebtoken): discovery document, then `jwks_uri`, then the
signature and the registered claims.

Used by tests/tests/machine_jwt.rs. Environment: OIDC_ISSUER, OIDC_CA (PEM file),
OIDC_AUDIENCE; the tokens come on stdin, one per line. Prints one JSON object per token.
"""

import json
import os
import ssl
import sys
import urllib.request

import jwt


def main():
    issuer = os.environ["OIDC_ISSUER"]
    ctx = ssl.create_default_context(cafile=os.environ["OIDC_CA"])
    with urllib.request.urlopen(issuer + "/.well-known/openid-configuration", context=ctx) as r:
        discovery = json.load(r)
    client = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=ctx, cache_jwk_set=False)
    for line in sys.stdin:
        token = line.strip()
        if not token:
            continue
        try:
            key = client.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key,
                                algorithms=discovery["id_token_signing_alg_values_supported"],
                                audience=os.environ["OIDC_AUDIENCE"], issuer=discovery["issuer"])
            print(json.dumps({"ok": True, "sub": claims["sub"], "alg": key.algorithm_name}))
        except jwt.PyJWTError as e:
            print(json.dumps({"ok": False, "error": type(e).__name__}))


if __name__ == "__main__":
    main()
