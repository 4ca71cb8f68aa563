"""HTTP front ends beside the Gradio UI: a Server-Sent Events chat API and its demo page."""
