"""The JSON Patch (RFC 6902) from one JSON value to the next: AG-UI's `STATE_DELTA` carries one."""

from __future__ import annotations

from typing import Any


def json_patch(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Operations that turn `old` into `new`: objects key by key, lists item by item (a list that grew gets
    its new items appended with `-`), anything else replaced whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        operations: list[dict[str, Any]] = []
        for key in old.keys() - new.keys():
            operations.append({"op": "remove", "path": f"{path}/{_escaped(key)}"})
        for key, value in new.items():
            where = f"{path}/{_escaped(key)}"
            if key not in old:
                operations.append({"op": "add", "path": where, "value": value})
            else:
                operations.extend(json_patch(old[key], value, where))
        return operations
    if isinstance(old, list) and isinstance(new, list):
        shared = min(len(old), len(new))
        operations = [op for i in range(shared) for op in json_patch(old[i], new[i], f"{path}/{i}")]
        # Removed from the end backwards, so each index still names the item it meant.
        operations += [{"op": "remove", "path": f"{path}/{i}"} for i in range(len(old) - 1, shared - 1, -1)]
        operations += [{"op": "add", "path": f"{path}/-", "value": value} for value in new[shared:]]
        return operations
    if old == new and type(old) is type(new):
        return []
    return [{"op": "replace", "path": path, "value": new}]


def _escaped(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
