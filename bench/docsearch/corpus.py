#!/usr/bin/env python3
"""Builds the docsearch benchmark corpus from Debian packages (bench/docsearch/run.sh).

Sources (installed by scripts/setup.sh --bench):
  manpages, manpages-dev   real manual pages (not `.so` stubs, not symlinks), rendered
                           with groff (-t -man -Tutf8, 80 columns), one document each
  fortunes (+fortunes-min) English fortune cookies, split on `%` lines, one document each
  fortunes-de              German fortune cookies, same

The pool (every document of every source) is rendered once and cached as JSON lines in
CACHE_DIR/pool-<versions hash>.jsonl; a new package version builds a new pool.

A selection of N documents takes a fixed share of each source (man pages 5.5%, English
fortunes 76.1%, German fortunes the rest: at N = 20,000 that is 1,100 / 15,220 / 3,680)
and orders them by SHA-1 of the id, so every 1,000-document window has the same mix and
the first window is comparable with the last.

Usage: corpus.py CACHE_DIR N OUT.jsonl     (prints a one-line summary)
"""
import concurrent.futures as cf
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

MAN_PACKAGES = ["manpages", "manpages-dev"]
FORTUNE_SOURCES = [("fortune-en", "fortunes", "/usr/share/games/fortunes"),
                   ("fortune-en", "fortunes-min", "/usr/share/games/fortunes"),
                   ("fortune-de", "fortunes-de", "/usr/share/games/fortunes/de")]
SHARES = [("man", 0.055), ("fortune-en", 0.761), ("fortune-de", None)]
MAX_DOC_BYTES = 1_000_000 - 4096   # each document's JSON body stays under 1 MB
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def pkg_version(p):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}|${Version}", p],
                       capture_output=True, text=True)
    if r.returncode != 0 or "install ok installed" not in r.stdout:
        sys.exit(f"corpus: package {p} is not installed (scripts/setup.sh --bench)")
    return r.stdout.split("|", 1)[1]


def pkg_files(p):
    out = subprocess.run(["dpkg", "-L", p], capture_output=True, text=True, check=True).stdout
    return out.split("\n")


def clean(s):
    # Overstriking (x\bx) from the old fortune files, then other control characters.
    s = re.sub(r".\x08", "", s)
    return CONTROL.sub("", s)


def render_man(path):
    if os.path.islink(path):
        return None
    raw = gzip.open(path, "rb").read() if path.endswith(".gz") else open(path, "rb").read()
    head = raw[:300].decode("latin-1")
    if re.match(r"^(\.\\\".*\n)*\.so ", head):      # a stub pointing at another page
        return None
    r = subprocess.run(["groff", "-t", "-man", "-Tutf8", "-rLL=80n", "-P-cbou"],
                       input=raw, capture_output=True, timeout=120)
    text = clean(r.stdout.decode("utf-8", "replace")).strip("\n")
    if not text.strip():
        return None
    base = os.path.basename(path)
    base = base[:-3] if base.endswith(".gz") else base
    name, _, section = base.rpartition(".")
    # Title: "name(section) — <the NAME line>"
    m = re.search(r"^NAME\s*\n((?:[ \t]+\S.*\n?)+)", text, re.M)
    summary = " ".join(m.group(1).split()) if m else ""
    title = f"{name}({section})" + (f" — {summary}" if summary else "")
    return {"id": f"man-{name}.{section}", "title": title[:300], "text": text, "source": "man"}


def fortunes(source, directory, files):
    docs = []
    for path in sorted(files):
        if (not path.startswith(directory + "/") or "/" in path[len(directory) + 1:]
                or path.endswith((".dat", ".u8")) or not os.path.isfile(path)
                or os.path.islink(path)):
            continue
        data = clean(open(path, "rb").read().decode("utf-8", "replace"))
        name = os.path.basename(path)
        for i, chunk in enumerate(re.split(r"^%\s*$", data, flags=re.M)):
            text = chunk.strip("\n")
            if not text.strip():
                continue
            first = next(l.strip() for l in text.split("\n") if l.strip())
            docs.append({"id": f"{source}-{name}-{i + 1}", "title": first[:120],
                         "text": text, "source": source})
    return docs


def build_pool(cache):
    packages = sorted(set(MAN_PACKAGES + [p for _, p, _ in FORTUNE_SOURCES] + ["groff-base"]))
    versions = {p: pkg_version(p) for p in packages}
    tag = hashlib.sha1(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:10]
    pool = os.path.join(cache, f"pool-{tag}.jsonl")
    if os.path.exists(pool):
        return pool, versions
    os.makedirs(cache, exist_ok=True)
    man_files = sorted(f for p in MAN_PACKAGES for f in pkg_files(p)
                       if re.search(r"/man/man\d/[^/]+$", f))
    print(f"corpus: rendering {len(man_files)} manual page files (once; cached in {cache})",
          file=sys.stderr)
    docs = []
    with cf.ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as ex:
        for d in ex.map(render_man, man_files):
            if d:
                docs.append(d)
    seen_files = set()
    for source, p, directory in FORTUNE_SOURCES:
        files = [f for f in pkg_files(p) if f not in seen_files]
        seen_files.update(files)
        docs.extend(fortunes(source, directory, files))
    ids, out = set(), []
    for d in docs:
        if d["id"] in ids:
            continue
        ids.add(d["id"])
        body = json.dumps({"type": "doc.put", "key": d["id"],
                           "data": {"title": d["title"], "text": d["text"]}})
        if len(body.encode()) > MAX_DOC_BYTES:
            d["text"] = d["text"].encode()[:MAX_DOC_BYTES - 2000].decode("utf-8", "ignore")
        out.append(d)
    tmp = pool + ".tmp"
    with open(tmp, "w") as f:
        for d in out:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    os.replace(tmp, pool)
    with open(os.path.join(cache, f"pool-{tag}.versions.json"), "w") as f:
        json.dump(versions, f, indent=1)
    return pool, versions


def select(pool, n):
    by_source = {}
    for line in open(pool):
        d = json.loads(line)
        by_source.setdefault(d["source"], []).append(d)
    key = lambda d: hashlib.sha1(d["id"].encode()).hexdigest()
    for v in by_source.values():
        v.sort(key=key)
    chosen, left = [], n
    for source, share in SHARES:
        avail = by_source.get(source, [])
        k = min(len(avail), left if share is None else round(n * share))
        chosen += avail[:k]
        left -= k
    if left > 0:                     # a source ran short: fill from the others
        rest = sorted((d for s, _ in SHARES for d in by_source.get(s, []) if d not in chosen),
                      key=key)
        chosen += rest[:left]
    if len(chosen) < n:
        sys.exit(f"corpus: only {len(chosen)} documents available, {n} asked")
    chosen.sort(key=key)
    return chosen


def main():
    cache, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pool, versions = build_pool(cache)
    docs = select(pool, n)
    with open(out, "w") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    sizes = sorted(len(d["text"].encode()) for d in docs)
    count = {}
    for d in docs:
        count[d["source"]] = count.get(d["source"], 0) + 1
    pool_n = sum(1 for _ in open(pool))
    print(json.dumps({"documents": len(docs), "pool": pool_n, "by_source": count,
                      "text_bytes": sum(sizes), "median_bytes": sizes[len(sizes) // 2],
                      "p99_bytes": sizes[int(len(sizes) * 0.99)], "max_bytes": sizes[-1],
                      "packages": versions}))


if __name__ == "__main__":
    main()
