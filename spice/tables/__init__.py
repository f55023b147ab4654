"""Faust tables and the views they back."""
