"""No credential is committed: tracked files are scanned for key and token patterns."""

import re

from tests.support import REPO, working_tree_files

PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key assignment": re.compile(
        r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"
    ),
    "private key block": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "MongoDB URI with password": re.compile(r"mongodb(\+srv)?://[^:/\s\"']+:[^@/\s\"'$<{]+@"),
    "Slack token": re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
    "phishguard API key": re.compile(r"\bpg_[0-9a-f]{12}_[A-Za-z0-9_-]{43}"),
}
# Fakes the tests use on purpose: moto's documented keys, redacted passwords, and made-up
# passwords for servers on loopback that do not exist. Nothing else.
ALLOWED = {"testing", "AKIAIOSFODNN7EXAMPLE", ":***@", ":s3cret@127.0.0.1", "//u:pw@h:"}


def test_no_credentials_in_tracked_files():
    findings = []
    for path in working_tree_files():
        if path.suffix in {".parquet", ".png", ".ubj", ".skops"} or path.name == "uv.lock":
            continue
        text = path.read_text(errors="ignore")
        for kind, pattern in PATTERNS.items():
            for match in pattern.finditer(text):
                context = text[match.start() : match.end() + 20]
                if not any(allowed in context for allowed in ALLOWED):
                    findings.append(f"{path.relative_to(REPO)}: {kind}")
    assert not findings, findings


def test_the_scanner_catches_a_planted_key():
    planted = "aws_access_key_id = AKIA" + "Q" * 16
    assert PATTERNS["AWS access key id"].search(planted)
    assert PATTERNS["MongoDB URI with password"].search(
        "mongodb://admin:" + "hunter2@db.example:27017"
    )
    assert not PATTERNS["MongoDB URI with password"].search("mongodb://127.0.0.1:27017")
    assert PATTERNS["phishguard API key"].search("Bearer pg_0123456789ab_" + "x" * 43)
