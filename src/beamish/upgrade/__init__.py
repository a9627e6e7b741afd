"""Hot code upgrades: move a running node onto new code without stopping a process.

    from beamish.upgrade import upgrade

    report = await upgrade(["myapp.counter"], extra={"since": 0})

Every live process whose code comes from the modules is held between two messages, moved
to the new code, given ``code_change(old_vsn, state, extra)`` to migrate its state, and
released, in supervision-tree order; if anything fails, nothing changes. ``beamish
upgrade NODE`` does it from the shell, ``beamish run --reload`` on every save. See the
hot code upgrades guide for what can and cannot be swapped.
"""

from beamish._public import publish
from beamish.upgrade._handler import (
    Upgrade,
    UpgradeReport,
    changed_modules,
    load_plan,
    upgrade,
    watch_from,
)
from beamish.upgrade._loader import UpgradeError

__all__ = [
    "Upgrade", "UpgradeError", "UpgradeReport", "changed_modules", "load_plan", "upgrade",
    "watch_from",
]

publish(globals(), __all__, __name__)
