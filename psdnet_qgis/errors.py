"""Exceptions shared by every layer (stdlib only)."""

from __future__ import annotations


class PSDNetInputError(ValueError):
    """Bad user input. The message names the input, what is wrong and how to fix it."""


class PSDNetCanceled(RuntimeError):
    """The run was cancelled by the user; partial outputs have been removed."""
