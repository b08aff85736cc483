"""Runs inside the original Twitcher's own virtualenv (pyramid-twitcher 0.5.5 or 0.6.0),
for test_postgres_originals.py: creates the schema with the original's alembic migrations,
and writes or reads services, tokens and OAuth clients through the original's own stores and
SQLAlchemy models, on the database its INI file names. Prints what it read as JSON.

    python original_db.py INI write JSON   # {"services": [...], "tokens": [...], "clients": [...], "oauth_tokens": [...]}
    python original_db.py INI read JSON    # {"tokens": [...], "clients": [...], "oauth_tokens": [...]} to look up

Only the original's public pieces are used: `pyramid.paster.bootstrap` (as its
`initialize_twitcher_db` script does), `twitcher.store` and `twitcher.models`.
"""

import json
import sys

from pyramid.paster import bootstrap
from twitcher import models
from twitcher.__version__ import __version__

V05 = __version__.startswith("0.5")


def write(request, spec):
    from twitcher.store import ServiceStore
    store = ServiceStore(request)
    for service in spec.get("services", []):
        if V05:
            from twitcher.datatype import Service
            store.save_service(Service(**service))
        else:
            fields = dict(service)
            store.save_service(fields.pop("name"), fields.pop("url"), **fields)
    for token in spec.get("tokens", []):
        from twitcher.datatype import AccessToken
        from twitcher.store import AccessTokenStore
        AccessTokenStore(request).save_token(AccessToken(**token))
    for client in spec.get("clients", []):
        request.dbsession.add(models.Client(**client))
    request.dbsession.flush()
    for token in spec.get("oauth_tokens", []):
        request.dbsession.add(models.Token(**token))


def read(request, spec):
    from twitcher.store import ServiceStore
    services = []
    for service in ServiceStore(request).list_services():
        services.append(dict(service) if V05 else service.json())
    out = {"version": __version__, "services": services, "tokens": {}, "clients": {},
           "oauth_tokens": {}}
    # 0.5 has XML-RPC tokens only, 0.6.0 OAuth clients and tokens only.
    for token in spec.get("tokens", []) if V05 else []:
        from twitcher.store import AccessTokenStore
        try:
            found = AccessTokenStore(request).fetch_by_token(token)
            out["tokens"][token] = {"token": found.token, "expires_at": found["expires_at"]}
        except Exception as e:  # the original raises AccessTokenNotFound
            out["tokens"][token] = type(e).__name__
    for client_id in [] if V05 else spec.get("clients", []):
        client = request.dbsession.query(models.Client).filter_by(client_id=client_id).first()
        out["clients"][client_id] = client and {
            "client_secret": client.client_secret, "name": client.name,
            "default_scopes": client.default_scopes, "redirect_uris": client.redirect_uris}
    for access_token in [] if V05 else spec.get("oauth_tokens", []):
        token = (request.dbsession.query(models.Token)
                 .filter_by(access_token=access_token).first())
        out["oauth_tokens"][access_token] = token and {
            "client_id": token.client_id, "scopes": token.scopes,
            "token_type": token.token_type, "expires": token.expires.isoformat()}
    return out


def main():
    ini, command, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    env = bootstrap(ini)
    request = env["request"]
    try:
        with request.tm:
            if command == "write":
                write(request, spec)
                result = {"written": True}
            else:
                result = read(request, spec)
    finally:
        env["closer"]()
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
