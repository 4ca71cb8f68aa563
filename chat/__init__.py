"""The chat domain: models, agents, turns and rendering. Knows nothing of Gradio."""
