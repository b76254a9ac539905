"""Secrets stay out of every report: passwords in URLs, tokens, keys and values known to be secret.

Every text a report writes (journal JSON, attachments, the summary, Allure's environment, terminal lines, the
load files kept under a results directory) goes through :func:`redact`. The run itself never reads Secrets
nor copies a pod's environment; this is the second line: what a tool or an app printed on its own.

What is masked (docs/reports.md lists it with examples):

- the value after a secret name (:data:`resilience_tests.text.SECRET_NAME`: ``DB_PASSWORD=``,
  ``AWS_SECRET_ACCESS_KEY=``, ``"password": "..."``, ``api_key:``, ``X-Api-Key:``, ``?access_token=``,
  ``&sig=``): a quoted value whole, spaces and commas included; after ``:`` the rest of the line (YAML);
  after ``=`` up to a space, ``&``, ``;`` or a comma that starts the next ``name=``;
- command-line flags whose name ends in a secret word (``--token X``, ``--password=X``, ``--client-secret X``),
  and ``-pX`` of the MySQL clients and ``sshpass -p X`` (``-p`` elsewhere is a port);
- ``Authorization:`` headers (the scheme word stays: ``Authorization: Bearer ***``), and ``Bearer``/``Basic``
  credentials anywhere;
- tokens by their prefix (GitHub, GitLab, Slack, AWS access key ids, OpenAI/Anthropic ``sk-``, Stripe, Google
  ``AIza``, npm, PyPI, Docker Hub, Hugging Face), JSON Web Tokens, a URL's ``user:password@``;
- PEM private key blocks, to their END line or, when it is missing, to the end of the text;
- the exact values this run knows are secret (:meth:`Redactor.add`): a URL's password, the kubeconfig's
  tokens, passwords and client keys (:func:`kubeconfig_secrets`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from resilience_tests.text import SECRET_NAME, looks_secret, plainly_not_secret

MASK = "***"

_KEY_VALUE = re.compile(r"(?<![A-Za-z0-9_.\-])(?P<q>\\?[\"']?)(?P<name>" + SECRET_NAME + r")(?P=q)[ \t]*(?P<op>[:=])"
                        r"[ \t]*(?=\S)")
_FLAG = re.compile(r"(?<![\w-])--?(?:[A-Za-z0-9]+-)*(?:password|passwd|passphrase|secret|token|key|api-?key|"
                   r"credentials?)(?:[ \t]+|=)(?=[^\s-])")
_SCHEME = re.compile(r"(?i)(?:bearer|basic|token|digest|negotiate|apikey|aws4-hmac-sha256)[ \t]+")
_NEXT_NAME = re.compile(r",[ \t]*[\w.\-\"']+[ \t]*[:=]")
_CLOSING = re.compile(r"[ \t]*[}\]]")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, to their END line or to the end of the text
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY"
                r"(?: BLOCK)?-----|[\s\S]*\Z)"), MASK),
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\"]*:)[^/\s@'\"]+(?=@)"), rf"\g<pre>{MASK}"),
    # Bearer and Basic credentials wherever they appear
    (re.compile(r"(?i)\b(?P<pre>(?:bearer|basic)\s+)(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<pre>{MASK}"),
    # JSON Web Tokens (service account tokens among them)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), MASK),
    # tokens known by their prefix
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|gl(?:pat|dt|rt|ptt|cbt|soat)-"
                r"[A-Za-z0-9_-]{20,}|xox[abposre]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)"
                r"[A-Z0-9]{16}|sk-[A-Za-z0-9_-]{20,}|[rs]k_(?:live|test)_[A-Za-z0-9]{10,}|AIza[0-9A-Za-z_-]{35}|"
                r"npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}|dckr_pat_[A-Za-z0-9_-]{20,}|hf_[A-Za-z]{30,})\b"),
     MASK),
    # the MySQL clients' -pPASSWORD and sshpass -p PASSWORD (-p is a port for most other tools)
    (re.compile(r"(?P<pre>\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n]*?[ \t]-p)(?!\*\*\*)[^\s'\"]+"),
     rf"\g<pre>{MASK}"),
    (re.compile(r"(?P<pre>\bsshpass[ \t]+-p[ \t]*)(?!\*\*\*)[^\s'\"]+"), rf"\g<pre>{MASK}"),
)


def _value_end(text: str, start: int, op: str) -> tuple[int, int]:
    """Where the value starting at ``start`` begins and ends (quotes left out of it); ``op`` is ``:``, ``=`` or
    ``?`` (a query parameter: ``#`` ends it too)."""
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    for quote in ('\\"', '"', "'"):
        if text.startswith(quote, start):
            close = text.find(quote, start + len(quote), line_end)
            while quote == '"' and close > 0 and text[close - 1] == "\\":  # an escaped quote inside the value
                close = text.find(quote, close + 1, line_end)
            return start + len(quote), close if close >= 0 else line_end
    if op == ":":  # YAML: the rest of the line, up to the next `, name:` or a closing bracket
        end = line_end
        for pattern in (_NEXT_NAME, _CLOSING):
            found = pattern.search(text, start, end)
            if found:
                end = found.start()
        return start, end
    end = start
    while end < line_end:
        char = text[end]
        after = text[end + 1:end + 2]
        if char in " \t&;\"'" or (char == "#" and op == "?") or \
                (char == "," and (after in ("", " ", "\t") or _NEXT_NAME.match(text, end))):
            break
        if char in ")]}" and after in ("", " ", "\t", ",", ";", ")", "]", "}", '"', "'"):
            break
        end += 1
    return start, end


def _op(found: re.Match[str]) -> str:
    """``?`` for a query parameter (``?name=`` or ``&name=``), else the operator as written."""
    at = found.start()
    return "?" if found.group("op") == "=" and at and found.string[at - 1] in "?&" else found.group("op")


def _mask_values(text: str, pattern: re.Pattern[str], op_of: Callable[[re.Match[str]], str]) -> str:
    """``text`` with the value after each match of ``pattern`` masked."""
    out: list[str] = []
    done = 0
    for found in pattern.finditer(text):
        if found.start() < done:
            continue
        start, end = _value_end(text, found.end(), op_of(found))
        if found.groupdict().get("name", "").lower() == "authorization":
            scheme = _SCHEME.match(text, start, end)
            start = scheme.end() if scheme else start
        if end <= start or text.startswith(MASK, start):
            continue
        out += [text[done:start], MASK]
        done = end
    return "".join(out) + text[done:] if out else text


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

    def add_kubeconfig(self, kubeconfig: str | None) -> None:
        """Mask every credential of a kubeconfig (see :func:`kubeconfig_secrets`)."""
        if kubeconfig:
            self.add(*kubeconfig_secrets(kubeconfig))

    def text(self, text: str) -> str:
        """``text`` with every secret masked."""
        for literal in self.literals:
            if literal in text:
                text = text.replace(literal, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        text = _mask_values(text, _KEY_VALUE, _op)
        return _mask_values(text, _FLAG, lambda m: "=")

    def data(self, value: Any) -> Any:
        """JSON-like data with every string masked (keys included); the value of a key that names a secret
        (``{"DB_PASSWORD": "x"}``) is masked whole."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): MASK if _secret_leaf(k, v) else self.data(v) for k, v in value.items()}
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


def _secret_leaf(key: Any, value: Any) -> bool:
    return isinstance(key, str) and isinstance(value, (str, int, float)) and not isinstance(value, bool) \
        and value not in ("", MASK) and looks_secret(key)


def redact(text: str) -> str:
    """``text`` with the secrets the patterns recognise masked."""
    return Redactor().text(text)


KUBECONFIG_MAX_BYTES = 4 * 1024 * 1024
_USER_SECRETS = ("token", "password", "client-key-data")
_PROVIDER_SECRETS = ("access-token", "id-token", "refresh-token", "client-secret", "secret")


def kubeconfig_secrets(kubeconfig: str) -> list[str]:
    """The credentials of every user of a kubeconfig (several files joined by ``:`` as kubectl reads them):
    tokens, passwords, ``client-key-data`` as written and decoded (the PEM text and each of its lines), the
    contents of ``client-key`` and ``tokenFile`` files, auth-provider tokens and secrets, exec env values that
    are not plainly harmless (``AWS_PROFILE: default`` stays: masking ``default`` everywhere hides namespaces).

    Every user, not only the current context's: masking a credential the run does not use costs nothing. A file
    that cannot be read or parsed gives nothing (the client reports it when it connects).
    """
    found: list[str] = []
    for path in (p for p in kubeconfig.split(os.pathsep) if p):
        doc = _load(Path(path).expanduser())
        users = doc.get("users") if isinstance(doc, dict) else None
        for entry in users if isinstance(users, list) else []:
            user = entry.get("user") if isinstance(entry, dict) else None
            if isinstance(user, dict):
                found += _user_secrets(user, Path(path).expanduser().parent)
    return [s for s in dict.fromkeys(found) if len(s) >= 4]


def _load(path: Path) -> Any:
    try:
        if path.stat().st_size > KUBECONFIG_MAX_BYTES:
            return None
        return yaml.safe_load(path.read_text(errors="replace"))
    except (OSError, yaml.YAMLError, RecursionError, MemoryError):
        return None


def _user_secrets(user: dict[Any, Any], base: Path) -> list[str]:
    found = [str(user[k]) for k in _USER_SECRETS if isinstance(user.get(k), str)]
    if isinstance(user.get("client-key-data"), str):
        found += _pem_parts(_b64(user["client-key-data"]))
    for key in ("client-key", "tokenFile"):
        if isinstance(user.get(key), str):
            try:
                file = base / Path(user[key]).expanduser()
                if file.is_file() and file.stat().st_size <= KUBECONFIG_MAX_BYTES:
                    found += _pem_parts(file.read_text(errors="replace").strip())
            except OSError:
                pass
    provider = user.get("auth-provider")
    config = provider.get("config") if isinstance(provider, dict) else None
    if isinstance(config, dict):
        found += [str(v) for k, v in config.items() if k in _PROVIDER_SECRETS and isinstance(v, str)]
    exec_ = user.get("exec")
    env = exec_.get("env") if isinstance(exec_, dict) else None
    for item in env if isinstance(env, list) else []:
        if isinstance(item, dict) and isinstance(item.get("value"), str) and \
                not plainly_not_secret(str(item.get("name", "")), item["value"]):
            found.append(item["value"])
    return found


def _b64(value: str) -> str:
    try:
        return base64.b64decode(value, validate=False).decode(errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _pem_parts(text: str) -> list[str]:
    """A key as a whole and each line of its body (a log that shows one line of it shows no secret)."""
    lines = [line.strip() for line in text.splitlines()]
    return [text, *(line for line in lines if len(line) >= 16 and not line.startswith("-----"))] if text else []
