"""How the command line ends: one line on stderr for every error, and an exit status that says what happened.

    0    done
    1    a run finished with failed jobs (`JobsFailed`): the finished work is kept
    2    bad input: a spec, task file, import or argument refused before work started (`TransferlabError`),
         or a usage error (an unknown option, a value outside an option's bounds)
    130  interrupted: finished jobs are kept, the same command resumes

`cli.main` hands its Typer app to `run_app`; nothing here knows the commands.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from transferlab.errors import TransferlabError


def run_app(app: Any, err: Any) -> None:
    """Run a Typer app, printing errors as one line (`err` is a Rich console on stderr); never returns."""
    import typer
    from rich.markup import escape

    click = _click()

    try:
        code = app(standalone_mode=False)
    except TransferlabError as e:
        err.print(f"[red]error:[/] {escape(one_line(str(e)))}", highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except click.exceptions.NoArgsIsHelpError as e:  # `transferlab` or `transferlab tasks` alone: the help
        _show(e)
    except click.exceptions.UsageError as e:
        where = f"; see `{e.ctx.command_path} --help`" if e.ctx is not None else ""
        message = one_line(e.format_message().rstrip(".") + where)
        err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.ClickException as e:
        _show(e)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        code = 130
    if code == 130:
        err.print("interrupted: finished jobs are kept; run the same command again to resume")
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


def _click() -> Any:
    """The click that Typer runs on: recent Typer carries its own copy (`typer._click`)."""
    try:
        from typer import _click as vendored  # type: ignore[attr-defined]

        return vendored
    except ImportError:
        import click

        return click


def one_line(text: str) -> str:
    """A message on one line: a line break inside it (a YAML parser's, a library's) becomes a space."""
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _show(e: Any) -> None:
    from typer import rich_utils

    rich_utils.rich_format_error(e)
    sys.exit(e.exit_code)
