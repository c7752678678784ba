#!/usr/bin/env python3
"""docsearch on a real corpus next to SQLite FTS5 (driven by bench/docsearch/run.sh).

Python's sqlite3 module here is Debian's python3 on Debian's libsqlite3 (3.40.1 on
bookworm): FTS5 runs in-process. Derive is driven over HTTP on 127.0.0.1 from this
process (http.client, keep-alive); the client's own cost (~0.1 ms a request) is in the
Derive figures, and in-process FTS5 pays Python's per-call cost (~10 µs).
"""
import argparse
import datetime
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

WORD = re.compile(r"[^\W_]+")
MAX_REQUEST_BYTES = 900_000          # the server's default body limit is 1 MiB


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run_threads(worker, n):
    """Runs `worker` on n threads at once; returns the wall time in seconds."""
    ths = [threading.Thread(target=worker) for _ in range(n)]
    t0 = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return time.perf_counter() - t0


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(p / 100 * len(v)) - 1))]


def windows(times, start, size):
    """docs/s per `size`-document window from the completion time of each document."""
    out, prev = [], start
    for end in range(size, len(times) + 1, size):
        t = times[end - 1]
        out.append(size / max(t - prev, 1e-9))
        prev = t
    return out


# --------------------------------------------------------------------------- FTS5

def fts5_load(docs, path, batch, window):
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, title, text, "
                "tokenize='unicode61 remove_diacritics 0')")
    done = []
    t0 = time.perf_counter()
    for i in range(0, len(docs), batch):
        con.execute("BEGIN")
        con.executemany("INSERT INTO docs(id, title, text) VALUES (?, ?, ?)",
                        [(d["id"], d["title"], d["text"]) for d in docs[i:i + batch]])
        con.execute("COMMIT")
        t = time.perf_counter()
        done += [t] * len(docs[i:i + batch])
    total = time.perf_counter() - t0
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    return {"seconds": total, "rate": len(docs) / total, "windows": windows(done, t0, window),
            "bytes": size}


def fts5_match(words):
    return " AND ".join('"%s"' % w for w in words)


def fts5_queries(path, queries, clients):
    sql = "SELECT id FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT 10"
    lat, hits = [0.0] * len(queries), [0] * len(queries)
    nxt = iter(range(len(queries)))
    lock = threading.Lock()

    def worker():
        con = sqlite3.connect(path, check_same_thread=False)
        con.execute(sql, ("warmup",)).fetchall()
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                break
            t = time.perf_counter()
            rows = con.execute(sql, (fts5_match(queries[i]),)).fetchall()
            lat[i] = time.perf_counter() - t
            hits[i] = len(rows)
        con.close()

    wall = run_threads(worker, clients)
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "qps": len(queries) / wall}, hits


# ------------------------------------------------------------------------- Derive

class Server:
    def __init__(self, binary, data, logfile, pidfile, timeout):
        shutil.rmtree(data, ignore_errors=True)
        self.data = data
        self.out, self.logfile = open(logfile, "w"), logfile
        self.proc = subprocess.Popen([binary, "--port", "0", "--data", data],
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     # info: the reclaimer's compactions (wait_reclaimed)
                                     env=dict(os.environ, DERIVE_LOG_LEVEL="info"))
        with open(pidfile, "w") as f:
            f.write(str(self.proc.pid))
        self.port = None
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", open(logfile).read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.1)
        if not self.port:
            self.stop()
            raise SystemExit(f"docsearch did not start; see {logfile}")

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def status(self, key):
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def stop(self):
        """SIGTERM, then SIGKILL after 15 s; returns seconds until exit."""
        if self.proc.poll() is not None:
            return 0.0
        t = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return float("inf")
        finally:
            self.out.close()
        return time.perf_counter() - t


def get_json(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")


class Poller(threading.Thread):
    """Samples /v1/health (head, view offsets) and the server's RSS every `every` s, and
    the data directory's allocated bytes (its peak)."""

    def __init__(self, server, every, deadline, data=None):
        super().__init__(daemon=True)
        self.server, self.every, self.deadline, self.data = server, every, deadline, data
        self.samples, self.stop_ev, self.peak_disk = [], threading.Event(), 0

    def run(self):
        conn = self.server.conn(10)
        while not self.stop_ev.is_set() and time.time() < self.deadline:
            try:
                st, h = get_json(conn, "/v1/health")
                views = h.get("views", {})
                self.samples.append((time.perf_counter(), h.get("head", 0),
                                     views.get("documents", {}).get("offset", 0),
                                     views.get("search", {}).get("offset", 0),
                                     self.server.status("VmRSS")))
                if self.data:
                    self.peak_disk = max(self.peak_disk, disk_usage(self.data)["allocated"])
            except Exception:
                conn.close()
                conn = self.server.conn(10)
            self.stop_ev.wait(self.every)


def post_batches(server, docs, batch, deadline, conn=None, indices=None):
    """Appends docs in batches of `batch` events (split further to stay under the body
    limit). Returns (ack time per doc, offset per doc, requests); stops at the deadline."""
    conn = conn or server.conn(120)
    acks, offsets, requests = {}, {}, 0
    for b in (indices if indices is not None else range(0, len(docs), batch)):
        group = list(range(b, min(b + batch, len(docs))))
        parts, cur, size = [], [], 2
        for i in group:
            ev = json.dumps({"type": "doc.put", "key": docs[i]["id"],
                             "data": {"title": docs[i]["title"], "text": docs[i]["text"]}})
            n = len(ev.encode()) + 1
            if cur and size + n > MAX_REQUEST_BYTES:
                parts.append(cur)
                cur, size = [], 2
            cur.append((i, ev))
            size += n
        parts.append(cur)
        for part in parts:
            if time.time() > deadline:
                return acks, offsets, requests
            body = ("[" + ",".join(ev for _, ev in part) + "]").encode()
            conn.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status not in (200, 201):
                raise SystemExit(f"append failed: {r.status} {data[:300]!r}")
            t = time.perf_counter()
            for (i, _), off in zip(part, json.loads(data)["offsets"]):
                acks[i], offsets[i] = t, off
            requests += 1
    return acks, offsets, requests


def wait_searchable(server, doc, offset, deadline):
    """Time at which a query for a word of `doc` answers with after=offset."""
    words = WORD.findall(doc["title"].lower()) or ["a"]
    q = urllib.parse.quote(words[0])
    conn = server.conn(40)
    while time.time() < deadline:
        try:
            wait_ms = int(max(0, min(30, deadline - time.time())) * 1000)
            st, body = get_json(conn, f"/v1/query/search/search?q={q}&limit=1"
                                      f"&after={offset}&timeout_ms={wait_ms}")
        except Exception:
            conn.close()
            conn = server.conn(40)
            time.sleep(0.2)
            continue
        if st == 200:
            return time.perf_counter()
        if st != 504:
            raise SystemExit(f"search query failed: {st} {body}")
    return None


def derive_queries(server, queries, clients):
    lat, hits = [0.0] * len(queries), [0] * len(queries)
    nxt = iter(range(len(queries)))
    lock = threading.Lock()
    errors = []

    def worker():
        conn = server.conn(60)
        get_json(conn, "/v1/query/search/search?q=warmup&limit=10")
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                break
            path = ("/v1/query/search/search?limit=10&q="
                    + urllib.parse.quote(" ".join(queries[i])))
            t = time.perf_counter()
            st, body = get_json(conn, path)
            lat[i] = time.perf_counter() - t
            if st != 200:
                errors.append(st)
            else:
                hits[i] = len(body["hits"])
        conn.close()

    wall = run_threads(worker, clients)
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "qps": len(queries) / wall,
            "errors": len(errors)}, hits


def disk_usage(path):
    apparent = allocated = 0
    files = {}
    for root, _, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(root, n))
            apparent += st.st_size
            allocated += st.st_blocks * 512
            files[os.path.relpath(os.path.join(root, n), path)] = st.st_blocks * 512
    return {"apparent": apparent, "allocated": allocated, "files": files}


def wait_reclaimed(server, data, limit=90):
    """Waits (up to `limit` s) for the server's reclaimer to compact the views' environment
    once the load is over (runtime_options.reclaim: quiet for 10 s). Returns how long it
    took, what its log line says and the data directory's allocated bytes then."""
    t0 = time.perf_counter()
    pat = re.compile(r"compacted (\S*views) \((\d+) of (\d+) MB free\): gave back (\d+) MB; "
                     r"its transactions waited (\d+) ms")
    while time.perf_counter() - t0 < limit:
        m = pat.search(open(server.logfile).read())
        if m:
            return {"seconds": time.perf_counter() - t0, "free_mb": int(m.group(2)),
                    "file_mb": int(m.group(3)), "gave_mb": int(m.group(4)),
                    "paused_ms": int(m.group(5)), "disk": disk_usage(data)["allocated"]}
        time.sleep(0.5)
    return {"seconds": None, "disk": disk_usage(data)["allocated"]}


def mdb_breakdown(data):
    """Per named database: bytes in its pages (branch + leaf + overflow) × page size."""
    out = {}
    if not shutil.which("mdb_stat"):
        return out
    for root, _, names in os.walk(data):
        if "data.mdb" not in names:
            continue
        env = os.path.relpath(root, data)
        r = subprocess.run(["mdb_stat", "-a", "-f", root], capture_output=True, text=True,
                           timeout=60)
        name, psize, dbs, free = None, 4096, {}, 0
        for line in r.stdout.split("\n"):
            s = line.strip()
            m = re.match(r"Status of (.*)", s)
            if m:
                name = m.group(1)
                dbs[name] = {"pages": 0, "entries": 0}
                continue
            m = re.match(r"Page size: (\d+)", s)
            if m:
                psize = int(m.group(1))
            m = re.match(r"(Branch|Leaf|Overflow) pages: (\d+)", s)
            if m and name:
                dbs[name]["pages"] += int(m.group(2))
            m = re.match(r"Entries: (\d+)", s)
            if m and name:
                dbs[name]["entries"] = int(m.group(1))
            m = re.match(r"Free pages: (\d+)", s)
            if m:
                free = int(m.group(1))
        out[env] = {"page_size": psize, "free_bytes": free * psize,
                    "dbs": {k: {"bytes": v["pages"] * psize, "entries": v["entries"]}
                            for k, v in dbs.items()}}
    return out


def derive_run(args, docs, queries, label, unpaced):
    deadline = time.time() + args.timeout
    data = os.path.join(args.work, f"data-{label}")
    server = Server(args.server, data, os.path.join(args.work, f"server-{label}.log"),
                    os.path.join(args.work, "server.pid"), 30)
    res = {"label": label, "complete": False}
    try:
        conn = server.conn(10)
        _, h = get_json(conn, "/v1/health")
        res["durability"] = h.get("durability")
        poller = Poller(server, 0.2, deadline + 5, data)
        poller.start()
        t0 = time.perf_counter()
        if not unpaced:
            acks, offsets, requests = post_batches(server, docs, args.batch, deadline)
        else:
            # Four connections append interleaved batches as fast as each is acknowledged;
            # nothing waits for the views, which catch up from the backlog.
            acks, offsets, requests = {}, {}, 0
            starts = list(range(0, len(docs), args.batch))
            lock = threading.Lock()

            def w(k):
                nonlocal requests
                a, o, r = post_batches(server, docs, args.batch, deadline,
                                       indices=starts[k::4])
                with lock:
                    acks.update(a)
                    offsets.update(o)
                    requests += r

            ths = [threading.Thread(target=w, args=(k,)) for k in range(4)]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
        t_acked = time.perf_counter()
        res["acked_docs"] = len(acks)
        res["requests"] = requests
        res["ack_seconds"] = t_acked - t0
        if len(acks) < len(docs):
            res["timed_out"] = f"appending: {len(acks)} of {len(docs)} acknowledged"
        last = max(offsets.values()) if offsets else 0
        t_search = None
        if offsets:
            last_doc = docs[max(offsets, key=offsets.get)]
            t_search = wait_searchable(server, last_doc, last, deadline)
        if t_search is None:
            res.setdefault("timed_out", f"search view not caught up to offset {last} "
                                        f"within --timeout {args.timeout} s")
        poller.stop_ev.set()
        poller.join(5)
        samples = poller.samples
        if not unpaced and acks:
            ack_times = [acks[i] for i in range(len(acks))]
            res["ack_windows"] = windows(ack_times, t0, args.window)
        # Searchable windows: the first health sample with search offset >= the offset of
        # the window's last document (0.2 s resolution).
        if offsets and len(acks) == len(docs):
            order = sorted(offsets.values())
            sw, prev = [], t0
            for end in range(args.window, len(order) + 1, args.window):
                target = order[end - 1]
                t = next((s[0] for s in samples if s[3] >= target), t_search)
                if t is None:
                    break
                if end == len(order) and t_search:
                    t = min(t, t_search)
                sw.append(args.window / max(t - prev, 0.2))
                prev = t
            res["search_windows"] = sw
        res["max_rss_sampled"] = max((s[4] for s in samples), default=0)
        res["max_search_lag"] = max((s[1] - s[3] for s in samples), default=0)
        # Progress of the search view: longest time its offset did not move while behind.
        stall, since = 0.0, None
        for a, b in zip(samples, samples[1:]):
            behind = a[1] > a[3]
            if behind and b[3] == a[3]:
                since = since if since is not None else a[0]
                stall = max(stall, b[0] - since)
            else:
                since = None
        res["longest_stall"] = stall
        if t_search:
            res["complete"] = True
            res["searchable_seconds"] = t_search - t0
            res["rate"] = len(docs) / (t_search - t0)
            res["searchable_after_ack"] = t_search - t_acked
        res["vm_hwm_load"] = server.status("VmHWM")
        res["peak_disk"] = max(poller.peak_disk, disk_usage(data)["allocated"])
        res["disk_loaded"] = disk_usage(data)["allocated"]
        if res["complete"]:
            res["reclaim"] = wait_reclaimed(server, data)
        if res["complete"] and queries:
            res["q1"], res["hits"] = derive_queries(server, queries, 1)
            res["q8"], _ = derive_queries(server, queries, 8)
        res["vm_hwm"] = server.status("VmHWM")
        res["shutdown_seconds"] = server.stop()
        res["disk"] = disk_usage(data)
        res["mdb"] = mdb_breakdown(data)
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    return res


# ------------------------------------------------------------------------ queries

def make_queries(docs, n, seed=42):
    df = {}
    for d in docs:
        for w in set(WORD.findall((d["title"] + " " + d["text"]).lower())):
            df[w] = df.get(w, 0) + 1
    N = len(docs)
    ok = lambda w: re.fullmatch(r"[a-z]{3,}", w) is not None
    common = sorted((w for w, c in df.items() if ok(w) and c >= 0.10 * N), key=lambda w: -df[w])
    medium = sorted(w for w, c in df.items() if ok(w) and 0.01 * N <= c < 0.05 * N)
    rare = sorted(w for w, c in df.items() if ok(w) and 2 <= c <= max(3, N // 2000))
    if not common:
        common = sorted((w for w in df if ok(w)), key=lambda w: -df[w])[:20]
    rng = random.Random(seed)
    kinds = [("rare", lambda: [rng.choice(rare)]),
             ("medium", lambda: [rng.choice(medium)]),
             ("common", lambda: [rng.choice(common)]),
             ("common+common", lambda: rng.sample(common, 2) if len(common) > 1
              else [common[0]]),
             ("rare+common", lambda: [rng.choice(rare), rng.choice(common)])]
    qs = [kinds[i % len(kinds)][1]() for i in range(n)]
    bands = {"common": (len(common), f"df ≥ 10% ({', '.join(common[:6])}, …)"),
             "medium": (len(medium), "df 1–5%"),
             "rare": (len(rare), f"df 2–{max(3, N // 2000)}")}
    return qs, bands


# ------------------------------------------------------------------------- report

def fmt_b(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def ms(x):
    return f"{x * 1000:.2f} ms"


def machine(work):
    cpu = subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"],
                         capture_output=True, text=True).stdout.strip()
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    df = subprocess.run(["df", "-T", work], capture_output=True, text=True).stdout.split("\n")[1]
    dev, fstype = df.split()[0], df.split()[1]
    # Latency of one synced 4 KB write on this disk (median of 100).
    path = os.path.join(work, "fsync-probe")
    lat = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    for _ in range(100):
        t = time.perf_counter()
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
        lat.append(time.perf_counter() - t)
    os.close(fd)
    os.remove(path)
    load = open("/proc/loadavg").read().split()[:3]
    return {"cpu": cpu, "nproc": os.cpu_count(), "ram": mem * 1024, "disk": f"{dev} ({fstype})",
            "fsync_ms": pct(lat, 50) * 1000, "load": " ".join(load)}


def report(args, corpus, fts, derives, bands, mach, agree):
    L = []
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    d = derives[0]
    N = corpus["documents"]
    L.append(f"### Run of {now}: {N:,} documents{' — ' + args.note if args.note else ''}")
    L.append("")
    L.append(f"Machine: {mach['cpu']}, {mach['nproc']} cores, {mach['ram'] / 2**30:.1f} GiB RAM, "
             f"disk {mach['disk']} ({mach['fsync_ms']:.2f} ms per synced 4 KB write), "
             f"load average {mach['load']} at the start. Tree: {args.rev}.")
    L.append("")
    bs = corpus["by_source"]
    L.append(f"Corpus: {N:,} documents ({bs.get('man', 0):,} manual pages from manpages + "
             f"manpages-dev, {bs.get('fortune-en', 0):,} English fortunes from fortunes + "
             f"fortunes-min, {bs.get('fortune-de', 0):,} German fortunes from fortunes-de), "
             f"{fmt_b(corpus['text_bytes'])} of text; per document median "
             f"{corpus['median_bytes']:,} B, p99 {corpus['p99_bytes']:,} B, max "
             f"{corpus['max_bytes']:,} B. Appends: {args.batch} documents per request "
             f"({d.get('requests', 0)} requests: a batch over 900 KB is split), one client, "
             f"full durability (`/v1/health`: {d.get('durability')}). FTS5: SQLite "
             f"{sqlite3.sqlite_version}, `unicode61 remove_diacritics 0`, journal_mode=WAL, "
             f"synchronous=FULL, one transaction per {args.batch} documents, text stored in "
             f"the FTS table. Windows of {args.window:,} documents.")
    L.append("")
    if not d["complete"]:
        L.append(f"**Derive did not finish: {d.get('timed_out')}** "
                 f"({d.get('acked_docs', 0):,} documents acknowledged).")
        L.append("")

    def ratio(a, b):
        return f"{a / b:.2f}×" if a is not None and b else "—"

    def goal(ok):
        return "**yes**" if ok else "**no**"

    L.append("| | Derive docsearch | SQLite FTS5 | Derive/FTS5 | goal | met |")
    L.append("|---|---:|---:|---:|---|---|")
    aw = d.get("ack_windows") or []
    sw = d.get("search_windows") or []
    fw = fts["windows"]
    if aw and fw:
        L.append(f"| appends acknowledged, first window | {aw[0]:,.0f} docs/s | {fw[0]:,.0f} docs/s "
                 f"| {ratio(aw[0], fw[0])} | | |")
        lin = aw[-1] / aw[0]
        L.append(f"| appends acknowledged, last window | {aw[-1]:,.0f} docs/s | {fw[-1]:,.0f} docs/s "
                 f"| {ratio(aw[-1], fw[-1])} | last ≥ 0.75× first | {goal(lin >= 0.75)} ({lin:.2f}×) |")
    if sw and fw and len(sw) == len(fw):
        lin = sw[-1] / sw[0]
        L.append(f"| searchable, first window | {sw[0]:,.0f} docs/s | {fw[0]:,.0f} docs/s "
                 f"| {ratio(sw[0], fw[0])} | | |")
        L.append(f"| searchable, last window | {sw[-1]:,.0f} docs/s | {fw[-1]:,.0f} docs/s "
                 f"| {ratio(sw[-1], fw[-1])} | last ≥ 0.75× first | {goal(lin >= 0.75)} ({lin:.2f}×) |")
    if d["complete"]:
        r = d["rate"] / fts["rate"]
        L.append(f"| whole load, until the last document is searchable | {d['searchable_seconds']:.1f} s "
                 f"= {d['rate']:,.0f} docs/s (acknowledged at {d['ack_seconds']:.1f} s) | "
                 f"{fts['seconds']:.1f} s = {fts['rate']:,.0f} docs/s | {r:.2f}× | ≥ 0.3× | "
                 f"{goal(r >= 0.3)} |")
    if d.get("disk"):
        r = d["disk"]["allocated"] / fts["bytes"]
        L.append(f"| data on disk (after the load, queries and shutdown) | "
                 f"{fmt_b(d['disk']['allocated'])} | {fmt_b(fts['bytes'])} | "
                 f"{r:.1f}× | ≤ 8× | {goal(r <= 8)} |")
        rc = d.get("reclaim") or {}
        if rc.get("seconds") is not None:
            L.append(f"| data on disk: peak during the load / at its end / once compacted "
                     f"({rc['seconds']:.1f} s after the load; readers and writers waited "
                     f"{rc['paused_ms']:,} ms) | {fmt_b(d['peak_disk'])} / "
                     f"{fmt_b(d['disk_loaded'])} / {fmt_b(rc['disk'])} | | "
                     f"{d['peak_disk'] / fts['bytes']:.1f}× / {rc['disk'] / fts['bytes']:.1f}× "
                     f"| | |")
        elif d.get("peak_disk"):
            L.append(f"| data on disk: peak during the load / at its end (no compaction "
                     f"within 90 s) | {fmt_b(d['peak_disk'])} / {fmt_b(d['disk_loaded'])} | | "
                     f"{d['peak_disk'] / fts['bytes']:.1f}× | | |")
    L.append(f"| server peak RSS (VmHWM) after load / after queries | {fmt_b(d.get('vm_hwm_load', 0))} / "
             f"{fmt_b(d.get('vm_hwm', 0))} | — | | | |")
    for k, name in (("q1", "1 client"), ("q8", "8 concurrent")):
        if k in d:
            q, f = d[k], fts[k]
            r = q["p99"] / f["p99"]
            L.append(f"| query p50 / p99, {name} | {ms(q['p50'])} / {ms(q['p99'])} "
                     f"({q['qps']:,.0f}/s) | {ms(f['p50'])} / {ms(f['p99'])} ({f['qps']:,.0f}/s) | "
                     f"p99 {r:.1f}× | p99 ≤ 5× | {goal(r <= 5)} |")
    L.append(f"| shutdown (SIGTERM → exit) | {d.get('shutdown_seconds', 0):.2f} s | | | | |")
    for u in derives[1:]:
        if u["complete"]:
            L.append(f"| unpaced (4 connections, no waiting for the views): searchable after | "
                     f"{u['searchable_seconds']:.1f} s = {u['rate']:,.0f} docs/s (all acknowledged at "
                     f"{u['ack_seconds']:.1f} s, search lag up to {u['max_search_lag']:,} events, "
                     f"longest stall {u['longest_stall']:.1f} s) | {fts['rate']:,.0f} docs/s | "
                     f"{u['rate'] / fts['rate']:.2f}× | | |")
        else:
            L.append(f"| unpaced (4 connections): | did not finish: {u.get('timed_out')} "
                     f"(search lag up to {u['max_search_lag']:,}, longest stall "
                     f"{u['longest_stall']:.1f} s) | | | | |")
        L.append(f"| unpaced: peak RSS, shutdown | {fmt_b(u.get('vm_hwm', 0))}, SIGTERM → exit "
                 f"{u.get('shutdown_seconds', 0):.2f} s | | | RSS ≤ 1 GB | "
                 f"{goal(u.get('vm_hwm', 0) <= 1e9)} |")
    L.append("")
    if sw or aw:
        parts = ["FTS5: " + ", ".join(f"{x:,.0f}" for x in fw)]
        if aw:
            parts.append("Derive acknowledged: " + ", ".join(f"{x:,.0f}" for x in aw))
        if sw:
            parts.append("Derive searchable (health polled every 0.2 s): "
                         + ", ".join(f"{x:,.0f}" for x in sw))
        L.append(f"Windows of {args.window:,} documents, docs/s — " + "; ".join(parts) + ".")
        L.append("")
    L.append(f"Queries: {args.queries:,} ({', '.join(f'{k} {v[0]:,} words, {v[1]}' for k, v in bands.items())}; "
             "one fifth each of: one rare word, one medium, one common, two common, rare + common), "
             "`limit=10` over HTTP / `MATCH '\"a\" AND \"b\"' ORDER BY bm25 LIMIT 10` in-process; "
             f"both return the same number of hits (≤ 10) for {agree[0]:,} of {agree[1]:,} queries.")
    L.append("")
    if d.get("mdb"):
        L.append("Where Derive's bytes go (`mdb_stat -a -f`: pages of each database × page size; "
                 "file sizes are allocated blocks):")
        L.append("")
        L.append("| environment / database | entries | bytes |")
        L.append("|---|---:|---:|")
        for env, e in sorted(d["mdb"].items()):
            for name, v in sorted(e["dbs"].items(), key=lambda kv: -kv[1]["bytes"]):
                L.append(f"| {env} / {name} | {v['entries']:,} | {fmt_b(v['bytes'])} |")
            L.append(f"| {env} / (free pages) | | {fmt_b(e['free_bytes'])} |")
        for f, b in sorted(d["disk"]["files"].items(), key=lambda kv: -kv[1]):
            L.append(f"| file {f} | | {fmt_b(b)} |")
        L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--unpaced", action="store_true")
    ap.add_argument("--record", default="")
    ap.add_argument("--note", default="")
    ap.add_argument("--rev", default="")
    args = ap.parse_args()
    docs = [json.loads(l) for l in open(args.corpus)]
    corpus = json.loads(open(args.summary).read())
    mach = machine(args.work)
    log(f"docsearch bench: {len(docs)} documents; machine {mach['cpu']}, {mach['nproc']} cores")
    queries, bands = make_queries(docs, args.queries)
    log("FTS5: loading")
    fts = fts5_load(docs, os.path.join(args.work, "fts5.db"), args.batch, args.window)
    log(f"FTS5: {fts['seconds']:.1f} s, {fmt_b(fts['bytes'])}; queries")
    fts["q1"], fhits = fts5_queries(os.path.join(args.work, "fts5.db"), queries, 1)
    fts["q8"], _ = fts5_queries(os.path.join(args.work, "fts5.db"), queries, 8)
    log("Derive: loading (one client, acknowledged batches)")
    derives = [derive_run(args, docs, queries, "paced", False)]
    log(f"Derive: complete={derives[0]['complete']} {derives[0].get('timed_out', '')}")
    if args.unpaced:
        log("Derive: unpaced load (4 connections)")
        derives.append(derive_run(args, docs, [], "unpaced", True))
    dh = derives[0].get("hits") or []
    agree = (sum(1 for a, b in zip(dh, fhits) if a == b), len(dh))
    text = report(args, corpus, fts, derives, bands, mach, agree)
    print(text)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"corpus": corpus, "machine": mach, "fts5": fts, "derive": derives},
                  f, indent=1, default=str)
    if args.record:
        with open(args.record) as f:
            doc = f.read()
        head = "## docsearch: a real corpus next to SQLite FTS5"
        if head not in doc:
            doc = doc.rstrip("\n") + "\n\n" + head + "\n\n" + INTRO + "\n"
        with open(args.record, "w") as f:
            f.write(doc.rstrip("\n") + "\n\n" + text + "\n")
        log(f"recorded in {args.record}")
    for s in (derives[0].get("timed_out"),):
        if s:
            sys.exit(3)


INTRO = """`bench/docsearch/run.sh` (`scripts/bench.sh docsearch`): the same real documents, installed
from Debian packages (manual pages of manpages and manpages-dev rendered by groff, fortunes
from fortunes, fortunes-min and fortunes-de), loaded into the docsearch sample over HTTP and
into SQLite FTS5 in-process, in the same run on the same disk. Goals (issue 9): the last
1,000-document window within 25% of the first; the whole load, until the last document is
searchable, at ≥ 0.3× FTS5's rate; the data directory ≤ 8× the FTS5 database; query p99
≤ 5× FTS5's (HTTP included); an unpaced load catching up with RSS ≤ 1 GB. Each run appends a
dated section below (`--no-record` to skip)."""

if __name__ == "__main__":
    main()
