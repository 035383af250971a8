"""Real clients from Debian: curl (IMAP URLs) and mbsync (isync, full sync both ways).

Skipped only when the binary is absent (Debian packages ``curl`` and ``isync``)."""

import os
import shutil
import subprocess

import pytest

from tests.imap.conftest import PASSWORD, USER, deliver, message

curl = shutil.which("curl")
mbsync = shutil.which("mbsync")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=60, **kw)


@pytest.mark.skipif(curl is None, reason="curl not installed (Debian package curl)")
def test_curl_list_fetch_search_append(server, store, tmp_path):
    deliver(store, message("curl me", body="hello from curl\r\n"))
    base = f"imap://127.0.0.1:{server.port}"
    auth = ["-u", f"{USER}:{PASSWORD}", "-s", "--max-time", "20"]
    out = run([curl, *auth, base + "/"])
    assert out.returncode == 0, out.stderr
    assert b'"INBOX"' in out.stdout and b'"Sent"' in out.stdout
    out = run([curl, *auth, base + "/INBOX;UID=1"])
    assert out.returncode == 0 and b"hello from curl" in out.stdout
    out = run([curl, *auth, base + "/INBOX?SUBJECT%20curl"])
    assert out.stdout.strip() == b"* SEARCH 1"
    msg = tmp_path / "up.eml"
    msg.write_bytes(message("uploaded"))
    out = run([curl, *auth, "-T", str(msg), base + "/Drafts"])
    assert out.returncode == 0, out.stderr
    with store.account(USER).mailbox("Drafts") as mb:
        assert mb.count() == 1


@pytest.mark.skipif(curl is None, reason="curl not installed (Debian package curl)")
def test_curl_starttls_required(make_server, store):
    srv = make_server(tls="starttls", allow_plaintext_auth=False)
    deliver(store, message("tls"))
    out = run([curl, "-s", "--max-time", "20", "--ssl-reqd", "-k", "-u", f"{USER}:{PASSWORD}",
               f"imap://127.0.0.1:{srv.port}/INBOX;UID=1"])
    assert out.returncode == 0, out.stderr
    assert b"Subject: tls" in out.stdout


@pytest.mark.skipif(curl is None, reason="curl not installed (Debian package curl)")
def test_curl_implicit_tls(make_server, store):
    srv = make_server(implicit=True, allow_plaintext_auth=False)
    out = run([curl, "-s", "--max-time", "20", "-k", "-u", f"{USER}:{PASSWORD}",
               f"imaps://127.0.0.1:{srv.port}/"])
    assert out.returncode == 0, out.stderr
    assert b'"INBOX"' in out.stdout


def _mbsync_config(tmp_path, port, local, ssl="None", cert=None):
    cfg = tmp_path / "mbsyncrc"
    host = "localhost" if cert else "127.0.0.1"  # mbsync matches the certificate by DNS name
    lines = [
        "IMAPAccount remote", f"Host {host}", f"Port {port}", f"User {USER}", f"Pass {PASSWORD}",
        f"SSLType {ssl}", "AuthMechs PLAIN LOGIN",
    ]
    if cert:
        lines.append(f"CertificateFile {cert}")
    lines += [
        "", "IMAPStore remote-store", "Account remote", "",
        "MaildirStore local-store", f"Path {local}/", f"Inbox {local}/INBOX", "SubFolders Verbatim", "",
        "Channel sync", "Far :remote-store:", "Near :local-store:", "Patterns *",
        "Create Both", "Expunge Both", "SyncState *", "Sync All", "",
    ]
    cfg.write_text("\n".join(lines))
    return cfg


def _maildir_files(path):
    out = []
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            out += [os.path.join(d, f) for f in os.listdir(d)]
    return out


@pytest.mark.skipif(mbsync is None, reason="mbsync not installed (Debian package isync)")
def test_mbsync_full_sync_both_ways(server, store, tmp_path):
    deliver(store, message("from server 1"))
    deliver(store, message("from server 2"), flags=["\\Seen"])
    local = tmp_path / "local"
    local.mkdir()
    cfg = _mbsync_config(tmp_path, server.port, local)
    out = run([mbsync, "-c", str(cfg), "-a"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    inbox = _maildir_files(local / "INBOX")
    assert len(inbox) == 2
    assert any(f.endswith(",S") or ":2,S" in f for f in inbox)
    assert (local / "Sent").is_dir() and (local / "Trash").is_dir()
    # local → server: a new message in the local Drafts folder, a flag, a local deletion
    drafts = local / "Drafts"
    (drafts / "new").mkdir(parents=True, exist_ok=True)
    (drafts / "new" / "1700000000.local.test").write_bytes(message("written offline"))
    unseen = next(f for f in inbox if not f.endswith("S"))
    os.rename(unseen, unseen + "F" if ":2," in unseen else unseen + ":2,F")
    out = run([mbsync, "-c", str(cfg), "-a"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    acct = store.account(USER)
    with acct.mailbox("Drafts") as mb:
        assert mb.count() == 1
    with acct.mailbox("INBOX") as mb:
        flags = [r.flags for r in mb.records()]
    assert any("\\Flagged" in f for f in flags)
    # server → local: expunge on the server is mirrored
    with acct.mailbox("INBOX") as mb:
        mb.store_flags([mb.records()[0].uid], ["\\Deleted"], "add")
        mb.expunge()
    out = run([mbsync, "-c", str(cfg), "-a"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(_maildir_files(local / "INBOX")) == 1


@pytest.mark.skipif(mbsync is None, reason="mbsync not installed (Debian package isync)")
def test_mbsync_over_imaps(make_server, store, tmp_path, tls_files):
    srv = make_server(implicit=True, allow_plaintext_auth=False)
    deliver(store, message("tls sync"))
    local = tmp_path / "local"
    local.mkdir()
    cfg = _mbsync_config(tmp_path, srv.port, local, ssl="IMAPS", cert=tls_files[0])
    out = run([mbsync, "-c", str(cfg), "-a"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(_maildir_files(local / "INBOX")) == 1
