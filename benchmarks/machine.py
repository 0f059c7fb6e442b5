"""The machine a benchmark ran on, for its report: CPU, RAM, kernel, Python, helm, kubectl
and the cluster's Kubernetes version."""

import contextlib
import os
import platform
import re
import subprocess
from pathlib import Path

from benchmarks.cluster import helm_bin, kube, kubectl_bin


def _first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine():
    """CPU model and count, RAM, kernel, Python, helm, kubectl and the cluster's version."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError, AttributeError):
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = round(kib / 1024 / 1024, 1)
    kubectl = _first_line([kubectl_bin(), "version", "--client"]).replace("Client Version: ", "")
    server = "?"
    with contextlib.suppress(Exception):
        core, api = kube()
        from kubernetes import client

        server = client.VersionApi(api).get_code().git_version
    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "ram_gib": ram,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "helm": _first_line([helm_bin(), "version", "--short"]),
        "kubectl": kubectl,
        "kubernetes": server,
    }
