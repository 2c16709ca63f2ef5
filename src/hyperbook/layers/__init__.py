"""Reusable pieces shared by several chapters."""
