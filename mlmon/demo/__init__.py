"""Demo model server and the end-to-end demo."""
