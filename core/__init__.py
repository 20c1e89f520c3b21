"""Trellis domain logic. Plain Python: never imports streamlit."""
