"""mlmon.lake."""
