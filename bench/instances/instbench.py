#!/usr/bin/env python3
"""Instance benchmarks for Stratus (standard library only); driven by bench/instances/run.sh.

  instbench.py many --server URL --ctl STRATUSCTL --count N --workdir DIR [--timeout S] --json OUT
      test:///default: applies an InstanceType and two tiny Images, waits until the Images are Ready, then applies
      N Instances in one `stratusctl apply -f` (one multi-document file) while a watch on instances records, per
      instance, when its ADDED event arrived and when Scheduled=True and Ready=True first appeared. Then deletes
      them all with `stratusctl delete instances --all --wait` and times that too.

  instbench.py tcg --server URL --ctl STRATUSCTL --guest-dir DIR --workdir DIR --prefix P [--runs N] --json OUT
      qemu:///system (TCG): alternates Stratus runs (apply -> STRATUS-GUEST-BOOTED in `stratusctl logs`; run 1
      applies the Images too, so it includes importing them) with `virsh create` runs of an equivalent transient
      domain (create -> the same marker in its serial log file). Both are polled on a fixed 100 ms tick.
"""
import argparse
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

MARKER = "STRATUS-GUEST-BOOTED"
NS_PATH = "/apis/stratus.io/v1/namespaces/default"


def log(msg):
    print(f"instbench: {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def ctl(args, server, *rest, stdin=None, timeout=120, check=True):
    r = subprocess.run([args.ctl, "--server", server, *rest], input=stdin, capture_output=True, text=True,
                       timeout=timeout)
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


def cond_true(obj, ctype):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return True
    return False


def wait_images_ready(server, names, timeout):
    deadline = time.monotonic() + timeout
    while True:
        items = get_json(server, NS_PATH + "/images").get("items", [])
        ready = {i["metadata"]["name"] for i in items if (i.get("status") or {}).get("phase") == "Ready"}
        if all(n in ready for n in names):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"images not Ready after {timeout}s: {sorted(set(names) - ready)}")
        time.sleep(0.1)


def image_docs(kernel_path, initrd_path, kernel="bench-kernel", initrd="bench-initrd"):
    return (f"apiVersion: stratus.io/v1\nkind: Image\nmetadata: {{name: {kernel}}}\n"
            f"spec: {{type: kernel, source: {{url: 'file://{kernel_path}'}}}}\n---\n"
            f"apiVersion: stratus.io/v1\nkind: Image\nmetadata: {{name: {initrd}}}\n"
            f"spec: {{type: ramdisk, source: {{url: 'file://{initrd_path}'}}}}\n")


INSTANCE_TYPE = "apiVersion: stratus.io/v1\nkind: InstanceType\nmetadata: {name: m1.small}\nspec: {vcpus: 1, memoryMiB: 256}\n"


def instance_doc(name, kernel="bench-kernel", initrd="bench-initrd", kernel_args=None):
    extra = f", kernelArgs: '{kernel_args}'" if kernel_args else ""
    return (f"apiVersion: stratus.io/v1\nkind: Instance\nmetadata: {{name: {name}}}\n"
            f"spec: {{instanceType: m1.small, kernelImage: {kernel}, ramdiskImage: {initrd}{extra}}}\n")


# ------------------------------------------------------------------------------------------------- many ----------

class Watcher(threading.Thread):
    """Streams instance watch events and records first-seen monotonic times per instance."""

    def __init__(self, server, count):
        super().__init__(daemon=True)
        u = urllib.parse.urlparse(server)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        self.conn.request("GET", NS_PATH + "/instances?watch=1", headers=auth_headers())
        self.resp = self.conn.getresponse()  # headers back: the watch is registered before we apply
        if self.resp.status != 200:
            raise RuntimeError(f"watch: HTTP {self.resp.status}")
        self.count = count
        self.added, self.scheduled, self.ready = {}, {}, {}
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
                now = time.monotonic()
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                self.events += 1
                obj = ev.get("object") or {}
                name = (obj.get("metadata") or {}).get("name")
                if not name or ev.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                self.added.setdefault(name, now)  # ADDED normally; MODIFIED only if ADDED were ever missed
                if name not in self.scheduled and (obj.get("spec") or {}).get("nodeName"):  # bound by placement
                    self.scheduled[name] = now
                if name not in self.ready and cond_true(obj, "Ready"):
                    self.ready[name] = now
                    if len(self.ready) >= self.count:
                        self.done.set()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = repr(e)
        finally:
            self.done.set()


def summary(values):
    return {"p50": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99), "max": max(values),
            "mean": statistics.fmean(values)}


def cmd_many(args):
    os.makedirs(args.workdir, exist_ok=True)
    kpath, ipath = os.path.join(args.workdir, "kernel.bin"), os.path.join(args.workdir, "initrd.bin")
    for p in (kpath, ipath):
        with open(p, "wb") as f:
            f.write(os.urandom(4096))
    ctl(args, args.server, "apply", "-f", "-", stdin=INSTANCE_TYPE + "---\n" + image_docs(kpath, ipath))
    wait_images_ready(args.server, ["bench-kernel", "bench-initrd"], 60)

    names = [f"bench-{i:04d}" for i in range(args.count)]
    manifest = os.path.join(args.workdir, "instances.yaml")
    with open(manifest, "w") as f:
        f.write("---\n".join(instance_doc(n) for n in names))

    w = Watcher(args.server, args.count)
    w.start()
    log(f"applying {args.count} instances in one `stratusctl apply -f`")
    t0 = time.monotonic()
    ctl(args, args.server, "apply", "-f", manifest, timeout=args.timeout)
    t_applied = time.monotonic()
    ok = w.done.wait(max(1.0, args.timeout - (t_applied - t0)))
    t_end = time.monotonic()
    if not ok or len(w.ready) < args.count:
        raise RuntimeError(f"only {len(w.ready)}/{args.count} Ready after {t_end - t0:.1f}s "
                           f"(watch error: {w.error})")
    # Cross-check the watch against a LIST.
    items = get_json(args.server, NS_PATH + "/instances").get("items", [])
    running = sum(1 for i in items if (i.get("status") or {}).get("phase") == "Running" and cond_true(i, "Ready"))

    per_added = [w.ready[n] - w.added[n] for n in names]
    per_apply = [w.ready[n] - t0 for n in names]
    to_sched = [w.scheduled[n] - w.added[n] for n in names if n in w.scheduled]
    sched_to_ready = [w.ready[n] - w.scheduled[n] for n in names if n in w.scheduled]
    total = max(w.ready.values()) - t0

    log(f"all {args.count} Ready after {total:.3f}s; deleting them (--all --wait)")
    td = time.monotonic()
    ctl(args, args.server, "delete", "instances", "--all", "--wait", "--timeout", f"{int(args.timeout)}s",
        timeout=args.timeout + 30)
    t_deleted = time.monotonic() - td
    left = len(get_json(args.server, NS_PATH + "/instances").get("items", []))

    res = {
        "count": args.count,
        "apply_seconds": t_applied - t0,
        "total_seconds": total,
        "instances_per_second": args.count / total,
        "running_in_list": running,
        "watch_events": w.events,
        "added_to_ready": summary(per_added),
        "apply_to_ready": summary(per_apply),
        "added_to_bound": summary(to_sched) if to_sched else None,
        "bound_to_ready": summary(sched_to_ready) if sched_to_ready else None,
        "delete_all_wait_seconds": t_deleted,
        "left_after_delete": left,
    }
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)

    def row(label, s):
        return f"| {label} | {s['p50']*1000:.0f} | {s['p90']*1000:.0f} | {s['p99']*1000:.0f} | {s['max']*1000:.0f} |"
    print(f"### {args.count} Instances on test:///default\n")
    print(f"- `stratusctl apply -f` of {args.count} documents returned after {res['apply_seconds']:.2f} s")
    print(f"- all {args.count} Ready (Running) after **{total:.2f} s** ({res['instances_per_second']:.1f} instances/s); "
          f"LIST confirms {running} Running+Ready")
    print(f"- `stratusctl delete instances --all --wait`: {t_deleted:.2f} s, {left} left\n")
    print("| per instance (ms) | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|")
    print(row("created (ADDED) -> Ready", res["added_to_ready"]))
    print(row("apply started -> Ready", res["apply_to_ready"]))
    if to_sched:
        print(row("created -> bound (spec.nodeName set)", res["added_to_bound"]))
        print(row("bound -> Ready", res["bound_to_ready"]))
    print()


# -------------------------------------------------------------------------------------------------- tcg ----------

class Tick:
    """Fixed 100 ms polling cadence measured from the start, whatever each poll costs."""

    def __init__(self, t0, period=0.1):
        self.next, self.period = t0 + period, period

    def sleep(self):
        now = time.monotonic()
        while self.next <= now:
            self.next += self.period
        time.sleep(self.next - now)


UPTIME_RE = re.compile(MARKER + r".*uptime=([0-9.]+)s")


def guest_uptime(text):
    m = UPTIME_RE.search(text)
    return float(m.group(1)) if m else None


def stratus_run(args, name, with_images, kpath, ipath):
    doc = ""
    if with_images:
        doc = INSTANCE_TYPE + "---\n" + image_docs(kpath, ipath, "demo-kernel", "demo-initrd") + "---\n"
    doc += instance_doc(name, "demo-kernel", "demo-initrd", "stratus.marker=bench")
    t0 = time.monotonic()
    ctl(args, args.server, "apply", "-f", "-", stdin=doc)
    tick, polls = Tick(t0), 0
    while True:
        r = ctl(args, args.server, "logs", f"instance/{name}", check=False, timeout=30)
        polls += 1
        if MARKER in r.stdout:
            t = time.monotonic() - t0
            break
        if time.monotonic() - t0 > args.boot_timeout:
            raise RuntimeError(f"no boot marker from instance {name} after {args.boot_timeout}s")
        tick.sleep()
    up = guest_uptime(r.stdout)
    td = time.monotonic()
    ctl(args, args.server, "delete", "instance", name, "--wait", "--timeout", "60s", timeout=90)
    return {"seconds": t, "guest_uptime": up, "polls": polls, "delete_wait_seconds": time.monotonic() - td}


def virsh(*a, check=True):
    r = subprocess.run(["virsh", "-c", "qemu:///system", *a], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(a)}: {r.stdout}{r.stderr}")
    return r


def domain_xml(name, kernel, initrd, console):
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 stratus.marker=bench</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='{console}' append='on'/><target port='0'/></serial>
    <console type='file'><source path='{console}' append='on'/><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def virsh_run(args, name, kpath, ipath, vdir):
    console = os.path.join(vdir, f"{name}.console.log")
    xml = os.path.join(vdir, f"{name}.xml")
    with open(xml, "w") as f:
        f.write(domain_xml(name, kpath, ipath, console))
    t0 = time.monotonic()
    try:
        virsh("create", xml)
        tick, polls, text = Tick(t0), 0, ""
        while True:
            polls += 1
            try:
                with open(console, errors="replace") as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            if MARKER in text:
                t = time.monotonic() - t0
                break
            if time.monotonic() - t0 > args.boot_timeout:
                raise RuntimeError(f"no boot marker from virsh domain {name} after {args.boot_timeout}s")
            tick.sleep()
    finally:
        virsh("destroy", name, check=False)
        virsh("undefine", name, check=False)  # transient: normally nothing left to undefine
    return {"seconds": t, "guest_uptime": guest_uptime(text), "polls": polls}


def cmd_tcg(args):
    # Both sides boot the same bytes: Stratus imports the guest files into its pool; virsh boots copies in workdir
    # (libvirt relabels kernel/initrd while a domain runs, so the shared originals are not handed to it).
    vdir = os.path.join(args.workdir, "virsh")
    os.makedirs(vdir, exist_ok=True)
    os.chmod(vdir, 0o755)
    src_k, src_i = os.path.join(args.guest_dir, "vmlinuz"), os.path.join(args.guest_dir, "initrd.img")
    vk, vi = os.path.join(vdir, "vmlinuz"), os.path.join(vdir, "initrd.img")
    for s, d in ((src_k, vk), (src_i, vi)):
        with open(s, "rb") as fi, open(d, "wb") as fo:
            fo.write(fi.read())
        os.chmod(d, 0o644)

    stratus, vir = [], []
    for i in range(1, args.runs + 1):
        name = f"{args.prefix}-{i}"
        log(f"stratus run {i}/{args.runs}{' (imports the images)' if i == 1 else ''}: instance {name}")
        r = stratus_run(args, name, i == 1, src_k, src_i)
        log(f"  apply -> marker {r['seconds']:.3f}s (guest uptime {r['guest_uptime']}s)")
        stratus.append(r)
        dom = f"{args.prefix}-virsh-{i}"
        log(f"virsh run {i}/{args.runs}: domain {dom}")
        v = virsh_run(args, dom, vk, vi, vdir)
        log(f"  create -> marker {v['seconds']:.3f}s (guest uptime {v['guest_uptime']}s)")
        vir.append(v)

    cold = stratus[0]
    warm = stratus[1:] or stratus
    warm_med = statistics.median(r["seconds"] for r in warm)
    vir_med = statistics.median(r["seconds"] for r in vir)

    def host_side(r):  # wall time before the guest kernel's clock started
        return r["seconds"] - r["guest_uptime"] if r["guest_uptime"] is not None else None
    res = {"runs": args.runs, "stratus": stratus, "virsh": vir,
           "stratus_cold_seconds": cold["seconds"], "stratus_warm_median_seconds": warm_med,
           "virsh_median_seconds": vir_med, "ratio_warm": warm_med / vir_med, "ratio_cold": cold["seconds"] / vir_med}
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)

    def fmt(v):
        return "-" if v is None else f"{v:.2f}"
    print("### Apply -> boot marker on qemu:///system (TCG)\n")
    print("| run | Stratus apply -> marker (s) | guest uptime at marker | host side | "
          "virsh create -> marker (s) | guest uptime at marker | host side |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i, (s, v) in enumerate(zip(stratus, vir), 1):
        label = f"{i}{' (images imported)' if i == 1 else ''}"
        print(f"| {label} | {s['seconds']:.2f} | {fmt(s['guest_uptime'])} | {fmt(host_side(s))} | "
              f"{v['seconds']:.2f} | {fmt(v['guest_uptime'])} | {fmt(host_side(v))} |")
    print()
    print(f"- Stratus, images cached (runs 2..{args.runs}), median: **{warm_med:.2f} s**; "
          f"first run (importing the images): {cold['seconds']:.2f} s")
    print(f"- `virsh create`, median: **{vir_med:.2f} s**")
    print(f"- ratio Stratus / virsh: **{res['ratio_warm']:.2f}** with images cached, "
          f"{res['ratio_cold']:.2f} for the first run")
    print(f"- `stratusctl delete instance --wait` per run: "
          + ", ".join(f"{s['delete_wait_seconds']:.2f}" for s in stratus) + " s\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("many", "tcg"):
        p = sub.add_parser(name)
        p.add_argument("--server", required=True)
        p.add_argument("--ctl", required=True)
        p.add_argument("--workdir", required=True)
        p.add_argument("--json", required=True)
    m = sub.choices["many"]
    m.add_argument("--count", type=int, default=200)
    m.add_argument("--timeout", type=float, default=180)
    t = sub.choices["tcg"]
    t.add_argument("--guest-dir", required=True)
    t.add_argument("--prefix", required=True)
    t.add_argument("--runs", type=int, default=3)
    t.add_argument("--boot-timeout", type=float, default=90)
    args = ap.parse_args()
    (cmd_many if args.cmd == "many" else cmd_tcg)(args)


if __name__ == "__main__":
    main()
