"""Choosing the queue of a job from the site's queue table, and the account it is charged to.

A site profile's ``scheduler.queues`` lists the queues a job may go to, in order of preference,
each with the node range and wall-time limit the site publishes (ALCF's Aurora and Polaris
queue tables, OLCF's Frontier job-size bins, ...). :func:`choose_queue` picks the first
automatic queue whose limits fit the job's node count and wall time; a queue named by the user
(``--queue``) or by the profile (``scheduler.partition``) is used as given but still checked
against its row. :func:`resolve_scheduler` returns the profile's scheduler with the queue and
account filled in, so every scheduler writes them with its own directives.

A queue row without limits (the site publishes none, or they were not verified) fits any job;
the choice then says so, so the user checks ``qstat -Qf`` / ``sinfo`` before submitting.
"""

from __future__ import annotations

from dataclasses import dataclass

from bedrock_deploy.diagnostics import InputError, Problem
from bedrock_deploy.site_profile import (
    Queue,
    QueueOption,
    Scheduler,
    SiteProfile,
)

_TIME_UNITS = (86400, 3600, 60, 1)


def walltime_seconds(text: str) -> int:
    """``[D-]HH:MM[:SS]`` (the profile's format) -> seconds."""
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 2:
        parts.append(0)
    hours, minutes, seconds = parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _limits(q: Queue) -> str:
    nodes = f"{q.min_nodes}-{q.max_nodes}" if q.max_nodes else f">= {q.min_nodes}"
    time = f", at most {q.max_walltime}" if q.max_walltime else ""
    return f"{q.name} ({nodes} nodes{time})"


@dataclass(frozen=True)
class QueueChoice:
    queue: Queue
    why: str


def _fits(q: Queue, nodes: int, seconds: int) -> str | None:
    """Why ``q`` does not take the job, or None."""
    if nodes < q.min_nodes:
        return f"{q.name} takes at least {q.min_nodes} nodes"
    if q.max_nodes is not None and nodes > q.max_nodes:
        return f"{q.name} takes at most {q.max_nodes} nodes"
    if q.max_walltime is not None and seconds > walltime_seconds(q.max_walltime):
        return f"{q.name} allows at most {q.max_walltime} of wall time"
    return None


def choose_queue(site: SiteProfile, nodes: int, walltime: str, *,
                 requested: str | None = None, requested_by: str = "--queue"
                 ) -> QueueChoice | None:
    """The queue of a ``nodes``-node job of ``walltime``; None when the site has no table.

    Raises :class:`InputError` (with the table in the hint) when no queue takes the job or
    the requested one does not."""
    sched = site.scheduler
    table = sched.queues
    seconds = walltime_seconds(walltime)
    named = requested or sched.partition
    by = requested_by if requested else "scheduler.partition of the site profile"
    if not table:
        return None
    listing = "; ".join(_limits(q) for q in table)
    if named:
        rows = [q for q in table if q.name == named]
        if not rows:
            raise InputError(Problem(
                f"site {site.name!r} has no queue {named!r} ({by})",
                path=("scheduler", "partition") if not requested else (),
                file=requested_by if requested else None,
                hint=f"its queues: {listing}"))
        reasons = [why for q in rows if (why := _fits(q, nodes, seconds))]
        fitting = [q for q in rows if _fits(q, nodes, seconds) is None]
        if not fitting:
            raise InputError(Problem(
                f"queue {named!r} of site {site.name!r} does not take a {nodes}-node job of "
                f"{walltime}: {'; '.join(reasons)}", file=requested_by if requested else None,
                hint=f"choose another queue or size; the site's queues: {listing}"))
        return QueueChoice(fitting[0], f"{by}; " + _known(fitting[0]))
    refused = []
    for q in table:
        if not q.auto:
            continue
        why = _fits(q, nodes, seconds)
        if why is None:
            note = "first queue of the site's table that takes " \
                   f"{nodes} node(s) for {walltime}; " + _known(q)
            return QueueChoice(q, note)
        refused.append(why)
    why_not = "; ".join(refused) if refused else \
        "every queue of its table is marked 'auto: false' (used only when named)"
    raise InputError(Problem(
        f"no queue of site {site.name!r} takes a {nodes}-node job of {walltime}: {why_not}",
        path=("scheduler", "queues"),
        hint=f"change --nodes or the wall time, or name a queue with --queue NAME; the "
        f"site's queues: {listing}"))


def _known(q: Queue) -> str:
    if q.max_nodes is None or q.max_walltime is None:
        return (f"the profile records no {'node' if q.max_nodes is None else 'wall-time'} "
                f"limit for {q.name}: check it with qstat -Qf / sinfo / sacctmgr show qos "
                "(or bedrock-deploy probe --site)")
    return _limits(q)


@dataclass(frozen=True)
class ResolvedScheduler:
    scheduler: Scheduler  # the profile's scheduler, queue and account filled in
    choices: list[tuple[str, str, str]]  # (what, value, why) for the manifest


def resolve_scheduler(site: SiteProfile, nodes: int, *, account: str | None = None,
                      queue: str | None = None) -> ResolvedScheduler:
    """The scheduler section a job of ``nodes`` nodes is written with: account from
    ``--account`` or the profile (refused when the site requires one and none is given), the
    queue from the table (:func:`choose_queue`)."""
    sched = site.scheduler
    choices: list[tuple[str, str, str]] = []
    if sched.type == "none":
        return ResolvedScheduler(sched, choices)
    acct = account or sched.account
    if acct:
        choices.append(("account", acct, "--account" if account else
                        "scheduler.account of the site profile"))
    elif sched.account_required:
        said = f" ({sched.account_error})" if sched.account_error else ""
        raise InputError(Problem(
            f"site {site.name!r} requires an account (project) to charge: its scheduler "
            f"rejects a job without one{said}, and neither --account nor scheduler.account "
            "gives one", file="--account",
            hint=f"pass --account PROJECT (the allocation you charge), or set "
            f"scheduler.account in a profile that extends {site.name}"))
    chosen = choose_queue(site, nodes, sched.time, requested=queue)
    update: dict[str, object] = {"account": acct}
    if chosen is not None:
        q = chosen.queue
        if q.option is QueueOption.qos:
            update["directives"] = [*sched.directives, f"--qos={q.name}"]
            update["partition"] = None
            choices.append(("qos", q.name, chosen.why))
        else:
            update["partition"] = q.name
            choices.append(("queue", q.name, chosen.why))
    elif queue:
        update["partition"] = queue
        choices.append(("queue", queue, "--queue (the site profile has no queue table)"))
    return ResolvedScheduler(sched.model_copy(update=update), choices)
