"""The CLI's contract for bad input: exit code 2 and one ``bench: error:`` line, no traceback."""

from __future__ import annotations

from bench.cli import main


def one_error(capsys, argv: list[str]) -> str:
    """Run ``bench argv`` in this process; assert the contract and return the line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("bench: error: ")
    return lines[0]
