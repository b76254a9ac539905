"""Text that is safe to show: terminal-safe strings, and the rule for names that hold secrets.

Bottom layer: the redactor (``reporting/redact.py``) and the faults that print values of their own (a
rollout's env) share the one rule of which names hold secrets.
"""

from __future__ import annotations

import re

__all__ = ["SECRET_NAME", "looks_secret", "plainly_not_secret", "printable"]

# -------------------------------------------------------------------------------------------- terminal text

_ESCAPES: dict[int, str] = {
    **{c: f"\\x{c:02x}" for c in range(0x20) if chr(c) not in "\n\t"},  # C0 (ESC, CR, BEL, backspace...)
    0x7F: "\\x7f",
    **{c: f"\\x{c:02x}" for c in range(0x80, 0xA0)},  # C1 (CSI, OSC, ST as single characters)
    # Bidirectional overrides and isolates: they reorder what a person reads (a file name shown reversed).
    **{c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)},
    0x2028: "\\u2028", 0x2029: "\\u2029",  # line/paragraph separators: a line break a reader does not expect
}


def printable(text: str) -> str:
    """``text`` with every control character written out (ESC as ``\\x1b``), newlines and tabs kept.

    Used on whatever reaches the terminal from an experiment or the cluster (an image name, an event's message,
    an error's text): an escape or OSC sequence there must not move the cursor, retitle the window, write a
    hyperlink or hide the lines before it. C0 controls but newline and tab, DEL, the C1 controls, and the
    Unicode bidirectional overrides, isolates and line separators are escaped; backslashes are left as they are.
    """
    return text.translate(_ESCAPES)


# -------------------------------------------------------------------------------------------- secret names

_WORD = (r"(?:password|passwd|passphrase|secret|token|credentials?|apikey|api[_-]key|signature|sig|cookie|"
         r"authorization|(?:client-key|client-certificate)-data)")
"""Words that make a name secret when the name ends in them (case does not matter)."""

SECRET_NAME = (
    r"(?:(?i:(?:[A-Za-z0-9]+[_.-])*(?:access|secret|api|auth|client|private|refresh|session|id|db)?" + _WORD + r")"
    r"|(?i:(?:[A-Za-z0-9]+[_.-])+(?:key|pass|pwd))"  # AWS_SECRET_ACCESS_KEY, X-Api-Key, DB_PASS; not a bare `key`
    r"|(?:[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)*(?:Password|Passwd|Secret|Token|Key|Credentials?|Signature|Pass)))"
)
"""A name whose value is a secret, as a regular expression: it ends in one of the secret words above, or in
``key``/``pass``/``pwd`` after a separator (``AWS_SECRET_ACCESS_KEY``, ``X-Api-Key``, ``DB_PASS``) or in camel
case (``apiKey``, ``accessToken``).

What it leaves alone, on purpose: a bare ``key`` (Kubernetes' labels, taints, tolerations and selectors all say
``key: app``) and bare ``pwd`` (the shell's working directory); names that only *contain* a secret word
(``KEY_COUNT``, ``max_tokens``, ``keyboard``, ``monkey``, ``secretName``, ``tokenFile``): what follows the word
says the value is a count, a name or a path.
"""

_SECRET_NAME = re.compile(SECRET_NAME)

# Looser, for values a run prints of its own (a rollout's env): any of these anywhere in the name masks it.
_SECRETISH = re.compile(r"(?i)pass|pwd|secret|token|key|cred|auth|cert|private|sig|salt|cookie|session|dsn|"
                        r"conn|url|uri|account")
_PLAIN_VALUE = re.compile(r"(?i)-?\d{1,12}(?:\.\d{1,6})?|true|false|yes|no|on|off|none|null|[a-z][a-z-]{0,11}")


def looks_secret(name: str) -> bool:
    """Whether a name (an env variable, a key, a header, a query parameter) holds a secret by the rule above."""
    return _SECRET_NAME.fullmatch(name) is not None


def plainly_not_secret(name: str, value: str) -> bool:
    """Whether ``name=value`` can be shown as it is: the value is a number, a boolean or one short lowercase
    word (``3``, ``true``, ``debug``, ``info``), and the name holds none of pass, pwd, secret, token, key, cred,
    auth, cert, private, sig, salt, cookie, session, dsn, conn, url, uri, account. Everything else is masked."""
    if _SECRETISH.search(name) or not _PLAIN_VALUE.fullmatch(value):
        return False
    return value == value.lower() or value.lower() in ("true", "false", "yes", "no", "on", "off", "none", "null")
