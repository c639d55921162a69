"""Shared plumbing with no domain knowledge: errors, atomic writes, progress, resource paths."""
