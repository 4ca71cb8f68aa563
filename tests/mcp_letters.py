"""A small stdio MCP server for the tests (python tests/mcp_letters.py): two read-only tools about letters,
one that erases a file (marked destructive) and one that writes a file (marked nothing, as most servers'
tools are): the chat asks the visitor before either of the last two runs."""

from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("letters")
READ_ONLY = ToolAnnotations(read_only_hint=True)


@server.tool(annotations=READ_ONLY)
def shout(text: str) -> str:
    """Say a text in capital letters."""
    return text.upper() + "!"


@server.tool(annotations=READ_ONLY)
def count_letters(word: str, letter: str) -> int:
    """How many times a letter appears in a word."""
    return word.casefold().count(letter.casefold())


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
def erase(path: str) -> str:
    """Delete a file for good."""
    Path(path).unlink()
    return f"Erased {path}."


@server.tool()
def write(path: str, text: str) -> str:
    """Write a text into a file."""
    Path(path).write_text(text, encoding="utf-8")
    return f"Wrote {path}."


if __name__ == "__main__":
    server.run()
