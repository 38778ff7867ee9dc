#!/usr/bin/env python3
"""Volume benchmark for Stratus (standard library only); driven by bench/volumes/run.sh.

  volbench.py --server URL --ctl STRATUSCTL --data-dir DIR --workdir DIR --image SHORT=FILE [--image ...]
              [--count 100] [--methods qcow2,raw] [--base-jobs 1,2] [--warmup 1] [--budget SECONDS] --json OUT

For each image (applied as a disk Image `bench-SHORT` with a file:// source, waited for until Ready) and each
method, in this order:

  Stratus:  a watch on volumes is opened, then COUNT Volumes `{size: 1Gi, format: METHOD, source: {image}}` go in one
            `stratusctl apply -f` of a COUNT-document file. The watcher records, per volume, when its ADDED event
            arrived ("created"), when spec.nodeName appeared (placement), when phase Creating and phase Available
            were first seen. After the last one is Available: the mtime of every volume file ("written": when its
            storage was really done), du of the pool directory (allocated blocks and apparent size), the time of a
            `sync` (writeback of what the copies left dirty), then `stratusctl delete volumes --all --wait`, timed.
            While it runs, libvirtd's children are sampled every 20 ms for qemu-img processes (what libvirt runs,
            for how long, how many at once).
  baseline: the same COUNT operations with qemu-img directly, from the node's cached copy of the same image (the
            very file Stratus' volumes use): qcow2 = `qemu-img create -f qcow2 -F FMT -b IMAGE DST 1G`; raw =
            `qemu-img convert -f FMT -O raw IMAGE DST` (+ `qemu-img resize -f raw DST 1G` when the image is
            smaller); once per entry of --base-jobs (jobs at a time). Same du and sync; files removed (timed).

`sync` runs (untimed) before every phase so none starts with the previous one's dirty pages. With --warmup 1, an
untimed batch of COUNT full copies is written and removed right before Stratus' raw phase (see README.md: on this
VM the first large batch of writes after memory was idle pays for getting it back from the host).
"""
import argparse
import calendar
import concurrent.futures
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

NS_PATH = "/apis/stratus.io/v1/namespaces/default"
T_START = time.monotonic()
BUDGET = 600.0


def log(msg):
    print(f"volbench: [{time.monotonic() - T_START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def remaining(cap):
    """Seconds a wait may take: at most `cap`, never past the overall budget."""
    left = BUDGET - (time.monotonic() - T_START)
    if left <= 0:
        raise RuntimeError(f"overall time budget of {BUDGET:.0f}s used up")
    return min(cap, left)


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def summary(values):
    if not values:
        return None
    return {"p50": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99), "max": max(values),
            "min": min(values), "mean": statistics.fmean(values)}


def ctl(args, *rest, stdin=None, timeout=120, check=True):
    r = subprocess.run([args.ctl, "--server", args.server, *rest], input=stdin, capture_output=True, text=True,
                       timeout=remaining(timeout))
    if check and r.returncode != 0:
        raise RuntimeError(f"stratusctl {' '.join(rest)} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


def auth_headers():
    """The admin's bearer token (run.sh exports STRATUS_TOKEN from the server's data dir)."""
    token = os.environ.get("STRATUS_TOKEN", "")
    return {"Authorization": "Bearer " + token} if token else {}


def get_json(server, path):
    u = urllib.parse.urlparse(server)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("GET", path, headers=auth_headers())
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        c.close()


def phase(obj):
    return (obj.get("status") or {}).get("phase", "")


def timed_sync():
    t = time.monotonic()
    subprocess.run(["sync"], timeout=remaining(300), check=True)
    return time.monotonic() - t


def du(path):
    """(allocated bytes, apparent bytes, files) under path."""
    alloc = apparent = files = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:
                continue
            alloc += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return alloc, apparent, files


def qemu_img_info(path):
    r = subprocess.run(["qemu-img", "info", "--output=json", "-U", path], capture_output=True, text=True,
                       timeout=60, check=True)
    return json.loads(r.stdout)


# --------------------------------------------------------------------------------------------- watch ----------

class Watcher(threading.Thread):
    """Streams volume watch events; records first-seen monotonic times per volume."""

    def __init__(self, server, count):
        super().__init__(daemon=True)
        u = urllib.parse.urlparse(server)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=remaining(900))
        self.conn.request("GET", NS_PATH + "/volumes?watch=1", headers=auth_headers())
        self.resp = self.conn.getresponse()  # headers back: the watch is registered before we apply
        if self.resp.status != 200:
            raise RuntimeError(f"watch: HTTP {self.resp.status}")
        self.count = count
        self.added, self.bound, self.creating, self.available, self.failed = {}, {}, {}, {}, {}
        self.created_wall = {}  # name -> (creationTimestamp, wall clock when Available was seen)
        self.last = {}
        self.events = 0
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.done.is_set():
                line = self.resp.readline()
                if not line:
                    self.error = "watch stream ended"
                    break
                now, wall = time.monotonic(), time.time()
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                self.events += 1
                obj = ev.get("object") or {}
                md = obj.get("metadata") or {}
                name = md.get("name")
                if not name or ev.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                self.last[name] = obj
                self.added.setdefault(name, now)
                if name not in self.bound and (obj.get("spec") or {}).get("nodeName"):
                    self.bound[name] = now
                ph = phase(obj)
                if ph == "Creating":
                    self.creating.setdefault(name, now)
                if ph == "Failed":
                    self.failed.setdefault(name, now)
                if ph == "Available" and name not in self.available:
                    self.available[name] = now
                    self.created_wall[name] = (md.get("creationTimestamp", ""), wall)
                    if len(self.available) >= self.count:
                        self.done.set()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            if not self.done.is_set():
                self.error = repr(e)
        finally:
            self.done.set()

    def close(self):
        self.done.set()
        try:
            self.conn.sock.shutdown(2)  # unblocks readline
        except Exception:  # noqa: BLE001
            pass
        self.conn.close()


class ProcSampler(threading.Thread):
    """Samples libvirtd's children every 20 ms for qemu-img processes whose command line mentions `needle`: keeps
    their command templates (paths replaced by `subst`) and when each process was first and last seen."""

    def __init__(self, needle, subst):
        super().__init__(daemon=True)
        self.needle, self.subst = needle, subst
        self.procs = {}  # pid -> [template, first seen, last seen] (monotonic)
        self.max_concurrent = 0
        self.stop = threading.Event()
        self.libvirtd = None
        try:
            with open("/run/libvirtd.pid") as f:
                pid = f.read().strip()
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "libvirtd":
                    self.libvirtd = pid
        except OSError:
            pass

    def candidates(self):
        if self.libvirtd is None:  # unknown parent: scan every process
            return [p for p in os.listdir("/proc") if p.isdigit()]
        out = []
        try:
            for tid in os.listdir(f"/proc/{self.libvirtd}/task"):
                try:
                    with open(f"/proc/{self.libvirtd}/task/{tid}/children") as f:
                        out.extend(f.read().split())
                except OSError:
                    continue
        except OSError:
            pass
        return out

    def run(self):
        while not self.stop.is_set():
            n = 0
            now = time.monotonic()
            for pid in self.candidates():
                if pid in self.procs:
                    if os.path.exists(f"/proc/{pid}"):
                        self.procs[pid][2] = now
                        n += 1
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if not argv or not argv[0].endswith(b"qemu-img"):
                    continue
                cmd = " ".join(a.decode(errors="replace") for a in argv if a)
                if self.needle not in cmd:
                    continue
                n += 1
                for pat, rep in self.subst:
                    cmd = re.sub(pat, rep, cmd)
                self.procs[pid] = [cmd, now, now]
            self.max_concurrent = max(self.max_concurrent, n)
            self.stop.wait(0.02)

    def templates(self, t0):
        out = {}
        for cmd, first, last in self.procs.values():
            out.setdefault(cmd, []).append((first - t0, last - t0))
        return {cmd: {"processes": len(v), "seen_for": summary([b - a for a, b in v]),
                      "seen_intervals": sorted(v)} for cmd, v in out.items()}


# ------------------------------------------------------------------------------------------- phases ----------

def apply_image(args, name, path):
    doc = (f"apiVersion: stratus.io/v1\nkind: Image\nmetadata: {{name: {name}}}\n"
           f"spec: {{type: disk, source: {{url: 'file://{path}'}}}}\n")
    t0 = time.monotonic()
    ctl(args, "apply", "-f", "-", stdin=doc)
    deadline = time.monotonic() + remaining(300)
    while True:
        img = get_json(args.server, f"{NS_PATH}/images/{name}")
        ph = phase(img)
        if ph == "Ready":
            return img, time.monotonic() - t0
        if ph == "Failed" or time.monotonic() > deadline:
            raise RuntimeError(f"image {name} not Ready ({ph}): {json.dumps(img.get('status'))}")
        time.sleep(0.1)


def volume_doc(name, image, fmt, size):
    return (f"apiVersion: stratus.io/v1\nkind: Volume\nmetadata: {{name: {name}}}\n"
            f"spec: {{size: '{size}', format: {fmt}, source: {{image: {image}}}}}\n")


def stratus_phase(args, img_short, image, fmt, pool_dir):
    count = args.count
    names = [f"{img_short}-{fmt}-{i:03d}" for i in range(1, count + 1)]
    manifest = os.path.join(args.workdir, f"volumes-{img_short}-{fmt}.yaml")
    with open(manifest, "w") as f:
        f.write("---\n".join(volume_doc(n, image, fmt, args.size) for n in names))
    subprocess.run(["sync"], timeout=remaining(300), check=True)
    sampler = ProcSampler(args.data_dir, [(re.escape(pool_dir), "POOL"),
                                          (re.escape(os.path.join(args.data_dir, "agent", "pools", "images")),
                                           "IMAGES"),
                                          (r"vol-[0-9a-f-]{36}", "vol-UID"), (r"img-[0-9a-f-]{36}", "img-UID")])
    sampler.start()
    w = Watcher(args.server, count)
    w.start()
    log(f"stratus {img_short} {fmt}: applying {count} volumes in one `stratusctl apply -f`")
    t0 = time.monotonic()
    try:
        ctl(args, "apply", "-f", manifest, timeout=300)
        t_applied = time.monotonic() - t0
        ok = w.done.wait(remaining(args.wait_timeout))
        t_end = time.monotonic()
    finally:
        sampler.stop.set()
        w.close()
    sampler.join(2)
    if not ok or len(w.available) < count or w.failed:
        bad = {n: (o.get("status") or {}) for n, o in w.last.items() if n not in w.available}
        sample = dict(list(bad.items())[:3])
        raise RuntimeError(f"stratus {img_short} {fmt}: {len(w.available)}/{count} Available after "
                           f"{t_end - t0:.1f}s, {len(w.failed)} Failed (watch error: {w.error}); e.g. "
                           f"{json.dumps(sample)}")
    total = max(w.available.values()) - t0
    items = get_json(args.server, NS_PATH + "/volumes").get("items", [])
    # When the storage was really done: the volume file's mtime (qemu-img's last write, or the resize after it),
    # on the monotonic clock. Separates the storage operation from when Available was reported.
    wall_to_mono = time.monotonic() - time.time()
    stored = {}
    for i in items:
        n, path = i["metadata"]["name"], (i.get("status") or {}).get("path", "")
        try:
            stored[n] = os.stat(path).st_mtime + wall_to_mono
        except OSError:
            pass
    avail = sum(1 for i in items if phase(i) == "Available")
    fmts = sorted({(i.get("status") or {}).get("format", "?") for i in items})
    alloc, apparent, files = du(pool_dir)
    sync_s = timed_sync()
    per_added = [w.available[n] - w.added[n] for n in names]
    per_apply = [w.available[n] - t0 for n in names]
    per_creating = [w.available[n] - w.creating[n] for n in names if n in w.creating]
    creating_to_stored = [stored[n] - w.creating[n] for n in names if n in w.creating and n in stored]
    added_to_stored = [stored[n] - w.added[n] for n in names if n in stored]
    stored_to_available = [w.available[n] - stored[n] for n in names if n in stored]
    last_stored = max(stored.values()) - t0 if stored else None
    to_bound = [w.bound[n] - w.added[n] for n in names if n in w.bound]
    bound_to_creating = [w.creating[n] - w.bound[n] for n in names if n in w.creating and n in w.bound]
    # The brief's definition: creationTimestamp (1 s resolution: RFC 3339 without fraction) -> wall clock seen.
    per_ts = []
    for n in names:
        ts, wall = w.created_wall[n]
        try:
            per_ts.append(wall - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))
        except ValueError:
            pass
    log(f"stratus {img_short} {fmt}: all {count} Available after {total:.2f}s; du {alloc / 2**20:.0f} MiB; "
        f"sync {sync_s:.2f}s; deleting")
    td = time.monotonic()
    ctl(args, "delete", "volumes", "--all", "--wait", "--timeout", f"{int(remaining(args.wait_timeout))}s",
        timeout=args.wait_timeout + 30)
    t_del = time.monotonic() - td
    left_objs = len(get_json(args.server, NS_PATH + "/volumes").get("items", []))
    left_alloc, _, left_files = du(pool_dir)
    return {"method": fmt, "count": count, "total_s": total, "apply_returned_s": t_applied,
            "added_to_available": summary(per_added), "apply_to_available": summary(per_apply),
            "creating_to_available": summary(per_creating), "added_to_bound": summary(to_bound),
            "creating_to_stored": summary(creating_to_stored), "added_to_stored": summary(added_to_stored),
            "stored_to_available": summary(stored_to_available), "last_stored_s": last_stored,
            "bound_to_creating": summary(bound_to_creating),
            "creation_timestamp_to_available": summary(per_ts),
            "available_by_list": avail, "status_formats": fmts, "watch_events": w.events,
            "disk_alloc_bytes": alloc, "disk_apparent_bytes": apparent, "files": files, "sync_after_s": sync_s,
            "delete_wait_s": t_del, "left_objects": left_objs, "left_files": left_files, "left_alloc": left_alloc,
            "libvirt_qemu_img": sampler.templates(t0), "max_concurrent_qemu_img": sampler.max_concurrent}


def warmup(args, src, src_fmt):
    """Untimed: as many full copies as a raw phase makes, written and removed again, so that the timed phase finds the
    page cache memory as the phases after it do (see the README: on this VM, memory freed for a while is handed
    back to the host, and the first big batch of writes after that pays for getting it back)."""
    out = os.path.join(args.workdir, "warmup")
    os.makedirs(out, exist_ok=True)
    t = time.monotonic()

    def one(i):
        subprocess.run(["qemu-img", "convert", "-q", "-f", src_fmt, "-O", "raw", src, os.path.join(out, f"w{i:03d}")],
                       check=True, timeout=remaining(300), capture_output=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(one, range(args.count)))
    for n in os.listdir(out):
        os.unlink(os.path.join(out, n))
    subprocess.run(["sync"], timeout=remaining(300), check=True)
    log(f"warm-up: {args.count} untimed full copies written and removed in {time.monotonic() - t:.1f}s")
    return time.monotonic() - t


def baseline_phase(args, img_short, src, src_fmt, src_virtual, fmt, jobs):
    out = os.path.join(args.workdir, "baseline")
    os.makedirs(out, exist_ok=True)
    subprocess.run(["sync"], timeout=remaining(300), check=True)
    size = str(args.size_bytes)

    def one(i):
        dst = os.path.join(out, f"{img_short}-{fmt}-{i:03d}")
        t = time.monotonic()
        started[i] = t
        if fmt == "qcow2":
            cmds = [["qemu-img", "create", "-q", "-f", "qcow2", "-F", src_fmt, "-b", src, dst, size]]
        else:
            cmds = [["qemu-img", "convert", "-q", "-f", src_fmt, "-O", "raw", src, dst]]
            if src_virtual < args.size_bytes:
                cmds.append(["qemu-img", "resize", "-q", "-f", "raw", dst, size])
        for c in cmds:
            subprocess.run(c, check=True, timeout=remaining(300), capture_output=True)
        finished[i] = time.monotonic()
        return finished[i] - t

    log(f"baseline {img_short} {fmt}: {args.count} x qemu-img, {jobs} at a time")
    started, finished = {}, {}
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        per = list(ex.map(one, range(1, args.count + 1)))
    total = time.monotonic() - t0
    alloc, apparent, files = du(out)
    sync_s = timed_sync()
    cmd = (f"qemu-img create -f qcow2 -F {src_fmt} -b IMAGE DST {size}" if fmt == "qcow2" else
           f"qemu-img convert -f {src_fmt} -O raw IMAGE DST" +
           (f" && qemu-img resize -f raw DST {size}" if src_virtual < args.size_bytes else ""))
    log(f"baseline {img_short} {fmt} x{jobs}: {total:.2f}s; du {alloc / 2**20:.0f} MiB; sync {sync_s:.2f}s")
    td = time.monotonic()
    for n in os.listdir(out):
        os.unlink(os.path.join(out, n))
    delete_s = time.monotonic() - td
    return {"method": fmt, "jobs": jobs, "count": args.count, "total_s": total, "per_op": summary(per),
            "start_to_done": summary([v - t0 for v in finished.values()]), "delete_s": delete_s,
            "disk_alloc_bytes": alloc, "disk_apparent_bytes": apparent, "files": files, "sync_after_s": sync_s,
            "command": cmd}


def main():
    global BUDGET
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--data-dir", required=True, help="stratusd --data-dir (pools under DATA_DIR/agent/pools)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--image", action="append", required=True, help="SHORT=FILE (Image bench-SHORT)")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--methods", default="qcow2,raw")
    ap.add_argument("--base-jobs", default="1")
    ap.add_argument("--size", default="1Gi")
    ap.add_argument("--size-bytes", type=int, default=1 << 30)
    ap.add_argument("--wait-timeout", type=float, default=300, help="per wait for all volumes (s)")
    ap.add_argument("--budget", type=float, default=600, help="overall time limit (s)")
    ap.add_argument("--warmup", type=int, default=1, help="1: untimed full copies before Stratus' raw phase")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    BUDGET = args.budget
    os.makedirs(args.workdir, exist_ok=True)
    pool_dir = os.path.join(args.data_dir, "agent", "pools", "default")
    images_dir = os.path.join(args.data_dir, "agent", "pools", "images")
    methods = [m for m in args.methods.split(",") if m]
    jobs_list = [int(j) for j in args.base_jobs.split(",") if j]
    res = {"count": args.count, "size": args.size, "images": []}
    try:
        for spec in args.image:
            short, path = spec.split("=", 1)
            info = qemu_img_info(path)
            name = f"bench-{short}"
            log(f"image {name}: {path} ({info['format']}, virtual {info['virtual-size'] >> 20} MiB, "
                f"{info.get('actual-size', 0) >> 20} MiB allocated); importing")
            img, t_import = apply_image(args, name, path)
            cached = os.path.join(images_dir, "img-" + img["metadata"]["uid"])
            if not os.path.exists(cached):
                raise RuntimeError(f"cached image {cached} not found (image status {json.dumps(img['status'])})")
            cinfo = qemu_img_info(cached)
            log(f"image {name}: Ready after {t_import:.2f}s, cached as {cached} ({cinfo['format']})")
            ir = {"short": short, "name": name, "file": path, "format": info["format"],
                  "virtual_bytes": info["virtual-size"], "file_alloc_bytes": info.get("actual-size", 0),
                  "cached_format": cinfo["format"], "import_s": t_import, "stratus": [], "baseline": []}
            res["images"].append(ir)
            for fmt in methods:
                if fmt == "raw" and args.warmup:
                    ir["warmup_s"] = warmup(args, cached, cinfo["format"])
                ir["stratus"].append(stratus_phase(args, short, name, fmt, pool_dir))
                for j in jobs_list:
                    ir["baseline"].append(baseline_phase(args, short, cached, cinfo["format"], cinfo["virtual-size"],
                                                         fmt, j))
            ctl(args, "delete", "image", name, "--wait", "--timeout", "60s", timeout=90)
    finally:
        res["elapsed_s"] = time.monotonic() - T_START
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    print_tables(res)


def print_tables(res):
    def ms(s, k="p50"):
        return "-" if not s else f"{s[k] * 1000:,.0f}"

    def pp(s):
        return "-" if not s else f"{ms(s, 'p50')} / {ms(s, 'p99')}"

    def mib(b):
        return f"{b / 2**20:,.0f}"
    for ir in res["images"]:
        print(f"### Image `{ir['short']}`: {ir['format']}, {ir['virtual_bytes'] >> 20} MiB virtual, "
              f"{mib(ir['file_alloc_bytes'])} MiB allocated (import to Ready {ir['import_s']:.2f} s)\n")
        print(f"{res['count']} volumes of {res['size']}. Times per volume are p50 / p99 in ms; \"written\" is the "
              "volume file's mtime (the storage really done); for qemu-img, from the start of the batch.\n")
        print("| method | total s | created → Available | created → written | storage op | "
              "disk used MiB (apparent) | sync after s | delete all --wait s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in ir["stratus"]:
            label = "Stratus qcow2 (backing file)" if s["method"] == "qcow2" else "Stratus raw (full copy)"
            print(f"| {label} | {s['total_s']:.2f} | {pp(s['added_to_available'])} | {pp(s.get('added_to_stored'))} | "
                  f"{pp(s.get('creating_to_stored'))} | {mib(s['disk_alloc_bytes'])} ({mib(s['disk_apparent_bytes'])}) "
                  f"| {s['sync_after_s']:.2f} | {s['delete_wait_s']:.2f} |")
        for b in ir["baseline"]:
            label = (f"qemu-img {'create -b' if b['method'] == 'qcow2' else 'convert'} "
                     f"({'sequential' if b['jobs'] == 1 else str(b['jobs']) + ' jobs'})")
            print(f"| {label} | {b['total_s']:.2f} | - | {pp(b.get('start_to_done'))} | {pp(b['per_op'])} | "
                  f"{mib(b['disk_alloc_bytes'])} ({mib(b['disk_apparent_bytes'])}) | {b['sync_after_s']:.2f} | "
                  f"{b['delete_s']:.2f} (rm) |")
        print()
        for s in ir["stratus"]:
            print(f"- Stratus {s['method']}: apply returned after {s['apply_returned_s']:.2f} s; last volume written "
                  f"{s['last_stored_s']:.2f} s after the apply started, last Available {s['total_s']:.2f} s; "
                  f"written → Available {pp(s.get('stored_to_available'))} ms; created → bound "
                  f"{pp(s['added_to_bound'])} ms; bound → Creating {pp(s['bound_to_creating'])} ms; "
                  f"creationTimestamp → Available {pp(s['creation_timestamp_to_available'])} ms (1 s resolution); "
                  f"{s['available_by_list']}/{s['count']} Available by LIST, status.format {s['status_formats']}; "
                  f"left after delete: {s['left_objects']} objects, {s['left_files']} files; "
                  f"up to {s['max_concurrent_qemu_img']} qemu-img at once; libvirt ran: "
                  + "; ".join(f"`{k}` ({v['processes']} processes seen, each for {pp(v['seen_for'])} ms: "
                              "20 ms sampling)" for k, v in sorted(s["libvirt_qemu_img"].items())))
        if "warmup_s" in ir:
            print(f"- before Stratus raw: untimed warm-up, {res['count']} full copies written and removed "
                  f"({ir['warmup_s']:.1f} s)")
        for b in ir["baseline"]:
            print(f"- baseline {b['method']} ({b['jobs']} job(s)): `{b['command']}`")
        print()


if __name__ == "__main__":
    main()
