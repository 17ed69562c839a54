"""mlmon.reports."""
