"""Errors a user can fix: a bad params key, a missing folder, a broken input file.

Each carries one message naming the key, file or row. The stage entry points
(:func:`superhf.cli.run`) print it as one line and exit non-zero, without a traceback;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An input the user can fix; its message names the key, file or row."""


class MissingInputError(UserError, FileNotFoundError):
    """An input file or folder that a stage needs is not there."""


class BadInputError(UserError, ValueError):
    """An input file is there but cannot be used: not parsable, wrong shape, wrong types."""


class TrainingPaused(Exception):
    """A training stage stopped on purpose at a step boundary once its time was up
    (``SUPERHF_PAUSE_AFTER_MIN``): its checkpoint holds every step so far, and the same
    command resumes from it. Not an error: the stage exits with status 3."""
