"""Is a site profile's knowledge still fresh? Facts about a machine decay (queues change,
programming environments are removed, modules are renamed), so each shipped profile records in
``verified`` when its decaying facts were last checked and against what. ``generate`` warns when
that is older than :data:`MAX_AGE_DAYS`, or missing from a profile for a batch system, and
points to ``bedrock-deploy probe --site``, which collects what decays on the machine itself.
"""

from __future__ import annotations

import datetime

from bedrock_deploy.site_profile import SiteProfile

MAX_AGE_DAYS = 183  # six months


def freshness_warning(site: SiteProfile, today: datetime.date | None = None) -> str | None:
    """A warning when the profile's facts are older than six months (or never recorded)."""
    today = today or datetime.date.today()
    probe = (f"run 'bedrock-deploy probe --site {site.name} --diff' on a login node of the "
             "machine and review what changed")
    if site.verified is None:
        if site.scheduler.type == "none":
            return None  # a single host: nothing about a machine's queues or modules to decay
        return (f"site profile {site.name!r} does not record when its facts (queues, modules, "
                f"versions) were verified: they may be out of date; {probe}")
    age = (today - site.verified.day).days
    if age <= MAX_AGE_DAYS:
        return None
    return (f"site profile {site.name!r} was last verified on {site.verified.date} "
            f"({age} days ago, against {', '.join(site.verified.against[:2])}"
            f"{', ...' if len(site.verified.against) > 2 else ''}): queues, modules and "
            f"versions may have changed since; {probe}")
