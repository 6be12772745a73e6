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

    def apply(self, doc: Any) -> Any:
        """``doc`` with the rules applied to every key, in nested documents and lists too. The
        document is changed in place (the API applies it to documents it has just read) and
        returned."""
        names = self.names
        wanted = names.keys()

        # Only containers are walked and only the keys the policy names are touched: a page of
        # 100 series documents with their metadata takes well under a millisecond.
        def walk(node: Any) -> None:
            if type(node) is dict:
                for key in wanted & node.keys():
                    action = names[key]
                    value = node[key]
                    if action == "drop":
                        del node[key]
                    elif action == "hash" and value is not None:
                        node[key] = [self.pseudonym(v) for v in value] if type(value) is list else self.pseudonym(value)
                values = node.values()
            elif type(node) is list:
                values = node
            else:
                return
            for value in values:
                if type(value) is dict or type(value) is list:
                    walk(value)

        walk(doc)
        return doc
