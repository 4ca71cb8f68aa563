from __future__ import annotations

import pytest
from pydantic_ai.models.openai import OpenAIChatModel

from chat.config import Settings
from chat.demo_model import DemoModel
from chat.models import ModelNotOffered, ModelResolver, ModelUnavailable, model_choices


def test_demo_is_the_default_and_first_in_the_menu():
    settings = Settings()
    assert model_choices(settings)[0] == "demo"
    assert isinstance(ModelResolver(settings).resolve(settings.default_model), DemoModel)


def test_menu_lists_configured_models_once():
    settings = Settings(model="openai-chat:gpt-4o-mini", extra_models=("demo", "anthropic:claude-sonnet-4-5"))
    assert model_choices(settings) == ["demo", "openai-chat:gpt-4o-mini", "anthropic:claude-sonnet-4-5"]


def test_unknown_model_string_explains_the_format():
    with pytest.raises(ModelUnavailable, match="Unknown model 'gpt-4o'.*provider prefix.*openai-chat:gpt-4o-mini"):
        ModelResolver(Settings(allow_any_model=True)).resolve("gpt-4o")


def test_missing_key_names_the_environment_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    problem = ModelResolver(Settings(extra_models=("openai-chat:gpt-4o-mini",))).check("openai-chat:gpt-4o-mini")
    assert problem is not None and "OPENAI_API_KEY" in problem


def test_missing_provider_package_names_the_pip_install():
    pytest.importorskip("pydantic_ai")
    try:
        import anthropic  # noqa: F401
    except ImportError:
        problem = ModelResolver(Settings(allow_any_model=True)).check("anthropic:claude-sonnet-4-5")
        assert problem is not None and 'pip install "pydantic-ai-slim[anthropic]"' in problem
    else:
        pytest.skip("anthropic is installed here, so the missing-package path cannot be shown")


def test_openai_compatible_server_uses_chat_completions_with_the_configured_url():
    settings = Settings(model="llama3.2", base_url="http://127.0.0.1:11434/v1")
    assert settings.default_model == "compatible:llama3.2"
    model = ModelResolver(settings).resolve("compatible:llama3.2")
    assert isinstance(model, OpenAIChatModel)
    assert model.model_name == "llama3.2"
    assert model.base_url.startswith("http://127.0.0.1:11434/v1")


def test_empty_model_name_is_reported():
    assert "No model selected" in ModelResolver(Settings()).check("  ")


@pytest.mark.parametrize("name", ["openai:o1-pro", "groq:llama-3.3-70b", "demo ", "DEMO", "test"])
def test_a_model_the_operator_did_not_offer_is_refused_before_any_provider_is_built(monkeypatch, name):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-key")  # a key is set: only the offer list stands in the way
    resolver = ModelResolver(Settings(model="openai-chat:gpt-4o-mini"))
    if name.strip() == "demo":
        assert isinstance(resolver.resolve(name), DemoModel)  # surrounding spaces are not a different model
        return
    with pytest.raises(ModelNotOffered) as refused:
        resolver.resolve(name)
    assert refused.value.offered == ["demo", "openai-chat:gpt-4o-mini"]
    assert "--extra-models" in str(refused.value) and "--allow-any-model" in str(refused.value)


def test_allow_any_model_lets_a_local_user_name_any_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    model = ModelResolver(Settings(allow_any_model=True)).resolve("openai-chat:gpt-4.1-nano")
    assert isinstance(model, OpenAIChatModel) and model.model_name == "gpt-4.1-nano"
