"""Options shared by the page's own events."""

from __future__ import annotations

from typing import Any

PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
"""Page-internal events: no API endpoint, and no spinner over the sidebar or the box while they run.
(Hidden is not protected: every handler still checks its visitor.)"""
