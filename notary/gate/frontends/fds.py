"""The open-file budget of a pooled gate server (notary.gate.frontends.pool): every waiting or parked
connection is an open descriptor, and a server out of descriptors cannot accept, so the kernel's backlog then
fills with connections nobody will answer in time. `refusal` counts the busy path's threads and queue."""

from __future__ import annotations

import contextlib
import resource

from notary.errors import UsageError

FD_HEADROOM = 64  # the listening socket, the ledger, log files, Docker API and registry connections
MAX_PARKED = 1024  # idle kept-alive connections parked without a worker (notary.gate.frontends.parking)


def park_room(workers: int, queue_size: int, refusal: int) -> int:
    """How many idle connections may be parked within the open-file limit left after the pool's own."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_PARKED
    return max(0, min(MAX_PARKED, soft - workers - queue_size - refusal - FD_HEADROOM))


def fit_fd_limit(workers: int, queue_size: int, refusal: int) -> int:
    """The queue size the open-file limit allows (raising the soft limit up to the hard one if needed).

    Every waiting connection is an open descriptor; a server out of descriptors cannot accept, and the
    kernel's backlog then fills with connections nobody will answer in time."""
    need = workers + queue_size + refusal + FD_HEADROOM + MAX_PARKED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY:
        return queue_size
    room = soft - workers - refusal - FD_HEADROOM
    if room < 1:
        raise UsageError(f"the open-file limit ({soft}) is too low for {workers} workers",
                         hint="raise LimitNOFILE or use fewer --workers")
    return min(queue_size, room)
