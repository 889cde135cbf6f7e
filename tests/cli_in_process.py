"""The real ``cryocurate`` command run in-process, as the tests of every command call it."""

from __future__ import annotations

import pytest

from cryocurate.cli.main import main


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Run ``cryocurate ARGV...``: its exit status, stdout and stderr."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err
