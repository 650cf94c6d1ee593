"""Who is asking: the tenant of a request, and whether its credentials are right.

* With credentials in the config, every endpoint but ``/healthz`` needs them: a bearer token
  (``Authorization: Bearer T``) or basic auth; the credential names the tenant.  An
  ``X-Scope-OrgID`` header, if sent, must name that same tenant (403 otherwise).
* Without credentials (a first try, or behind a trusted proxy), the tenant is the
  ``X-Scope-OrgID`` header (the Cortex/Mimir convention), else the basic-auth user name (the
  Debian Prometheus cannot send custom headers), else ``default``.

Tenant ids are validated (no path traversal: ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from vigil.series import LabelError, validate_tenant
from vigil.serve.config import DEFAULT_TENANT, ServeConfig

ORG_HEADER = "x-scope-orgid"


class AuthError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _basic(value: str) -> tuple[str, str]:
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError(401, "the basic-auth credentials are not base64 of 'user:password'"
                        ) from None
    if not sep:
        raise AuthError(401, "the basic-auth credentials have no ':' between user and password")
    return user, password


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def resolve_tenant(config: ServeConfig, headers: Mapping[str, str]) -> str:
    """The request's tenant, or :class:`AuthError` (401 unauthenticated, 403 wrong tenant,
    400 invalid tenant id)."""
    auth = headers.get("authorization", "")
    scheme, _, cred = auth.partition(" ")
    org = headers.get(ORG_HEADER)
    if config.auth_enabled:
        tenant = None
        if scheme.lower() == "bearer" and cred:
            for name, t in config.tenants.items():
                if t.bearer_token and _same(t.bearer_token, cred.strip()):
                    tenant = name
        elif scheme.lower() == "basic" and cred:
            user, password = _basic(cred.strip())
            for name, t in config.tenants.items():
                ba = t.basic_auth
                if ba and _same(ba.username, user) and _same(ba.password, password):
                    tenant = name
        if tenant is None:
            raise AuthError(401, "missing or wrong credentials: send 'Authorization: Bearer "
                            "<token>' or basic auth configured for your tenant")
        if org is not None and org != tenant:
            raise AuthError(403, f"X-Scope-OrgID {org!r} is not the tenant of these "
                            f"credentials ({tenant!r}): drop the header or use its credentials")
        return tenant
    if org is not None:
        tenant = org
    elif scheme.lower() == "basic" and cred:
        tenant = _basic(cred.strip())[0]
    else:
        tenant = DEFAULT_TENANT
    try:
        return validate_tenant(tenant)
    except LabelError as exc:
        raise AuthError(400, str(exc)) from None
