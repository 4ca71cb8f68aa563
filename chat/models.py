"""Which model answers: the offline demo model, any pydantic-ai model string, or an OpenAI-compatible server.

Resolution is lazy and per name, so a missing key or provider package never stops the app from
starting: it becomes a `ModelUnavailable` whose message names the exact fix, shown in the UI.
"""

from __future__ import annotations

import logging
import threading

from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model, infer_model

from chat.config import DEMO_MODEL, Settings
from chat.demo_model import Audience, DemoModel, DemoPace

log = logging.getLogger(__name__)

MODEL_STRING_EXAMPLES = "'openai-chat:gpt-4o-mini', 'anthropic:claude-sonnet-4-5', 'ollama:llama3.2' or 'demo'"


class ModelUnavailable(Exception):
    """A model that cannot be used as configured; the message says why and how the operator fixes it.

    `for_visitor` is the same in one short sentence for someone using the page, who cannot fix it.
    """

    def __init__(self, message: str, for_visitor: str = "it is not set up on this server.") -> None:
        super().__init__(message)
        self.for_visitor = for_visitor


class ModelNotOffered(ModelUnavailable):
    """A model the operator did not offer: refused before any provider request, whatever keys are set."""

    def __init__(self, name: str, offered: list[str]) -> None:
        super().__init__(
            f"Model {name!r} is not offered on this server. Offer it with --extra-models (CHAT_EXTRA_MODELS), "
            "or start with --allow-any-model for local use.",
            "this server does not offer it.",
        )
        self.offered = offered


def model_choices(settings: Settings) -> list[str]:
    """The model menu: the demo model first, then the configured ones, without repeats."""
    choices = [DEMO_MODEL, settings.default_model, *settings.extra_models]
    return list(dict.fromkeys(choices))


class ModelResolver:
    """Turns a menu entry into a pydantic-ai `Model`, once per name; safe to share between threads."""

    def __init__(self, settings: Settings, demo_pace: DemoPace | None = None) -> None:
        self._settings = settings
        self._demo_pace = demo_pace or DemoPace(
            first_token_delay=settings.demo_first_token_delay,
            tokens_per_second=settings.demo_tokens_per_second,
        )
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()
        self._logged: set[str] = set()

    @property
    def settings(self) -> Settings:
        return self._settings

    def resolve(self, name: str) -> Model:
        self.check_offered(name)
        name = (name or "").strip()
        with self._lock:
            if name not in self._models:
                self._models[name] = self._build(name)
            return self._models[name]

    def offered(self) -> list[str]:
        """The models this server runs, as a client names them."""
        return model_choices(self._settings)

    def check_offered(self, name: str) -> None:
        """`ModelNotOffered` unless the operator offers `name` (or allows any model)."""
        name = (name or "").strip()
        offered = model_choices(self._settings)
        if name and name not in offered and not self._settings.allow_any_model:
            raise ModelNotOffered(name, offered)  # before any provider request: visitors spend the operator's keys

    def costs_money(self, name: str) -> bool:
        """Whether a run of `name` is paid for by someone (the per-address token budget counts it): every
        provider's model string is, and the `--base-url` server's model when it has a key (`CHAT_API_KEY`);
        the demo model and a keyless server (Ollama, llama.cpp, vLLM on your machine) are not."""
        name = (name or "").strip()
        if name == DEMO_MODEL:
            return False
        if name == self._settings.compatible_model_label:
            return bool(self._settings.api_key)
        return True

    def check(self, name: str) -> str | None:
        """The reason `name` cannot be used, or None when it can."""
        try:
            self.resolve(name)
        except ModelUnavailable as error:
            return str(error)
        return None

    def visitor_problem(self, name: str) -> str | None:
        """Why `name` cannot answer, in one sentence for the visitor; the operator's fix goes to the log once."""
        try:
            self.resolve(name)
        except ModelUnavailable as error:
            if name not in self._logged:
                self._logged.add(name)
                log.warning("model %r is offered but cannot run: %s", name, error)
            return error.for_visitor
        return None

    def _build(self, name: str) -> Model:
        if not name:
            raise ModelUnavailable(
                f"No model selected. Choose one in the Model menu, e.g. {MODEL_STRING_EXAMPLES}.",
                "no model is selected.",
            )
        if name == DEMO_MODEL:
            audience = Audience(operator=not self._settings.on_a_space, other_models=len(self.offered()) > 1)
            return DemoModel(pace=self._demo_pace, audience=audience)
        if name == self._settings.compatible_model_label:
            # Imported here: the openai package costs about 0.6 s of start-up, which the demo model never needs.
            from openai import AsyncOpenAI
            from pydantic_ai.models.openai import OpenAIChatModel
            from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

            client = AsyncOpenAI(
                base_url=self._settings.base_url,
                # Local servers (Ollama, llama.cpp) accept any key, but the OpenAI client insists on one.
                api_key=self._settings.api_key or "not-needed",
                max_retries=self._settings.provider_retries,
                timeout=self._settings.request_timeout,
            )
            provider = OpenAICompatibleProvider("compatible", openai_client=client)
            return OpenAIChatModel(self._settings.model, provider=provider)
        try:
            return infer_model(name)
        except ImportError as error:
            raise ModelUnavailable(
                f"Model '{name}' needs a provider package that is not installed. {error}",
                "its provider package is not installed on this server.",
            ) from error
        except UserError as error:
            if str(error).startswith("Unknown model"):
                raise ModelUnavailable(
                    f"Unknown model '{name}'. Use a pydantic-ai model string with its provider prefix, "
                    f"e.g. {MODEL_STRING_EXAMPLES}. For an OpenAI-compatible server set CHAT_BASE_URL "
                    "and CHAT_MODEL to the name it serves.",
                    "this app does not know that model name.",
                ) from error
            raise ModelUnavailable(
                f"Model '{name}' is not configured: {error} Then restart the app.",
                "its API key is not configured on this server.",
            ) from error
