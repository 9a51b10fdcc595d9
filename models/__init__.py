"""The shipped models and their cards (installed as package data ``edge.models``)."""
