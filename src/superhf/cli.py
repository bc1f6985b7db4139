"""What every stage's command line shares: a documented parser and the entry wrapper.

``if __name__ == "__main__": run(main)`` turns a :class:`~superhf.errors.UserError` into
one line on stderr (``<stage>: error: <message>``) and exit status 2 (argparse's for a bad
command line: bad input either way), with no traceback;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from superhf.errors import MissingInputError, TrainingPaused, UserError

USER_ERROR_EXIT = 2  # a bad input (params, files, model folders), as argparse's usage errors
PAUSED_EXIT = 3  # a training stage paused at a step boundary (SUPERHF_PAUSE_AFTER_MIN)


def stage_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose ``--help`` names the stage (``python -m <module>``) and shows its
    module docstring: the summary as description, the example command lines as epilog."""
    summary, _, rest = doc.strip().partition("\n\n")
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=summary,
        epilog=rest or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_params_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--params",
        default="params.yaml",
        help="params file (YAML) holding this stage's section (default: %(default)s)",
    )


def add_seed_run_arg(ap: argparse.ArgumentParser, holds: str) -> None:
    """``--seed-run NAME=FOLDER`` (repeat): a training seed's metrics folder holding ``holds``."""
    ap.add_argument(
        "--seed-run",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help=f"a training seed's metrics folder ({holds}); repeat",
    )


def seed_runs(items: Iterable[str], needs: str) -> list[tuple[str, Path]]:
    """(name, folder) of each ``--seed-run NAME=FOLDER``; one whose form is wrong or whose
    folder lacks the file ``needs`` is an error naming it."""
    out = []
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / needs).is_file():
            need = Path(folder) / needs if sep else needs
            raise MissingInputError(f"--seed-run {item!r}: expected NAME=FOLDER with {need}")
        out.append((name, Path(folder)))
    return out


def stage_name(main: Callable[..., Any]) -> str:
    """``prepare`` for superhf.stages.prepare.main, also when run as ``python -m``."""
    spec = getattr(sys.modules.get(main.__module__), "__spec__", None)
    return (spec.name if spec else main.__module__).rsplit(".", 1)[-1]


def run(main: Callable[[Iterable[str] | None], Any], argv: Iterable[str] | None = None) -> Any:
    """Call ``main(argv)``; a user error becomes one line on stderr and exit status 2, a
    training stage's pause one line and exit status 3."""
    try:
        return main(argv)
    except UserError as exc:
        # one line per problem (a params file with three bad keys gives three lines)
        print(f"{stage_name(main)}: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_EXIT) from None
    except TrainingPaused as exc:
        print(f"{stage_name(main)}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(PAUSED_EXIT) from None
