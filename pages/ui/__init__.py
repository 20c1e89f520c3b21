"""Shared UI pieces (not pages): Streamlit treats only *.py directly in pages/ as pages."""
