"""mlmon.registry."""
