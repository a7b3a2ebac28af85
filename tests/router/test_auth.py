"""API keys and scopes: the decision rules on their own, then the running service enforcing them."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from commands.main import app
from commands.process import ServiceProcess
from router.auth import ApiKeys, Scope, hash_key
from router.errors import AuthenticationError, PermissionDeniedError
from router.settings import Settings
from tests.router.service_checks import assert_error
from tests.service_config import ADMIN_KEY, USER_KEY, bearer

KEYS = {hash_key(USER_KEY): "user", hash_key(ADMIN_KEY): "admin"}
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


# --- the rules ----------------------------------------------------------------------------------------------


def test_keys_map_to_their_scope_and_user_keys_stop_at_admin_endpoints() -> None:
    keys = ApiKeys(KEYS)
    assert keys.authorize(f"Bearer {USER_KEY}", "10.0.0.5", Scope.USER) is Scope.USER
    assert keys.authorize(f"bearer {ADMIN_KEY}", "10.0.0.5", Scope.ADMIN) is Scope.ADMIN
    with pytest.raises(PermissionDeniedError):
        keys.authorize(f"Bearer {USER_KEY}", "10.0.0.5", Scope.ADMIN)


@pytest.mark.parametrize(
    "header", [None, "", "Bearer lr-wrong", "Basic dXNlcjpwYXNz", "Bearer ", f"Token {USER_KEY}"]
)
def test_missing_wrong_or_malformed_keys_are_401(header: str | None) -> None:
    with pytest.raises(AuthenticationError):
        ApiKeys(KEYS).authorize(header, "10.0.0.5", Scope.USER)


@pytest.mark.parametrize("header", [None, "Bearer unused", "Bearer sk-anything", "Basic dXNlcjpwYXNz", ""])
def test_without_keys_chat_is_open_to_any_header_but_admin_is_closed(header: str | None) -> None:
    # As a bare `vllm serve`: the header is not looked at, so the placeholder key every SDK sends is fine...
    keys = ApiKeys({})
    assert keys.authorize(header, "10.0.0.5", Scope.USER) is None
    # ...and no key of any kind opens the admin endpoints.
    for host in ("10.0.0.5", "127.0.0.1"):
        with pytest.raises(AuthenticationError, match="admin key"):
            keys.authorize(header, host, Scope.ADMIN)


def test_without_keys_admin_localhost_lets_loopback_clients_in_whatever_key_they_send() -> None:
    keys = ApiKeys({}, admin_localhost=True)
    assert keys.authorize("Bearer unused", "127.0.0.1", Scope.ADMIN) is Scope.ADMIN
    with pytest.raises(AuthenticationError):
        keys.authorize("Bearer unused", "10.0.0.5", Scope.ADMIN)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "127.3.4.5"])
def test_admin_localhost_opens_admin_to_loopback_only(host: str) -> None:
    keys = ApiKeys({}, admin_localhost=True)
    assert keys.authorize(None, host, Scope.ADMIN) is Scope.ADMIN
    for outside in ("10.0.0.5", "192.168.1.2", "::ffff:10.0.0.5", "testclient", None):
        with pytest.raises(AuthenticationError):
            keys.authorize(None, outside, Scope.ADMIN)


def test_admin_localhost_does_not_upgrade_a_user_key() -> None:
    with pytest.raises(PermissionDeniedError):
        ApiKeys(KEYS, admin_localhost=True).authorize(f"Bearer {USER_KEY}", "127.0.0.1", Scope.ADMIN)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({USER_KEY: "user"}, "not 'sha256:<64 hex digits>'"),  # a plain key where a hash belongs
        ({"sha256:" + "z" * 64: "user"}, "not 'sha256:<64 hex digits>'"),
        ({"sha256:" + "a" * 63: "user"}, "not 'sha256:<64 hex digits>'"),
        ({hash_key(USER_KEY): "root"}, "scope must be 'user' or 'admin'"),
    ],
)
def test_settings_refuse_plain_keys_and_unknown_scopes(entries: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(api_keys=entries)


def test_settings_read_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORA_ROUTER_API_KEYS", json.dumps(KEYS))
    monkeypatch.setenv("LORA_ROUTER_ADMIN_LOCALHOST", "true")
    settings = Settings()
    assert settings.api_keys == KEYS and settings.admin_localhost


def test_api_key_command_prints_a_new_key_and_the_entry_that_allows_it() -> None:
    done = CliRunner().invoke(app, ["api-key", "--scope", "admin"])
    assert done.exit_code == 0, done.output
    key = re.search(r"key \(give it to the client; it is not stored\): (\S+)", done.output).group(1)
    entry = json.loads(re.search(r"LORA_ROUTER_API_KEYS='(.+)'", done.output).group(1))
    assert key.startswith("lr-") and len(key) > 40 and key not in json.dumps(entry)
    assert ApiKeys(entry).authorize(f"Bearer {key}", "10.0.0.5", Scope.ADMIN) is Scope.ADMIN
    again = CliRunner().invoke(app, ["api-key"])
    assert re.search(r"not stored\): (\S+)", again.output).group(1) != key


# --- the running service ------------------------------------------------------------------------------------


def test_service_refuses_chat_without_a_valid_key(service: ServiceProcess) -> None:
    in_flight_before = httpx.get(f"{service.url}/health").json()["in_flight"]
    for headers in ({}, bearer("lr-wrong"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = httpx.post(f"{service.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30)
        assert_error(response, 401, "invalid_api_key", error_type="authentication_error")
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{service.url}/health").json()["in_flight"] == in_flight_before
    wrong = openai.OpenAI(base_url=f"{service.url}/v1", api_key="lr-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_user_key_chats_but_cannot_administer(service: ServiceProcess, http: httpx.Client) -> None:
    adapters_before = http.get("/v1/adapters").json()
    router_before = http.get("/v1/router").json()["version"]
    with httpx.Client(base_url=service.url, headers=bearer(USER_KEY), timeout=60) as user:
        assert user.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert user.get("/v1/models").status_code == 200
        assert user.post("/v1/route", json={"messages": CHAT["messages"]}).status_code == 200
        assert user.get("/v1/router").status_code == 200
        refused = [
            user.post("/v1/adapters", json={"name": "sneaky", "path": "alpha"}),
            user.delete("/v1/adapters/alpha"),
            user.get("/v1/adapters"),
            user.get("/v1/router/examples"),
            user.post("/v1/router/train", json={"examples": [{"text": "x", "label": "chat"}]}),
        ]
    for response in refused:
        assert_error(response, 403, "insufficient_scope", error_type="permission_error")
    assert http.get("/v1/adapters").json() == adapters_before
    assert http.get("/v1/router").json()["version"] == router_before


def test_health_and_readiness_need_no_key(service: ServiceProcess) -> None:
    assert httpx.get(f"{service.url}/health").status_code == 200
    assert httpx.get(f"{service.url}/ready").status_code == 200


def test_openapi_documents_the_auth_errors(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    paths = document["paths"]
    assert paths["/v1/chat/completions"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/health"]["get"]
    assert "401" in paths["/v1/chat/completions"]["post"]["responses"]
    assert {"401", "403"} <= paths["/v1/adapters"]["post"]["responses"].keys()
    assert {"401", "403"} <= paths["/v1/router/train"]["post"]["responses"].keys()
    assert "401" not in paths["/ready"]["get"]["responses"]
