"""mlmon.governance."""
