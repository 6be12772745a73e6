"""The PHI policy applied at the API's edge: per DICOM keyword, ``keep``, ``hash`` or ``drop`` for
keys without the admin role (``phi-policy.toml`` is the default and documents the format)."""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from quire_assets.dicom.records import snake_case

DEFAULT_POLICY = Path(__file__).with_name("phi-policy.toml")
ACTIONS = ("keep", "hash", "drop")


class PolicyError(ValueError):
    """A policy file Quire cannot apply."""


@dataclass(frozen=True)
class PhiPolicy:
    rules: dict[str, str]  # DICOM keyword → action
    salt: bytes

    @classmethod
    def load(cls, path: str | Path | None, salt: bytes) -> PhiPolicy:
        path = Path(path) if path else DEFAULT_POLICY
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError(f"cannot read the PHI policy {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: not TOML: {exc}") from exc
        rules = data.get("fields")
        if not isinstance(rules, dict):
            raise PolicyError(f"{path}: needs a [fields] table of KEYWORD = \"keep\" | \"hash\" | \"drop\"")
        for field, action in rules.items():
            if action not in ACTIONS:
                raise PolicyError(f"{path}: {field} = {action!r}: use one of {', '.join(ACTIONS)}")
        return cls(rules=dict(rules), salt=salt)

    @cached_property
    def names(self) -> dict[str, str]:
        """Every document key a rule covers (the keyword and its snake_case copy) → action."""
        return {**{snake_case(k): a for k, a in self.rules.items()}, **self.rules}

    def hidden(self, path: str) -> str | None:
        """The action (``hash`` or ``drop``) hiding some part of a dotted field path, if any."""
        names = self.names
        for part in path.split("."):
            if names.get(part, "keep") != "keep":
                return names[part]
        return None

    def pseudonym(self, value: Any) -> str:
        return hmac.new(self.salt, str(value).encode(), hashlib.sha256).hexdigest()[:16]

    def apply(self, doc: Any, names: dict[str, str] | None = None) -> Any:
        """A copy of ``doc`` with the rules applied to every key, in nested documents and lists too."""
        names = self.names if names is None else names
        if isinstance(doc, list):
            return [self.apply(v, names) for v in doc]
        if not isinstance(doc, dict):
            return doc
        out = {}
        for key, value in doc.items():
            action = names.get(key, "keep")
            if action == "drop":
                continue
            if action == "hash" and value is not None:
                out[key] = [self.pseudonym(v) for v in value] if isinstance(value, list) else self.pseudonym(value)
            else:
                out[key] = self.apply(value, names)
        return out
