"""mlmon.analysis."""
