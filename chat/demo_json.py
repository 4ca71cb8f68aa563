"""The demo model's structured answers that are not recipes: a value that fits the JSON schema it was asked
for (an API client's `response_format`, or an output tool its own agent declared), built from the schema
alone, so a client's structured-output code runs offline end to end."""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 6
"""A schema that refers to itself (a tree) is followed this deep, then ends with the smallest value."""


def example_for(schema: dict[str, Any], prompt: str) -> Any:
    """A value that fits `schema`; a free-form object (no properties) holds the prompt's answer as `answer`."""
    return _value(schema, schema, prompt, depth=0)


def _value(schema: dict[str, Any], root: dict[str, Any], prompt: str, depth: int) -> Any:
    if "$ref" in schema:
        return _value(_resolved(schema["$ref"], root), root, prompt, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [option for option in schema.get(key, ()) if option.get("type") != "null"]
        if options:
            return _value(options[0], root, prompt, depth)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        if not properties:
            return {"answer": prompt} if depth == 0 else {}
        if depth >= MAX_DEPTH:
            return {}
        return {name: _value(field, root, prompt, depth + 1) for name, field in properties.items()}
    if kind == "array":
        if depth >= MAX_DEPTH:
            return []
        return [_value(schema.get("items") or {"type": "string"}, root, prompt, depth + 1)] * max(
            1, schema.get("minItems", 1)
        )
    if kind == "string":
        return prompt[: schema.get("maxLength", 80)] or "demo"
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return float(max(1, schema.get("minimum", 1)))
    if kind == "boolean":
        return True
    return None


def _resolved(reference: str, root: dict[str, Any]) -> dict[str, Any]:
    """A local `$ref` (`#/$defs/Name`, `#/definitions/Name`): schemas from pydantic and OpenAI clients use them."""
    target: Any = root
    for part in reference.removeprefix("#/").split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}
