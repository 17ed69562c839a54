"""mlmon.edge."""
