"""Secrets stay out of every report: passwords in URLs, tokens, keys and values known to be secret.

Every text a report writes (journal JSON, attachments, the summary, Allure's environment, terminal lines, the
load files kept under a results directory) goes through :func:`redact`. The run itself never reads Secrets
nor copies a pod's environment; this is the second line: what a tool or an app printed on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\"]*:)[^/\s@'\"]+(?=@)"), rf"\g<pre>{MASK}"),
    # Authorization headers and bearer tokens
    (re.compile(r"(?i)\b(?P<pre>(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<pre>{MASK}"),
    # JSON Web Tokens (service account tokens among them)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), MASK),
    # PEM private keys
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"), MASK),
    # kubeconfig and YAML/JSON/query keys whose values are secrets
    (re.compile(r"(?i)(?P<pre>[\"']?\b(?:client-key-data|client-certificate-data|token|password|passwd|secret|"
                r"api[_-]?key|access[_-]?key|secret[_-]?key)[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)[^\s\"',&}]+"),
     rf"\g<pre>{MASK}"),
)


class Redactor:
    """Masks secrets in text: the patterns above plus literal values known to be secret in this run."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        self.literals = sorted({v for v in literals if v and len(v) >= 4}, key=len, reverse=True)

    def add(self, *values: str) -> None:
        """Also mask these exact values from now on (values shorter than 4 characters are ignored)."""
        self.literals = sorted({*self.literals, *(v for v in values if v and len(v) >= 4)}, key=len, reverse=True)

    def add_url(self, url: str | None) -> None:
        """Mask the password of a URL, as written and decoded."""
        if not url:
            return
        try:
            password = urlsplit(url).password
        except ValueError:
            return
        if password:
            self.add(password, unquote(password))

    def text(self, text: str) -> str:
        """``text`` with every secret masked."""
        for literal in self.literals:
            if literal in text:
                text = text.replace(literal, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def data(self, value: Any) -> Any:
        """JSON-like data with every string masked (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value

    def file(self, path: Path) -> None:
        """Rewrite a text file with its secrets masked (binary files are left as they are)."""
        try:
            raw = path.read_bytes()
        except OSError:
            return
        if b"\0" in raw[:4096]:
            return
        text = raw.decode("utf-8", errors="replace")
        clean = self.text(text)
        if clean != text:
            path.write_text(clean)

    def tree(self, root: Path) -> None:
        """Mask secrets in every text file under ``root``."""
        if root.is_dir():
            for path in root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    self.file(path)


def redact(text: str) -> str:
    """``text`` with the secrets the patterns recognise masked."""
    return Redactor().text(text)
