"""LM profiles owned by the operator (lm/profiles.py, lm/policy.py, lm/factory.py; docs/security.md): where a key
may go is the operator's decision, never a request's. The one HTTP server here is a double of a provider."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dspy
import pytest

from dspex_worker.lm.factory import NO_KEY, LMFactory
from dspex_worker.lm.profiles import LMPolicy, LMProfilesError, load_policy, normalize_url
from dspex_worker.programs.ensemble import EnsembleProgram
from dspex_worker.programs.modules import apply_state, build_module, safe_dspy_state
from dspex_worker.protocol.errors import LMConfigError
from dspex_worker.signatures import SignatureCache

SIG = {
    "inputs": [{"name": "question", "type": {"kind": "str"}}],
    "outputs": [{"name": "answer", "type": {"kind": "str"}}],
}


def policy(**env: str) -> LMPolicy:
    return load_policy(env)


def refusal(factory: LMFactory, lm: dict[str, Any] | None) -> LMConfigError:
    with pytest.raises(LMConfigError) as err:
        factory.get(lm)
    return err.value


# ---- the operator's configuration


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("HTTPS://API.Example.COM:443/v1", "https://api.example.com/v1"),
        ("http://lm.internal:80", "http://lm.internal"),
        ("http://[::1]:9000/v1//", "http://[::1]:9000/v1"),
    ],
)
def test_endpoints_are_compared_in_one_spelling(url: str, normal: str) -> None:
    assert normalize_url(url) == normal


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://h/v1", "http:// or https://"),
        ("http://user:pw@h/v1", "credentials"),
        ("http://h@evil.example/v1", "credentials"),
        ("http://h/v1?x=1", "query or fragment"),
        ("http://h/v1#frag", "query or fragment"),
        ("http://h/v1/../admin", ". or .."),
        ("http://h\\@evil/v1", "backslashes"),
        ("http:///v1", "host"),
        ("http://h:99999/v1", "not a URL"),
    ],
)
def test_endpoints_that_hide_another_host_are_not_urls_here(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        normalize_url(url)


def test_dspex_lm_is_the_default_profile() -> None:
    p = policy(
        DSPEX_LM="openai/m", DSPEX_LM_API_BASE="http://h:1/v1/", DSPEX_LM_API_KEY_ENV="K", DSPEX_LM_NUM_RETRIES="2"
    )
    assert p.default == "default"
    d = p.profiles["default"]
    assert (d.model, d.api_base, d.api_key_env, dict(d.knobs)) == ("openai/m", "http://h:1/v1", "K", {"num_retries": 2})
    assert policy().default is None and policy().profiles == {}


def test_profiles_from_a_file_and_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "lm.json"
    file.write_text(
        json.dumps(
            {
                "profiles": {
                    "fast": {"model": "openai/small", "api_base": "http://a/v1", "temperature": 0.1},
                    "big": {"model": "openai/big", "api_base": "http://b/v1", "api_key_env": "BIG_KEY"},
                },
                "default_profile": "fast",
                "allow_endpoints": [{"url": "http://c/v1/", "api_key_env": "C_KEY"}],
            }
        )
    )
    p = policy(
        DSPEX_LM_PROFILES_FILE=str(file),
        DSPEX_LM_PROFILES=json.dumps({"profiles": {"big": {"model": "openai/bigger", "api_base": "http://b2/v1"}}}),
        DSPEX_LM_ALLOW_ENDPOINTS="http://d:81/v1, http://e/v1",
    )
    assert p.default == "fast", "the file's default_profile"
    assert p.profiles["big"].model == "openai/bigger" and p.profiles["big"].api_key_env is None, "the env's replaces"
    assert sorted(p.endpoints) == ["http://c/v1", "http://d:81/v1", "http://e/v1"]
    assert p.endpoints["http://c/v1"].api_key_env == "C_KEY"
    assert policy(
        DSPEX_LM="openai/m", DSPEX_LM_PROFILES_FILE=str(file), DSPEX_LM_DEFAULT_PROFILE="default"
    ).default == ("default")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"DSPEX_LM_PROFILES": "{nope"}, "DSPEX_LM_PROFILES: not valid JSON"),
        ({"DSPEX_LM_PROFILES": '{"profiles": {"x": {}}}'}, "DSPEX_LM_PROFILES: profiles.x.model: is required"),
        ({"DSPEX_LM_PROFILES": '{"profiles": {"x": {"model": "m"}}}'}, "profiles.x.model"),
        (
            {"DSPEX_LM_PROFILES": '{"profiles": {"x": {"model": "openai/m", "api_key_env": "A B"}}}'},
            "profiles.x.api_key_env",
        ),
        ({"DSPEX_LM_PROFILES": '{"profiles": {"x": {"model": "openai/m", "url": 1}}}'}, "profiles.x.url"),
        (
            {"DSPEX_LM_PROFILES": '{"profiles": {"x": {"model": "openai/m", "models": ["anthropic/c"]}}}'},
            "profiles.x.models[0]: 'anthropic/c' is not a openai/ model",
        ),
        ({"DSPEX_LM": "openai/m", "DSPEX_LM_API_BASE": "http://u:p@h/v1"}, "DSPEX_LM: profiles.default.api_base"),
        ({"DSPEX_LM": "openai/m", "DSPEX_LM_NUM_RETRIES": "x"}, "DSPEX_LM_NUM_RETRIES"),
        ({"DSPEX_LM_DEFAULT_PROFILE": "ghost"}, "DSPEX_LM_DEFAULT_PROFILE: names profile 'ghost'"),
        ({"DSPEX_LM_ALLOW_ENDPOINTS": "http://h/v1?k=1"}, "DSPEX_LM_ALLOW_ENDPOINTS: allow_endpoints[0].url"),
        ({"DSPEX_LM_PROFILES_FILE": "/nonexistent/lm.json"}, "DSPEX_LM_PROFILES_FILE /nonexistent/lm.json"),
    ],
)
def test_a_bad_configuration_names_its_source_and_field(env: dict[str, str], words: str) -> None:
    with pytest.raises(LMProfilesError) as err:
        load_policy(env)
    assert words in str(err.value), str(err.value)


# ---- requests under the policy


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch) -> LMFactory:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient")
    monkeypatch.setenv("PROFILE_KEY", "sk-profile")
    monkeypatch.setenv("ALLOWED_KEY", "sk-allowed")
    monkeypatch.delenv("MISSING_KEY", raising=False)
    return LMFactory(
        allow_test_models=True,
        policy=policy(
            DSPEX_LM="openai/test-model",
            DSPEX_LM_API_BASE="http://double:1/v1",
            DSPEX_LM_PROFILES=json.dumps(
                {
                    "profiles": {
                        "keyed": {
                            "model": "openai/big",
                            "models": ["openai/bigger"],
                            "api_base": "http://keyed/v1",
                            "api_key_env": "PROFILE_KEY",
                            "temperature": 0.3,
                            "adapter": "json",
                        },
                        "unkeyed": {"model": "openai/x", "api_key_env": "MISSING_KEY"},
                    }
                }
            ),
            DSPEX_LM_ALLOW_ENDPOINTS=json.dumps(
                [
                    {"url": "http://allowed:2/v1", "api_key_env": "ALLOWED_KEY"},
                    {"url": "http://pinned/v1", "models": ["x/y"]},
                ]
            ),
        ),
    )


def kwargs_of(lm: dspy.LM) -> dict[str, Any]:
    return dict(lm.kwargs)


def test_no_lm_is_the_default_profile_with_a_placeholder_key(factory: LMFactory) -> None:
    lm, adapter = factory.resolve(None)
    assert lm.model == "openai/test-model" and adapter is None
    kw = kwargs_of(lm)
    assert kw["api_base"] == "http://double:1/v1"
    assert kw["api_key"] == NO_KEY, "never the ambient OPENAI_API_KEY"
    assert factory.get({}) is lm and factory.get({"model": "openai/test-model"}) is lm


def test_a_profile_sends_its_own_key_to_its_own_endpoint_with_its_knobs(factory: LMFactory) -> None:
    lm, adapter = factory.resolve({"profile": "keyed"})
    kw = kwargs_of(lm)
    assert (lm.model, kw["api_base"], kw["api_key"], kw["temperature"]) == (
        "openai/big",
        "http://keyed/v1",
        "sk-profile",
        0.3,
    )
    assert isinstance(adapter, dspy.JSONAdapter), "the profile's adapter"
    other = factory.get({"profile": "keyed", "model": "openai/bigger", "temperature": 0.9, "max_tokens": 50})
    assert (other.model, kwargs_of(other)["temperature"], kwargs_of(other)["max_tokens"]) == ("openai/bigger", 0.9, 50)
    assert factory.resolve({"profile": "keyed", "adapter": "chat"})[1] is None, "a request may change the adapter"
    assert factory.get({"profile": "keyed", "api_key_env": "PROFILE_KEY"}) is lm, "repeating the profile's own key"


def test_a_request_cannot_choose_an_endpoint(factory: LMFactory) -> None:
    e = refusal(factory, {"model": "openai/test-model", "api_base": "http://evil.example/v1"})
    assert e.field == "lm.api_base" and "does not let a request choose the endpoint" in e.message
    e = refusal(factory, {"model": "openai/test-model", "api_base": "http://double:1/v1"})
    assert e.field == "lm.api_base", "not even the default profile's: endpoints are allowed explicitly"
    e = refusal(factory, {"profile": "keyed", "api_base": "http://allowed:2/v1"})
    assert e.field == "lm.api_base" and "cannot change its endpoint" in e.message
    e = refusal(factory, {"model": "openai/m", "api_base": "http://u:p@allowed:2/v1"})
    assert e.field == "lm.api_base" and "credentials" in e.message


def test_a_request_cannot_choose_a_key_and_learns_nothing_of_the_environment(factory: LMFactory) -> None:
    home = refusal(factory, {"api_key_env": "HOME"})
    missing = refusal(factory, {"api_key_env": "NO_SUCH_VARIABLE"})
    other = refusal(factory, {"api_key_env": "PROFILE_KEY"})
    assert home.field == missing.field == other.field == "lm.api_key_env"
    assert home.message.replace("HOME", "X") == missing.message.replace("NO_SUCH_VARIABLE", "X")
    assert home.message.replace("HOME", "X") == other.message.replace("PROFILE_KEY", "X")
    for e in (home, missing, other):
        assert "not set" not in e.message and "OPENAI_API_KEY" not in e.message
    e = refusal(factory, {"profile": "unkeyed"})
    assert (
        e.field == "lm.profile" and e.message == "lm.profile: profile 'unkeyed''s key is not configured on this worker"
    )
    assert "MISSING_KEY" not in e.message


def test_models_and_profiles_a_request_may_name(factory: LMFactory) -> None:
    e = refusal(factory, {"model": "openai/gpt-4o"})
    assert e.field == "lm.model" and "profile 'default' does not offer 'openai/gpt-4o'" in e.message
    e = refusal(factory, {"profile": "ghost"})
    assert e.field == "lm.profile" and "default, keyed, unkeyed" in e.message
    e = refusal(LMFactory(policy=policy()), None)
    assert e.field == "lm" and "no default profile" in e.message
    e = refusal(LMFactory(policy=policy()), {"model": "dspex/echo"})
    assert e.field == "lm.model" and "--allow-test-models" in e.message
    assert factory.get({"model": "dspex/echo"}).model == "dspex/echo", "test models need no profile"


def test_an_allow_listed_endpoint_gets_only_the_key_its_entry_names(factory: LMFactory) -> None:
    plain = factory.get({"model": "openai/m", "api_base": "HTTP://ALLOWED:2/v1/"})
    assert kwargs_of(plain)["api_base"] == "http://allowed:2/v1" and kwargs_of(plain)["api_key"] == NO_KEY
    keyed = factory.get({"model": "openai/m", "api_base": "http://allowed:2/v1", "api_key_env": "ALLOWED_KEY"})
    assert kwargs_of(keyed)["api_key"] == "sk-allowed"
    e = refusal(factory, {"model": "openai/m", "api_base": "http://allowed:2/v1", "api_key_env": "PROFILE_KEY"})
    assert e.field == "lm.api_key_env"
    e = refusal(factory, {"model": "anthropic/c", "api_base": "http://allowed:2/v1"})
    assert e.field == "lm.model" and "openai/<model>" in e.message
    e = refusal(factory, {"api_base": "http://allowed:2/v1"})
    assert e.field == "lm.model"
    assert factory.get({"model": "x/y", "api_base": "http://pinned/v1"}).model == "x/y"
    assert refusal(factory, {"model": "openai/m", "api_base": "http://pinned/v1"}).field == "lm.model"


# ---- what the client libraries send (verified against a provider double, not assumed)


class ProviderDouble(BaseHTTPRequestHandler):
    """A double of an OpenAI-compatible provider: records the Authorization header, answers one completion."""

    seen: list[str | None] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        ProviderDouble.seen.append(self.headers.get("authorization"))
        content = "[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]"
        body = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), ProviderDouble)
    ProviderDouble.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_configured_key_the_client_libraries_send_the_placeholder(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """litellm and DSPy's native engine read OPENAI_API_KEY when given no key: the factory always gives one."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient")
    monkeypatch.setenv("PROFILE_KEY", "sk-profile")
    factory = LMFactory(
        policy=policy(
            DSPEX_LM="openai/m",
            DSPEX_LM_API_BASE=provider,
            DSPEX_LM_PROFILES=json.dumps(
                {"profiles": {"k": {"model": "openai/m", "api_base": provider, "api_key_env": "PROFILE_KEY"}}}
            ),
        )
    )
    predict = dspy.Predict("question -> answer")
    for lm_map in (None, {"profile": "k"}):
        lm = factory.get(lm_map)
        for engine in ("auto", "litellm"):
            with dspy.context(lm=lm.copy(engine=engine)):
                assert predict(question="q").answer == "ok"
    assert ProviderDouble.seen == [f"Bearer {NO_KEY}"] * 2 + ["Bearer sk-profile"] * 2


# ---- stored programs


def test_a_stored_state_keeps_learned_state_only() -> None:
    _, signature = SignatureCache().get_or_build(SIG)
    predict = build_module("predict", signature)
    state = predict.dump_state()
    state.update({"config": {"api_base": "http://evil/v1"}, "lm": {"model": "openai/x"}, "forward": 1})
    safe = safe_dspy_state(predict, state)
    assert set(safe) == {"traces", "train", "demos", "signature", "lm"} and safe["lm"] is None
    apply_state(predict, {"dspy_state": state})
    assert predict.config == {} and predict.lm is None
    cot = build_module("chain_of_thought", signature)
    nested = {"predict": {**cot.predict.dump_state(), "config": {"api_base": "http://evil/v1"}}}
    apply_state(cot, {"dspy_state": nested})
    assert cot.predict.config == {}
    ensemble = EnsembleProgram(signature)
    spec = {"ensemble": {"members": [{"module": "predict", "dspy_state": state}], "size": None}}
    assert safe_dspy_state(ensemble, spec) is spec, "an ensemble reads its own state"
    apply_state(ensemble, {"dspy_state": spec})
    assert ensemble.members[0].config == {} and ensemble.members[0].lm is None, "its members' states are reduced"
