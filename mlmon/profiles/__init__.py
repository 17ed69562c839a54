"""mlmon.profiles."""
