"""The verification report: findings from every check, one serialisable object.

Saved as `verification.json` beside each exported version and printed as a table. A finding of
severity `error` means the artefact is not safe to serve; `warning` needs a human look; `info`
records what was checked and found fine.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

from kerasdrop.errors import KerasdropError

SEVERITIES = ("error", "warning", "info")
# `kerasdrop verify`'s exit status per verdict (2, unusable input, is raised before any verdict):
# "graph-only" = no error found, but no runtime could execute an artefact, so only its graph was judged.
EXIT_CODES = {"pass": 0, "fail": 1, "graph-only": 3}


class UnusableInputError(KerasdropError, ValueError):
    """The thing to verify is missing, corrupt or cannot be loaded (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str  # structure | graph | numerical | parity
    severity: str  # error | warning | info
    location: str  # layer, op or node the finding is about
    message: str  # what was found
    action: str = ""  # what the user should do about it

    def __post_init__(self):
        assert self.severity in SEVERITIES, self.severity


@dataclasses.dataclass
class CheckRun:
    """One check that ran on one target, with how long it took."""

    check: str
    target: str
    seconds: float
    detail: str = ""


@dataclasses.dataclass
class Report:
    target: str
    kind: str  # keras | savedmodel | onnx | litert | openvino | export
    findings: list[Finding] = dataclasses.field(default_factory=list)
    checks: list[CheckRun] = dataclasses.field(default_factory=list)
    tolerances: dict = dataclasses.field(default_factory=dict)
    # Layers `kerasdrop export` turned off by tracing training=False (a plain model.export would not):
    # [{"layer": path, "class": class name, "reason": why it is active otherwise}].
    neutralised: list = dataclasses.field(default_factory=list)
    # Artefacts no runtime could execute (judged from their graph alone): [{"artefact": path, "reason": why}].
    not_run: list = dataclasses.field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def verdict(self) -> str:
        """`fail` (an error), `graph-only` (no error, but something was never run), or `pass` (proven)."""
        return "fail" if self.errors else "graph-only" if self.not_run else "pass"

    @property
    def ok(self) -> bool:
        """Proven: no error, and every artefact was run. A graph-only verdict is not a proof."""
        return self.verdict == "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def add(self, check: str, severity: str, location: str, message: str, action: str = "") -> None:
        self.findings.append(Finding(check, severity, location, message, action))

    def extend(self, other: Report) -> None:
        self.findings.extend(other.findings)
        self.checks.extend(other.checks)
        self.tolerances.update(other.tolerances)
        self.neutralised.extend(other.neutralised)
        self.not_run.extend(other.not_run)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "ok": self.ok,
            "verdict": self.verdict,
            "summary": {
                severity: sum(f.severity == severity for f in self.findings) for severity in SEVERITIES
            },
            "findings": [dataclasses.asdict(finding) for finding in self.findings],
            "checks": [dataclasses.asdict(check) for check in self.checks],
            "tolerances": self.tolerances,
            "neutralised": self.neutralised,
            "not_run": self.not_run,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        return cls(
            target=data["target"],
            kind=data["kind"],
            findings=[Finding(**finding) for finding in data["findings"]],
            checks=[CheckRun(**check) for check in data.get("checks", [])],
            tolerances=data.get("tolerances", {}),
            neutralised=data.get("neutralised", []),
            not_run=data.get("not_run", []),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | pathlib.Path) -> None:
        pathlib.Path(path).write_text(self.to_json() + "\n")

    def print(self, console=None, *, show_info: bool = True) -> None:
        """Prints errors and warnings as a table, then one line per passed check."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = console or Console()
        verdict = {
            "pass": "[bold green]PASS[/]",
            "fail": "[bold red]FAIL[/]",
            "graph-only": "[bold yellow]GRAPH ONLY (not run: no runtime could execute it)[/]",
        }[self.verdict]
        console.print(f"kerasdrop verify — {escape(self.target)} ({self.kind}): {verdict}")
        problems = [finding for finding in self.findings if finding.severity != "info"]
        if problems:
            table = Table(show_lines=True)
            table.add_column("severity")
            table.add_column("check")
            table.add_column("location", overflow="fold", max_width=20)
            table.add_column("finding → what to do", overflow="fold", ratio=1)
            for finding in sorted(problems, key=lambda f: SEVERITIES.index(f.severity)):
                colour = "red" if finding.severity == "error" else "yellow"
                text = escape(finding.message) + (
                    f"\n[bold]→[/] {escape(finding.action)}" if finding.action else ""
                )
                table.add_row(
                    f"[{colour}]{finding.severity}[/]", finding.check, escape(finding.location), text
                )
            console.print(table)
        if show_info:
            for finding in self.findings:
                if finding.severity == "info":
                    console.print(
                        f"  [green]✓[/] [dim]{finding.check:<9}[/] {escape(finding.location)}: "
                        f"{escape(finding.message)}",
                        highlight=False,
                    )
        for layer in self.neutralised:
            console.print(
                f"  [yellow]neutralised[/] {escape(layer['layer'])} ({escape(layer['class'])}): "
                f"{escape(layer['reason'])}; this export traced training=False, a plain model.export "
                "would keep it active",
                highlight=False,
            )
        for artefact in self.not_run:
            console.print(
                f"  [yellow]not run[/] {escape(artefact['artefact'])}: {escape(artefact['reason'])}; "
                "judged from its graph alone",
                highlight=False,
            )
        counts = self.to_dict()["summary"]
        console.print(
            f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} passed "
            f"({len(self.checks)} check runs, {sum(c.seconds for c in self.checks):.1f}s)"
        )
