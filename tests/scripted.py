"""A model resolver for tests: named FunctionModels, and the demo model at a chosen pace for the rest."""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent, FunctionToolset
from pydantic_ai.models import Model
from pydantic_ai.models.function import FunctionModel

from chat.agents import build_chat_agent
from chat.config import POLICY_KINDS, Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver
from chat.turns import ChatService
from chat.wings.context_policies import ContextPolicies
from chat.wings.mcp_servers import McpServers
from storage.catalogue import CataloguedStore
from storage.turn_journal import TurnJournal


class ScriptedResolver(ModelResolver):
    def __init__(self, pace: DemoPace | None = None, **models: FunctionModel) -> None:
        super().__init__(Settings(extra_models=tuple(models)), pace or DemoPace.instant())
        self.scripted = models

    def resolve(self, name: str) -> Model:
        return self.scripted.get(name) or super().resolve(name)


def chat_service(
    store: CataloguedStore,
    models: ModelResolver,
    *,
    agent: Agent | None = None,
    settings: Settings | None = None,
    journal: TurnJournal | None = None,
    mcp_servers: McpServers | None = None,
    tools: FunctionToolset[Any] | None = None,
    approvals: bool = True,
    **options: Any,
) -> ChatService:
    """A ChatService with the wings `python app.py` runs with (server.chat_wings), on these models."""
    from server import chat_wings, context_policies

    # Every policy, unless a test says otherwise (a server offers those of its settings).
    context = context_policies(settings or Settings(context_choices=POLICY_KINDS), store, models)
    wings = chat_wings(store, context, mcp_servers=mcp_servers, journal=journal, tools=tools, approvals=approvals)
    return ChatService(agent or build_chat_agent(), store, models, wings=wings, **options)


def context_of(service: ChatService) -> ContextPolicies:
    return next(wing for wing in service.wings if isinstance(wing, ContextPolicies))
