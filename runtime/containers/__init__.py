"""Containers: OCI bundles with secure defaults, run by runc/crun under conmon on overlayfs.

One module per job and per external boundary:

    options.py     what a user asks for (`run` flags) and their strict parsers
    record.py      the per-container JSON record on disk and the store that finds them
    spec.py        the OCI runtime config (config.json) with Docker-like secure defaults
    users.py       resolving `--user` against the image's /etc/passwd and /etc/group
    rootfs.py      overlayfs mount/umount (mount(2) through ctypes)
    ociruntime.py  the OCI runtime binary (probe crun vs runc, state/start/kill/delete/exec)
    monitor.py     conmon: launching it and reading its pid, exit and oom files
    network.py     the network seam (loopback-only until the networking issue plugs in)
    manager.py     ContainerManager: the operations (create, start, stop, rm, …)
    logs.py        reading conmon's k8s-file logs
    stats.py       cgroup and network statistics
    inspect.py     docker-inspect-shaped JSON
    health.py      one health-check probe and Docker's health state machine
"""
