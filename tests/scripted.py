"""A model resolver for tests: named FunctionModels, and the demo model at a chosen pace for the rest."""

from __future__ import annotations

from pydantic_ai.models import Model
from pydantic_ai.models.function import FunctionModel

from chat.config import Settings
from chat.demo_model import DemoPace
from chat.models import ModelResolver


class ScriptedResolver(ModelResolver):
    def __init__(self, pace: DemoPace | None = None, **models: FunctionModel) -> None:
        super().__init__(Settings(extra_models=tuple(models)), pace or DemoPace.instant())
        self.scripted = models

    def resolve(self, name: str) -> Model:
        return self.scripted.get(name) or super().resolve(name)
