"""How bad an alert is: one vocabulary for detectors, the alarm machine and webhook filters."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """From ``info`` to ``critical``; compare with :attr:`rank` (a str enum sorts by name)."""

    INFO = "info"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for ``info`` up to 3 for ``critical``."""
        return _ORDER.index(self)

    def escalated(self) -> Severity:
        """The next level up; ``critical`` stays ``critical``."""
        return _ORDER[min(self.rank + 1, len(_ORDER) - 1)]


_ORDER = (Severity.INFO, Severity.WARNING, Severity.MAJOR, Severity.CRITICAL)
