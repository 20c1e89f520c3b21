"""Every screen, its title and icon, and the roles that may open it (one source for all)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.access import ALL_ROLES, Role

PAGES_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Screen:
    key: str
    title: str
    icon: str
    roles: tuple[Role, ...]

    @property
    def path(self) -> Path:
        return PAGES_DIR / f"{self.key}.py"


SCREENS: tuple[Screen, ...] = (
    Screen("home", "Home", ":material/local_florist:", ALL_ROLES),
    Screen("review", "Review", ":material/rate_review:", (Role.ADMIN,)),
    Screen("corrections", "Corrections", ":material/history:", (Role.ADMIN,)),
    Screen("analytics", "Analytics", ":material/monitoring:", (Role.ADMIN, Role.MANAGER)),
    Screen("memory", "Memory", ":material/psychology:", (Role.ADMIN, Role.MANAGER)),
    Screen("training", "Training", ":material/model_training:", (Role.ADMIN, Role.MANAGER)),
    Screen("playground", "Playground", ":material/chat:", (Role.ADMIN, Role.FLORIST)),
    Screen("catalog", "Catalog", ":material/inventory_2:", (Role.ADMIN, Role.FLORIST)),
    Screen("templates", "Templates", ":material/palette:", (Role.ADMIN, Role.FLORIST)),
    Screen(
        "designs", "Designs", ":material/photo_library:", (Role.ADMIN, Role.FLORIST, Role.MANAGER)
    ),
    Screen("data", "Data", ":material/database:", (Role.ADMIN, Role.MANAGER)),
    Screen("settings", "Settings", ":material/settings:", (Role.ADMIN,)),
    Screen("account", "My account", ":material/person:", ALL_ROLES),
)


def screen(key: str) -> Screen:
    return next(s for s in SCREENS if s.key == key)
