"""complete-bridge: Anthropic's legacy Text Completions API served on the Messages API."""

__version__ = "0.1.0"
