"""hvac against Airlock: log in with every auth method, read a secret with the token, and
check that a bad credential raises hvac's InvalidRequest. Run by the e2e test
`auth::hvac_logs_in_with_every_method`, which sets the methods up and passes the
credentials in the environment. Prints "hvac auth: ok" on success; never prints a secret.
"""
import os
import sys

import hvac

ADDR = os.environ["VAULT_ADDR"]


def check(client, what):
    assert client.is_authenticated(), f"{what}: token not valid"
    r = client.secrets.kv.v2.read_secret_version(
        path="app/db", mount_point="secret", raise_on_deleted_version=True
    )
    assert r["data"]["data"]["password"] == "s3cret-db-pw", f"{what}: wrong secret"
    me = client.auth.token.lookup_self()["data"]
    assert "app-read" in me["policies"], f"{what}: policies {me['policies']}"
    print(f"{what}: ok (path {me['path']})")


def main():
    c = hvac.Client(url=ADDR)
    c.auth.approle.login(role_id=os.environ["ROLE_ID"], secret_id=os.environ["SECRET_ID"])
    check(c, "approle")

    c = hvac.Client(url=ADDR)
    c.auth.userpass.login(username="eso", password="eso-password")
    check(c, "userpass")

    c = hvac.Client(url=ADDR)
    c.auth.jwt.jwt_login(role="deploy", jwt=os.environ["GH_JWT"], path="ci-jwt")
    check(c, "jwt")

    c = hvac.Client(url=ADDR)
    c.auth.kubernetes.login(role="eso", jwt=os.environ["K8S_JWT"])
    check(c, "kubernetes")
    c.auth.token.revoke_self()
    assert not c.is_authenticated(), "revoke-self did not revoke"

    for what, fn in [
        ("userpass", lambda: hvac.Client(url=ADDR).auth.userpass.login(username="eso", password="wrong")),
        ("approle", lambda: hvac.Client(url=ADDR).auth.approle.login(role_id=os.environ["ROLE_ID"], secret_id="00000000-0000-0000-0000-000000000000")),
        ("jwt", lambda: hvac.Client(url=ADDR).auth.jwt.jwt_login(role="deploy", jwt="e30.e30.e30", path="ci-jwt")),
    ]:
        try:
            fn()
        except hvac.exceptions.InvalidRequest:
            print(f"{what}: bad credential refused")
        else:
            print(f"{what}: a bad credential was accepted", file=sys.stderr)
            sys.exit(1)
    print("hvac auth: ok")


if __name__ == "__main__":
    main()
