"""Why an answer ended early, as stored in `ModelResponse.metadata[END_KEY]` (never sent to the model)."""

END_KEY = "ended"
STOPPED = "stopped"
"""The visitor pressed Stop, or left for another chat."""
CONNECTION_LOST = "connection_lost"
"""The provider's stream was cut off."""
SERVER_RESTARTED = "server_restarted"
"""The server died mid-answer; the text is as far as its last checkpoint (chat/journal.py)."""
