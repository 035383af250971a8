"""Filters pipeline benchmark: what pymail adds on top of clamd's and spamd's own time.

    .venv/bin/python perf/filters_bench.py [--messages N] [--runs N] [--e2e-runs N] [--no-write]

Starts a private clamd and spamd (``pymail.testing.services``) and measures, with two ~5 KB
messages (plain text, and multipart with a small base64 attachment):

a. the daemons' own time: clamd INSTREAM then spamd SYMBOLS (the verb and ``User:`` header
   pymail's spam check sends) over raw blocking sockets, one after the other;
b. the same message file through ``Pipeline.data`` with both checks (what the SMTP server runs
   at end of DATA: file reads in threads, the two daemons asked concurrently, the per-user spam
   settings read from a real SQLite directory, the verdict built);
   a and b are interleaved run by run (order alternating) and their medians compared;
c. end to end over SMTP: two real ``pymail-server`` processes (one with
   ``[filters] checks = ["clamd", "spamd"]`` pointing at the private daemons, one with no
   filters), N messages sent with smtplib from 1 session and from 4 concurrent sessions, timed
   until the last 250 reply and until the last message is in the user's maildir; then, per
   message and back to back, one transaction through each server and one call of the daemons
   alone (paired, so the load drifts of a shared machine cancel out).

pymail's own overhead is (b - a) / b (target: under 10 %); spamd should be the bottleneck.
The results are printed and written to the ``## Filters pipeline`` section of perf/RESULTS.md
(the rest of that file is left as it is).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import random
import re
import shutil
import smtplib
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymail.filters.api import Envelope, Session  # noqa: E402
from pymail.filters.pipeline import Pipeline  # noqa: E402
from pymail.filters.settings import FilterSettings  # noqa: E402
from pymail.testing import services  # noqa: E402
from pymail.testing.server_process import ServerProcess, write_config  # noqa: E402

RESULTS = ROOT / "perf" / "RESULTS.md"
SECTION = "## Filters pipeline"
RCPT = "alice@example.test"
SENDER = "newsletter@ext.example"
PASSWORD = "bench password 1"
WORDS = ("meeting report budget quarterly invoice project deadline update review draft team lunch "
         "release notes server backup security patch weekend travel library seminar thesis "
         "lecture exam schedule room booking department faculty committee minutes agenda").split()


# -- the messages -----------------------------------------------------------------------------

def _text(rng: random.Random, size: int) -> str:
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))).capitalize() + "."
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines) + "\r\n"


def _head(msgid: str, extra: str = "") -> str:
    return (f"From: Department News <{SENDER}>\r\nTo: Alice <{RCPT}>\r\n"
            f"Subject: Weekly department update\r\nDate: Mon, 30 Nov 2026 01:00:00 +0000\r\n"
            f"Message-ID: <{msgid}@ext.example>\r\nMIME-Version: 1.0\r\n{extra}")


def make_messages(msgid: str = "bench") -> dict[str, bytes]:
    """Two ~5 KB messages: plain text, and text plus a small (1.5 KB) base64 attachment."""
    rng = random.Random(6)
    plain = (_head(msgid, "Content-Type: text/plain; charset=utf-8\r\n") + "\r\n"
             + _text(rng, 4700)).encode()
    blob = bytes(rng.getrandbits(8) for _ in range(1100))
    b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
    attach = (_head(msgid + ".a", 'Content-Type: multipart/mixed; boundary="b1"\r\n') + "\r\n"
              "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + _text(rng, 2900)
              + '--b1\r\nContent-Type: application/pdf; name="minutes.pdf"\r\n'
              'Content-Disposition: attachment; filename="minutes.pdf"\r\n'
              "Content-Transfer-Encoding: base64\r\n\r\n" + b64 + "--b1--\r\n").encode()
    return {"plain": plain, "attachment": attach}


# -- a. the daemons called directly -----------------------------------------------------------

def _tcp(address: str) -> tuple[str, int]:
    host, _, port = address.partition(":")[2].rpartition(":")
    return host, int(port)


def _recv_all(sock: socket.socket, until: bytes | None = None) -> bytes:
    data = b""
    while True:
        part = sock.recv(65536)
        if not part:
            return data
        data += part
        if until is not None and until in data:
            return data


def raw_clamd(address: str, message: bytes) -> tuple[float, str]:
    t0 = time.perf_counter()
    with socket.create_connection(_tcp(address), timeout=30) as s:
        s.sendall(b"zINSTREAM\0" + struct.pack("!I", len(message)) + message + struct.pack("!I", 0))
        reply = _recv_all(s, b"\0")
    return time.perf_counter() - t0, reply.rstrip(b"\0").decode()


def raw_spamd(address: str, message: bytes, user: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    with socket.create_connection(_tcp(address), timeout=60) as s:
        s.sendall(f"SYMBOLS SPAMC/1.5\r\nContent-length: {len(message)}\r\nUser: {user}\r\n\r\n"
                  .encode() + message)
        s.shutdown(socket.SHUT_WR)
        reply = _recv_all(s)
    spam = re.search(rb"^Spam: *(.*?)\r$", reply, re.M)
    return time.perf_counter() - t0, spam.group(1).decode() if spam else reply[:80].decode("replace")


# -- b. the same message through Pipeline.data ------------------------------------------------

def make_directory(root: Path):
    from pymail.directory.directory import Directory

    directory = Directory(f"sqlite:///{root / 'directory.sqlite'}", bcrypt_rounds=4)
    directory.create_schema()
    directory.add_domain("example.test")
    directory.add_user(RCPT, PASSWORD)
    return directory


async def pipeline_once(pipeline: Pipeline, path: str) -> tuple[float, object]:
    envelope = Envelope(Session("192.0.2.7", 40000, "mx", helo="mta.ext.example"), SENDER, [RCPT])
    t0 = time.perf_counter()
    verdict = await pipeline.data(envelope, path)
    return time.perf_counter() - t0, verdict


def measure_direct(clamd, spamd, messages: dict[str, bytes], runs: int, work: Path) -> dict:
    directory = make_directory(work)
    settings = FilterSettings(checks=["clamd", "spamd"], clamd=clamd.address, spamd=spamd.address)
    pipeline = Pipeline.from_settings(settings, directory, "mx.example.test", str(work))
    paths = {}
    for kind, raw in messages.items():
        paths[kind] = work / f"{kind}.eml"
        paths[kind].write_bytes(raw)
    out = {kind: {"clamd": [], "spamd": [], "a": [], "b": []} for kind in messages}
    notes = {}

    async def main():
        # Warm-up: spamd's children compile rules lazily, the first scans are slow.
        for _ in range(3):
            for kind, raw in messages.items():
                raw_clamd(clamd.address, raw)
                raw_spamd(spamd.address, raw, RCPT)
                await pipeline_once(pipeline, str(paths[kind]))
        for i in range(runs):
            for kind, raw in messages.items():
                order = ("a", "b") if (i % 2 == 0) else ("b", "a")
                for what in order:
                    if what == "a":
                        tc, clam = raw_clamd(clamd.address, raw)
                        ts, spam = raw_spamd(spamd.address, raw, RCPT)
                        out[kind]["clamd"].append(tc)
                        out[kind]["spamd"].append(ts)
                        out[kind]["a"].append(tc + ts)
                        notes[kind + " clamd"], notes[kind + " spamd"] = clam, spam
                    else:
                        tb, verdict = await pipeline_once(pipeline, str(paths[kind]))
                        out[kind]["b"].append(tb)
                        notes[kind + " verdict"] = (verdict.action.name, [h for h, _ in verdict.headers])
        await pipeline.close()

    asyncio.run(main())
    directory.close()
    return {"times": out, "notes": notes}


# -- c. end to end over SMTP through pymail-server ---------------------------------------------

def cli(config: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "pymail.cli.main", "--config", str(config), *args],
                   input=stdin, capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)


def start_server(var: Path, filters: str) -> ServerProcess:
    extra = ('[smtp]\ntrusted_networks = []\nmax_connections_per_ip = 50\n'
             '[queue]\nscan_interval = 0.5\n' + filters)
    config = write_config(var, [("mx", "none")], extra=extra)
    server = ServerProcess(["--config", str(config)], var, cwd=ROOT).start()
    cli(config, "domain", "add", "example.test")
    cli(config, "user", "add", RCPT, "--password-stdin", stdin=PASSWORD + "\n")
    return server


def delivered(var: Path) -> int:
    count = 0
    for dirpath, _dirs, files in os.walk(var / "mail"):
        if os.path.basename(dirpath) in ("new", "cur"):
            count += len(files)
    return count


def e2e_run(server: ServerProcess, var: Path, messages: list[bytes], sessions: int, tag: str) -> dict:
    """Send ``messages`` over ``sessions`` concurrent SMTP sessions; time to last 250 and last delivery."""
    port = server.port("mx")
    before = delivered(var)
    shares = [messages[i::sessions] for i in range(sessions)]
    codes: list[int] = []
    txn: list[float] = []  # MAIL + RCPT + DATA round trips, per message
    lock = threading.Lock()
    barrier = threading.Barrier(sessions + 1)

    def session(share: list[bytes]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            smtp.ehlo("mta.ext.example")
            barrier.wait()
            for raw in share:
                t_start = time.perf_counter()
                smtp.mail(SENDER)
                smtp.rcpt(RCPT)
                code, _ = smtp.data(raw)
                took = time.perf_counter() - t_start
                with lock:
                    codes.append(code)
                    txn.append(took)

    threads = [threading.Thread(target=session, args=(share,), daemon=True) for share in shares]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(600)
    accepted = time.perf_counter() - t0
    want = before + len(messages)
    deadline = time.monotonic() + 120
    while delivered(var) < want and time.monotonic() < deadline:
        time.sleep(0.01)
    done = time.perf_counter() - t0
    refused = [c for c in codes if c != 250]
    if refused or len(codes) != len(messages) or delivered(var) < want:
        raise RuntimeError(f"{tag}: {len(codes)} replies, refused {refused}, "
                           f"{delivered(var) - before}/{len(messages)} delivered\n{server.log()[-3000:]}")
    return {"accepted": accepted, "delivered": done, "txn": txn}


def measure_e2e(clamd, spamd, n: int, runs: int, work: Path) -> dict:
    filtered_cfg = (f'[filters]\nchecks = ["clamd", "spamd"]\nclamd = "{clamd.address}"\n'
                    f'spamd = "{spamd.address}"\n')
    servers = {"filters": (start_server(work / "with", filtered_cfg), work / "with"),
               "none": (start_server(work / "without", ""), work / "without")}
    results = {(mode, s): [] for mode in servers for s in (1, 4)}
    window_a: list[float] = []  # per 1-session filtered run: the daemons alone just before and after it
    serial = 0

    def daemons_now(msgs: list[bytes]) -> list[float]:
        return [raw_clamd(clamd.address, raw)[0] + raw_spamd(spamd.address, raw, RCPT)[0]
                for raw in msgs[:4]]

    def batch(count: int) -> list[bytes]:
        nonlocal serial
        out = []
        for _ in range(count):
            serial += 1
            kinds = make_messages(f"e2e{serial}")
            out.append(kinds["plain" if serial % 2 else "attachment"])
        return out

    try:
        for mode, (server, var) in servers.items():  # warm-up: imports, spamd children, SQLite
            e2e_run(server, var, batch(4), 2, mode)
        for i in range(runs):
            for sessions in (1, 4):
                modes = ("filters", "none") if i % 2 == 0 else ("none", "filters")
                for mode in modes:
                    server, var = servers[mode]
                    msgs = batch(n)
                    timed = mode == "filters" and sessions == 1
                    around = daemons_now(msgs) if timed else []
                    results[(mode, sessions)].append(e2e_run(server, var, msgs, sessions, mode))
                    if timed:
                        window_a.append(statistics.mean(around + daemons_now(msgs[::-1])))
        paired = paired_transactions(servers, clamd, spamd, batch(n))
        sample = sorted((servers["filters"][1] / "mail").rglob("new/*")) + \
            sorted((servers["filters"][1] / "mail").rglob("cur/*"))
        headers = ""
        if sample:
            head = sample[-1].read_bytes().split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
            headers = "; ".join(line for line in head.splitlines()
                                if line.startswith(("X-Spam-Status", "X-Virus-Scanned")))
        # The queue's local delivery time, from the mail log ("delay=" per delivered message).
        delays = {mode: [float(d) for d in re.findall(r"relay=local, delay=([0-9.]+)", server.log())]
                  for mode, (server, _var) in servers.items()}
    finally:
        for server, _var in servers.values():
            server.stop()
    return {"runs": results, "headers": headers, "window_a": window_a, "delays": delays,
            "paired": paired}


def paired_transactions(servers: dict, clamd, spamd, messages: list[bytes]) -> list[dict]:
    """Per message, back to back (order rotating): one SMTP transaction through the filtering
    server, one through the unfiltered server, and the daemons alone — so load drifts on the
    shared cores hit all three alike."""
    out = []
    conns = {}
    try:
        for mode in ("filters", "none"):
            conns[mode] = smtplib.SMTP("127.0.0.1", servers[mode][0].port("mx"), timeout=120)
            conns[mode].ehlo("mta.ext.example")

        def transaction(mode: str, raw: bytes) -> float:
            t0 = time.perf_counter()
            conns[mode].mail(SENDER)
            conns[mode].rcpt(RCPT)
            code, text = conns[mode].data(raw)
            if code != 250:
                raise RuntimeError(f"{mode}: {code} {text!r}")
            return time.perf_counter() - t0

        steps = {"filters": lambda raw: transaction("filters", raw),
                 "none": lambda raw: transaction("none", raw),
                 "a": lambda raw: raw_clamd(clamd.address, raw)[0] + raw_spamd(spamd.address, raw, RCPT)[0]}
        orders = (("filters", "none", "a"), ("a", "filters", "none"), ("none", "a", "filters"))
        for i, raw in enumerate(messages):
            out.append({what: steps[what](raw) for what in orders[i % 3]})
    finally:
        for conn in conns.values():
            conn.quit()
    return out


# -- report ------------------------------------------------------------------------------------

def med(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def machine() -> str:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.0f} GB RAM, Linux "
            f"{platform.release()}, Python {platform.python_version()}; load average at the end "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)")


def versions() -> str:
    out = []
    for cmd in (["clamd", "--version"], ["spamd", "--version"]):
        path = shutil.which(cmd[0]) or shutil.which(cmd[0], path="/usr/sbin:/usr/bin")
        try:
            text = subprocess.run([path, *cmd[1:]], capture_output=True, text=True, timeout=30).stdout
            out.append(text.strip().splitlines()[0])
        except (OSError, TypeError, IndexError, subprocess.SubprocessError):
            out.append(f"{cmd[0]} (version unknown)")
    return "; ".join(out)


def report(args, direct: dict, e2e: dict, started: str, elapsed: float) -> str:
    times, notes = direct["times"], direct["notes"]
    lines = [SECTION, ""]
    cmd = ".venv/bin/python perf/filters_bench.py"
    given = [f"--messages {args.messages}" if args.messages != 40 else "",
             f"--runs {args.runs}" if args.runs != 60 else "",
             f"--e2e-runs {args.e2e_runs}" if args.e2e_runs != 5 else ""]
    cmd = " ".join([cmd] + [g for g in given if g])
    lines += [f"Command: `{cmd}` (defaults: `--messages 40 --runs 60 --e2e-runs 5`; "
              f"{elapsed / 60:.1f} min). Run {started} on a **shared 2-core VM** — other helpers' "
              "jobs ran at the same time, so single figures jitter; medians and ratios are quoted. "
              f"Machine: {machine()}. Daemons: {versions()}, started privately by "
              "`pymail.testing.services` (clamd with one custom signature, spamd `-L` with Debian's "
              "rules, 2 children).", ""]
    lines += ["### Daemons alone vs `Pipeline.data` (one message at a time)", "",
              f"{args.runs} runs per message, a and b interleaved (order alternating), after 3 "
              "warm-up rounds. **a** = clamd INSTREAM + spamd SYMBOLS with `User:` (what the spam "
              "check sends) over raw blocking sockets, one after the other; **b** = "
              "`Pipeline.data` with both checks (reads the spool file in threads, asks clamd and "
              "spamd concurrently, reads the user's spam settings from SQLite, builds the verdict).",
              "",
              "Medians; spamd's p10–p90 spread in brackets. The paired column is the median of "
              "the per-run differences b − a (each run's a and b measured back to back), which "
              "cancels most of spamd's slow drifts.", "",
              "| message | bytes | clamd alone | spamd alone | a = clamd + spamd | b = Pipeline.data "
              "| b − a | (b − a) / b | paired b − a | b vs max(clamd, spamd) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    messages = make_messages()
    overheads = {}
    for kind, t in times.items():
        c, s, a, b = med(t["clamd"]), med(t["spamd"]), med(t["a"]), med(t["b"])
        crit = max(c, s)
        overheads[kind] = {"clamd": c, "spamd": s, "a": a, "b": b, "ratio": (b - a) / b,
                           "crit_ratio": (b - crit) / b}
        paired = med([tb - ta for ta, tb in zip(t["a"], t["b"])])
        overheads[kind]["paired"] = paired
        spread = ""
        if len(t["spamd"]) >= 10:
            deciles = statistics.quantiles(t["spamd"], n=10)
            spread = f" [{deciles[0] * 1000:.0f}–{deciles[-1] * 1000:.0f}]"
        lines.append(f"| {kind} | {len(messages[kind])} | {ms(c)} | {ms(s)}{spread} | {ms(a)} | {ms(b)} | "
                     f"{(b - a) * 1000:+.1f} ms | {(b - a) / b:+.1%} | {paired * 1000:+.1f} ms "
                     f"({paired / b:+.1%}) | {(b - crit) * 1000:+.1f} ms ({(b - crit) / b:+.1%}) |")
    lines += ["", "Verdicts: " + "; ".join(f"{k}: {v}" for k, v in sorted(notes.items())), ""]

    runs = e2e["runs"]
    lines += ["### End to end over SMTP (pymail-server → queue → store)", "",
              f"Two real `pymail-server` processes (`workers = 1`, one plain mx listener), one "
              f"with `[filters] checks = [\"clamd\", \"spamd\"]`, one with no filters. Each run "
              f"sends {args.messages} messages (plain and attachment alternating, ~5 KB) to one "
              f"local user with smtplib over 1 or 4 concurrent sessions; timed to the last 250 "
              f"reply (accepted) and to the last file in the maildir (delivered); the SMTP "
              f"transaction is the mean per message within a run. Median of {args.e2e_runs} runs, "
              f"filtered and unfiltered interleaved.", "",
              "| filters | sessions | accepted msg/s | delivered msg/s | delivered time per message "
              "| SMTP transaction (MAIL+RCPT+DATA) |",
              "|---|---|---|---|---|---|"]
    per = {}
    for (mode, sessions), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0] != "filters")):
        acc = med([args.messages / r["accepted"] for r in rs])
        dlv = med([args.messages / r["delivered"] for r in rs])
        txn = med([statistics.mean(r["txn"]) for r in rs])
        per[(mode, sessions)] = {"acc": acc, "dlv": dlv, "txn": txn}
        label = "clamd + spamd" if mode == "filters" else "none"
        lines.append(f"| {label} | {sessions} | {acc:.1f} | {dlv:.1f} | {ms(1 / dlv)} | {ms(txn)} |")
    a_mean = statistics.mean(o["a"] for o in overheads.values())
    spamd_mean = statistics.mean(o["spamd"] for o in overheads.values())
    f1, n1 = per[("filters", 1)], per[("none", 1)]
    f4 = per[("filters", 4)]
    t_f1, t_n1 = 1 / f1["dlv"], 1 / n1["dlv"]
    window_a = med(e2e["window_a"])
    delays = {mode: med(d) if d else float("nan") for mode, d in e2e["delays"].items()}
    txn_f, txn_n = f1["txn"], n1["txn"]
    pairs = e2e["paired"]
    added = med([p["filters"] - p["none"] for p in pairs])
    pymail_e2e = med([p["filters"] - p["none"] - p["a"] for p in pairs])
    pymail_e2e_ratio = med([(p["filters"] - p["none"] - p["a"]) / p["filters"] for p in pairs])
    lines += ["", f"The daemons alone (a), measured on messages of the same batches right before and "
              f"after each 1-session filtered run (8 messages, mean per run): median {ms(window_a)} "
              f"(the direct measurement above: {ms(a_mean)}, mean of the two medians; the "
              f"difference is the load on the shared cores changing). "
              f"The queue's local delivery (mail log `delay=`, spool → maildir, after the 250): "
              f"median {delays['filters'] * 1000:.0f} ms with filters, {delays['none'] * 1000:.0f} ms "
              f"without (it overlaps the next message's SMTP transaction).", "",
              f"Headers of a delivered message: {e2e['headers'] or '(none found)'}", ""]
    lines += ["### Ratios", "",
              "- pymail's own overhead in the DATA-phase filtering, (b − a) / b: "
              + ", ".join(f"{k} {o['ratio']:+.1%} ({(o['b'] - o['a']) * 1000:+.1f} ms)"
                          for k, o in overheads.items())
              + "; from the paired differences: "
              + ", ".join(f"{k} {o['paired'] / o['b']:+.1%}" for k, o in overheads.items())
              + ". Against the critical path of a concurrent pipeline, max(clamd, spamd), "
              "instead of the sequential sum: "
              + ", ".join(f"{k} {o['crit_ratio']:+.1%}" for k, o in overheads.items()) + ".",
              f"- End to end, 1 session: {ms(t_f1)} per delivered message with filters; minus the "
              f"daemons' own time in the same window ({ms(window_a)}) leaves "
              f"{ms(t_f1 - window_a)} for pymail (SMTP, spool, filters, queue, store), of which "
              f"{ms(t_n1)} is the same path with no filters; the filters cost pymail "
              f"{(t_f1 - t_n1 - window_a) * 1000:+.1f} ms per message beyond the daemons "
              f"({(t_f1 - t_n1 - window_a) / t_f1:+.1%}).",
              f"- Per SMTP transaction (1 session): {ms(txn_f)} with filters, {ms(txn_n)} "
              f"without; the filters add {ms(txn_f - txn_n)}, of which the daemons (same time "
              f"window) take {ms(window_a)}: pymail's part {(txn_f - txn_n - window_a) * 1000:+.1f} "
              f"ms = {(txn_f - txn_n - window_a) / txn_f:+.1%} of the transaction.",
              f"- Paired per message ({len(pairs)} messages, each sent through both servers and "
              f"to the daemons alone back to back, order rotating; medians of the per-message "
              f"differences): the filters add {ms(added)} to an SMTP transaction "
              f"({ms(med([p['filters'] for p in pairs]))} with, {ms(med([p['none'] for p in pairs]))} "
              f"without), the daemons alone take {ms(med([p['a'] for p in pairs]))}: pymail's part "
              f"{pymail_e2e * 1000:+.1f} ms = **{pymail_e2e_ratio:+.1%}** of the filtered transaction.",
              f"- Filters vs none: {f1['dlv'] / n1['dlv']:.1%} of the unfiltered rate with 1 "
              f"session; 4 sessions give {f4['dlv']:.1f} msg/s with filters "
              f"({f4['dlv'] / f1['dlv']:.2f}× one session).",
              f"- spamd alone takes {ms(spamd_mean)} per message, "
              f"{spamd_mean / a_mean:.0%} of the daemons' time; 1/spamd = "
              f"{1 / spamd_mean:.1f} msg/s per spamd child."]
    met_overhead = all(o["ratio"] < 0.10 for o in overheads.values())
    pymail_cost = max(o["b"] - o["a"] for o in overheads.values())
    met_bottleneck = all(o["spamd"] > o["clamd"] for o in overheads.values()) and spamd_mean > pymail_cost \
        and spamd_mean > (t_f1 - window_a)
    lines += ["", "**Target** (issue 6): pymail's own overhead under 10 % of the pipeline time — "
              + ("**met**" if met_overhead else "**not met**")
              + f" (worst {max(o['ratio'] for o in overheads.values()):+.1%}); spamd, not pymail, "
              "the bottleneck — " + ("**met**" if met_bottleneck else "**not met**")
              + f" (spamd {ms(spamd_mean)} per message vs pymail's {ms(max(pymail_cost, 0))} in the "
              f"pipeline and {ms(t_f1 - window_a)} for the whole SMTP → store path). End to end, "
              f"pymail's part of a filtered SMTP transaction (paired): {pymail_e2e_ratio:+.1%}.", "",
              "Notes. spamd scores what pymail hands it: end to end the message carries pymail's "
              "`Received:` from 127.0.0.1, so SpamAssassin adds ALL_TRUSTED (a lower score than "
              "the direct calls) at the same scan time. The queue starts a local delivery 50 ms "
              "after a message is queued (`pymail/queue/runner.py`), so `delay=` is never under "
              "0.05 s; with filters that latency hides behind the next transaction, without them "
              "the queue (not the SMTP side) sets the delivered rate. With 4 sessions the two "
              "spamd children, pymail and the client share the 2 cores: the filtered rate is "
              "bounded by CPU before it reaches 2 × 1/spamd.", ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace (or append) only the ``## Filters pipeline`` section; re-read the file just before."""
    current = RESULTS.read_text() if RESULTS.exists() else "# pymail performance results\n"
    body = text.rstrip("\n") + "\n"
    pattern = re.compile(r"^## Filters pipeline\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(current):
        new = pattern.sub(lambda _m: body + "\n", current, count=1).rstrip("\n") + "\n"
    else:
        new = current.rstrip("\n") + "\n\n" + body
    tmp = RESULTS.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, RESULTS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=40, help="messages per end-to-end run")
    parser.add_argument("--runs", type=int, default=60, help="interleaved runs of a and b per message")
    parser.add_argument("--e2e-runs", type=int, default=5, help="end-to-end runs per configuration")
    parser.add_argument("--no-write", action="store_true", help="print only, leave perf/RESULTS.md")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="pymail-filters-bench-"))
    try:
        print("starting clamd and spamd ...", flush=True)
        with services.clamd_service() as clamd, services.spamd_service() as spamd:
            print(f"clamd {clamd.address}, spamd {spamd.address}; a/b: {args.runs} runs", flush=True)
            (work / "direct").mkdir()
            direct = measure_direct(clamd, spamd, make_messages(), args.runs, work / "direct")
            print(f"end to end: {args.e2e_runs} runs × {args.messages} messages", flush=True)
            e2e = measure_e2e(clamd, spamd, args.messages, args.e2e_runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(args, direct, e2e, started, time.monotonic() - t0)
    print()
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"\nwrote the '{SECTION}' section of {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
