"""The redactor against a table of secret shapes and of look-alikes, the kubeconfig's credentials as literals,
and a rollout's env as the plan shows it: pure logic."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from resilience_tests.faults.rollout import shown_env
from resilience_tests.reporting.redact import MASK, Redactor, kubeconfig_secrets, redact
from resilience_tests.text import looks_secret, plainly_not_secret

KEY_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\nqZ2p1Rk4w1tdD0ZTQ4vZx\n-----END RSA PRIVATE KEY-----"

# (text, the secret that must go, context that must stay)
SECRETS = [
    ("DB_PASSWORD=hunter2 app=web", "hunter2", "app=web"),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY region=eu", "wJalrXUtnFEMI", "region=eu"),
    ("MYSQL_ROOT_PASSWD=toor start", "toor", "start"),
    ("GITHUB_TOKEN=abc123xyz done", "abc123xyz", "done"),
    ("APP_CREDENTIALS=user:pw1234 ok", "pw1234", "ok"),
    ("REDIS_PASS=s3cr3tpw next", "s3cr3tpw", "next"),
    ('{"password": "hunter22", "user": "bob"}', "hunter22", '"user": "bob"'),
    ("  client_secret: abcdEFGH1234\n  client_id: web", "abcdEFGH1234", "client_id: web"),
    ("config {password: x y z, user: bob}", "x y z", "user: bob"),
    ("password: correct horse battery staple\nnext: line", "correct horse", "next: line"),
    ("DB_PASSWORD='a b,c' rest", "a b,c", "rest"),
    ('DB_PASSWORD="p@ss word, more" rest', "p@ss word, more", "rest"),
    ("DB_PASSWORD=ab,cd rest", "ab,cd", "rest"),
    ("a=1, DB_PASSWORD=ab12, b=2", "ab12", "b=2"),
    (r'log {\"password\": \"hunter22\"} more', "hunter22", "more"),
    ("GET /api?access_token=abc123def&page=2 200", "abc123def", "page=2 200"),
    ("https://h/x?user=bob&token=s3cr3tq#frag", "s3cr3tq", "#frag"),
    ("GET /maps?api_key=k3yk3yk3y HTTP/1.1", "k3yk3yk3y", "HTTP/1.1"),
    ("https://s.blob/x?sv=2020&sig=abcDEF%2B123&se=2", "abcDEF%2B123", "se=2"),
    ("https://s3/o?X-Amz-Credential=AKID%2F2024&X-Amz-Signature=f00dfeed", "f00dfeed", "https://s3/o?"),
    ("curl --token abcdef123 https://x", "abcdef123", "https://x"),
    ("app --password=abc def", "abc", "def"),
    ("helm --set x --client-secret 'q w e' --wait", "q w e", "--wait"),
    ("mysql -u root -phunter2 db", "hunter2", "db"),
    ("sshpass -p hunter2 ssh host", "hunter2", "ssh host"),
    ("Authorization: Token abcdef0123", "abcdef0123", "Authorization: Token"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Authorization: Basic"),
    ('curl -H "Authorization: Bearer abc.def-ghi" x', "abc.def-ghi", '" x'),
    ("X-Api-Key: abcd1234\nHost: web", "abcd1234", "Host: web"),
    ("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 end", "ghp_aBcDeF", "end"),
    ("gho_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 / ghs_aBcDeFgHiJkLmNoPqRsTuV", "gh", " / "),
    ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnop used", "github_pat_", "used"),
    ("slack xoxb-1234567890-abcdefghij used", "xoxb-", "used"),
    ("slack xoxp-1234567890-abcdefghij used", "xoxp-", "used"),
    ("key AKIAIOSFODNN7EXAMPLE in log", "AKIAIOSFODNN7EXAMPLE", "in log"),
    ("session ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A", "expired"),
    ("gitlab glpat-xxxxxxxxxxxxxxxxxxxx1 used", "glpat-", "used"),
    ("openai sk-proj-abcdefghijklmnopqrstuv used", "sk-proj", "used"),
    ("maps AIzaSyA1234567890abcdefghijklmnopqrstuv used", "AIzaSy", "used"),
    ("jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZw ok", "eyJzdWIiOiJ4In0", "ok"),
    (f"before\n{PEM}\nafter", KEY_BODY, "after"),
    ("cut off:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0\nabcdef", "MIIEvQIBADANBgkq", "cut off:"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----", "b3Blbn", ""),
    ("GET http://alice:s3cr3t-pw@127.0.0.1:30080/ failed", "s3cr3t-pw", "127.0.0.1:30080/ failed"),
    ("postgres://bob:pw1234@db:5432/x", "pw1234", "db:5432/x"),
    ("client-key-data: LS0tLS1CRUdJTiBSU0Eg", "LS0tLS1CRUdJTiBSU0Eg", "client-key-data:"),
    ("Cookie: session=0123abcd; theme=dark", "0123abcd", "Cookie:"),
    ("accessToken=Zm9vYmFy1 next", "Zm9vYmFy1", "next"),
]


@pytest.mark.parametrize(("text", "secret", "context"), SECRETS, ids=[s[0][:30] for s in SECRETS])
def test_every_secret_shape_is_masked_and_its_context_kept(text: str, secret: str, context: str) -> None:
    clean = redact(text)
    assert secret not in clean, clean
    assert MASK in clean
    assert context in clean, clean


def test_the_table_holds_at_least_thirty_shapes() -> None:
    assert len(SECRETS) >= 30


LOOK_ALIKES = [
    "KEY_COUNT=3",  # a name that only starts with a secret word: the rest says it is a count
    "replicas: 3",
    "image: nginx:1.27",
    "keyboard layout us",
    "monkey=banana",
    "key: app",  # Kubernetes' labels, taints, tolerations and selectors: a bare `key` is a label key
    "secretName: db-creds",
    "secretKeyRef: {name: db, key: password}",
    "max_tokens: 100",
    "tokenFile: /var/run/token",
    "PWD=/home/ci/work",
    "pod demo/web-1 exit 137 secret \"db\" not found; GET / 503",
    "ssh -p 2222 host; docker run -p 8080:80 nginx",
    "--key-file backup.key --token-file /tmp/t",
    "Bearer token expired",
    "url: http://web.demo.svc:8080/health",
    "sk-1 and ghp_short",
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_left_as_they_are(text: str) -> None:
    assert redact(text) == text


def test_masking_twice_changes_nothing_more() -> None:
    once = redact("DB_PASSWORD=x1 Authorization: Bearer abcdefghij --token q")
    assert redact(once) == once


def test_data_masks_the_value_of_a_secret_key_whole() -> None:
    redactor = Redactor()
    data = {"DB_PASSWORD": "x", "env": [{"API_TOKEN": 1234}], "replicas": 3, "key": "app", "flag": True}
    assert redactor.data(data) == {"DB_PASSWORD": MASK, "env": [{"API_TOKEN": MASK}], "replicas": 3,
                                   "key": "app", "flag": True}


def test_secret_names_follow_one_rule() -> None:
    assert all(looks_secret(n) for n in ("DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "apiKey", "X-Api-Key", "token"))
    assert not any(looks_secret(n) for n in ("KEY_COUNT", "key", "keyboard", "monkey", "PWD", "secretName"))


def _kubeconfig(tmp_path: Path) -> Path:
    (tmp_path / "client.key").write_text(PEM.replace("RSA ", "EC "))
    path = tmp_path / "config"
    path.write_text(f"""
apiVersion: v1
kind: Config
current-context: a
contexts: [{{name: a, context: {{cluster: c, user: admin}}}}]
users:
- name: admin
  user:
    token: sa-token-0123456789
    client-key-data: {base64.b64encode(PEM.encode()).decode()}
- name: other
  user:
    client-key: client.key
    password: hunter22
- name: cloud
  user:
    exec: {{command: aws, env: [{{name: AWS_PROFILE, value: default}}, {{name: X_SECRET, value: s3cr3tv}}]}}
""")
    return path


def test_the_kubeconfig_credentials_become_literals(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path)
    found = kubeconfig_secrets(f"{path}:{tmp_path / 'missing'}")
    assert "sa-token-0123456789" in found and "hunter22" in found and "s3cr3tv" in found
    assert PEM in found and KEY_BODY in found  # the decoded key and each line of its body
    assert "default" not in found  # plainly harmless exec env values stay visible
    redactor = Redactor()
    redactor.add_kubeconfig(str(path))
    assert redactor.text(f"oops {KEY_BODY} printed") == f"oops {MASK} printed"
    assert redactor.text("oops sa-token-0123456789 in default") == f"oops {MASK} in default"


@pytest.mark.parametrize("content", ["", "{{{not yaml", "- a list", "users: 3", "users: [{user: [1]}]"])
def test_a_kubeconfig_that_cannot_be_read_gives_no_literals(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config"
    path.write_text(content)
    assert kubeconfig_secrets(str(path)) == []
    assert kubeconfig_secrets(str(tmp_path / "absent")) == []


@pytest.mark.parametrize(("env", "shown"), [
    ({"REPLICAS": "3", "LOG_LEVEL": "debug", "FEATURE_X": "true"}, "REPLICAS=3, LOG_LEVEL=debug, FEATURE_X=true"),
    ({"DB_PASSWORD": "x"}, "DB_PASSWORD=***"),
    ({"API_KEY_COUNT": "3"}, "API_KEY_COUNT=***"),  # a secret-ish name masks even a number
    ({"GREETING": "Hello world"}, "GREETING=***"),
    ({"MODE": "hunter2"}, "MODE=***"),
    ({"DATABASE_URL": "postgres"}, "DATABASE_URL=***"),
])
def test_a_rollouts_env_shows_names_and_masks_values_not_plainly_harmless(env: dict[str, str], shown: str) -> None:
    assert shown_env(env) == shown


def test_plainly_not_secret_accepts_numbers_booleans_and_short_words_only() -> None:
    assert plainly_not_secret("WORKERS", "-4") and plainly_not_secret("DEBUG", "False")
    assert not plainly_not_secret("WORKERS", "4x4!") and not plainly_not_secret("NAME", "averyveryverylongword")
