"""Exceptions shared by every layer, and the command line's exit codes (stdlib only).

Every problem the user can act on is a :class:`PSDNetError`; its message names what is
wrong and how to fix it, so the entry points (the Processing algorithms, the command line,
the batch runner) catch the base class and show the message as it is, without a traceback:

- :class:`PSDNetInputError`: bad input (a file, a parameter, a model that does not fit).
- :class:`PSDNetOutputError`: the output cannot be created or written (permissions, full disk).
- :class:`PSDNetResourceError`: the machine lacks something (memory, an importable torch).

:class:`PSDNetCanceled` is not a PSDNetError: a cancellation is the user's wish, reported
apart (its own exit code, no "error:"). Only PSDNetInputError keeps a built-in base
(ValueError, as before); the others derive from PSDNetError alone, so that no ``except OSError``
or ``except RuntimeError`` around GDAL or torch calls catches them by accident.
"""

from __future__ import annotations

#: Exit code of the command line when at least one scene of a batch failed.
EXIT_FAILED = 1
#: Exit code of the command line for any :class:`PSDNetError` (one line on stderr).
EXIT_INPUT = 2
#: Exit code after Ctrl-C / SIGTERM / :class:`PSDNetCanceled` (128 + SIGINT).
EXIT_CANCELED = 130


class PSDNetError(Exception):
    """A problem the user can fix. The message names the input, what is wrong and how to fix it."""


class PSDNetInputError(PSDNetError, ValueError):
    """Bad user input. The message names the input, what is wrong and how to fix it."""


class PSDNetOutputError(PSDNetError):
    """The output cannot be created or written (folder, permissions, full disk); partial files are removed."""


class PSDNetResourceError(PSDNetError):
    """The machine lacks a resource the run needs: memory (CPU or GPU), or an importable torch."""


class PSDNetCanceled(RuntimeError):
    """The run was cancelled by the user; partial outputs have been removed."""


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (what the command line prints after "error: ")."""
    return " ".join(str(err).split())
