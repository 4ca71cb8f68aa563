"""A small stdio MCP server for the tests: two tools about letters (python tests/mcp_letters.py)."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("letters")


@server.tool()
def shout(text: str) -> str:
    """Say a text in capital letters."""
    return text.upper() + "!"


@server.tool()
def count_letters(word: str, letter: str) -> int:
    """How many times a letter appears in a word."""
    return word.casefold().count(letter.casefold())


if __name__ == "__main__":
    server.run()
