"""The research view: the catalog as researchers may see it, written with the PHI policy applied.

Admins read the identifiable catalog. Researchers read a second catalog of the same backend beside
it (a SQLite file, a MongoDB database) whose documents were written through ``PhiPolicy.apply``:
hashed values are the pseudonyms, hidden values are absent, file locations are gone. So a filter, a
sort, a count, a facet, a join of ``ask``, a statistic or an error message computed for a researcher
can only compute on what the view holds, whatever the route (the boundary is a property of the
data, not of each route's checks).

The view is named by the policy's fingerprint (its rules and the deployment's secret): another
policy or secret is another view, built whole before it is read. It follows the catalog by the
catalog's write log (``changes_after``): only the documents whose keys were written are copied again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from quire_assets.catalog.base import KEYS, LEVELS, Catalog, CatalogError
from quire_assets.catalog.columnar import FollowedCopy, Unsupported
from quire_assets.catalog.policy import PhiPolicy
from quire_assets.util import chunks

PREFIX = "research-"
STATE = "research_view"
CHANGE_BATCH = 20_000
PAGE = 2000
# Writes kept in the catalog's log once the view has taken them, for the columnar copies of the API's
# processes that follow the log behind the view (``columnar.FollowedCopy``); one further behind is
# built again whole.
RETAINED_CHANGES = 200_000


class PolicyRefusal(CatalogError):
    """A researcher asked for something the PHI policy keeps from them (the API answers 403)."""


def view_name(policy: PhiPolicy) -> str:
    return f"{PREFIX}{policy.fingerprint}"


def shown_levels(policy: PhiPolicy) -> list[str]:
    """The levels a researcher sees: those whose key the policy does not drop."""
    return [level for level in LEVELS if policy.hidden(KEYS[level]) != "drop"]


def view_key(policy: PhiPolicy, level: str, key: Any) -> Any:
    """The key a document of ``level`` has in the view (a pseudonym where the policy hashes it)."""
    return policy.apply({KEYS[level]: key}).get(KEYS[level])


def open_view(catalog: Catalog, policy: PhiPolicy) -> Catalog:
    view = catalog.sibling(view_name(policy))
    view.logs_changes = False
    return view


def _copy(catalog: Catalog, view: Catalog, policy: PhiPolicy, level: str, keys: Sequence[Any]) -> None:
    """Make the view hold what the catalog holds now for these keys of ``level``."""
    key = KEYS[level]
    for chunk in chunks(list(keys)):
        docs = catalog.find(level, {key: {"$in": list(chunk)}})
        view.upsert(level, [policy.apply(d) for d in docs])
        gone = set(chunk) - {d[key] for d in docs}
        if gone:
            view.delete(level, {key: {"$in": sorted({view_key(policy, level, k) for k in gone})}})


def rebuild(catalog: Catalog, view: Catalog, policy: PhiPolicy, progress: Callable[[str], None] | None = None) -> int:
    """Write the view whole from the catalog, in one transaction of the view (readers of a SQLite
    view see it before or after, never half written); returns the documents written."""
    head = catalog.last_change()  # every write after this is in the log the next sync reads
    written = 0
    with view.transaction():
        view.set_meta(STATE, {"fingerprint": policy.fingerprint, "seq": head, "complete": False})
        for level in LEVELS:
            view.delete(level, {})
        for level in shown_levels(policy):
            key, last = KEYS[level], None
            while True:
                docs = catalog.documents(level, last, PAGE)
                if not docs:
                    break
                written += view.upsert(level, [policy.apply(d) for d in docs])
                last = docs[-1][key]
            if progress:
                progress(f"research view: {level} written")
        view.set_meta(STATE, {"fingerprint": policy.fingerprint, "seq": head, "complete": True})
    catalog.prune_changes(head)
    return written


def sync(catalog: Catalog, view: Catalog, policy: PhiPolicy, progress: Callable[[str], None] | None = None) -> int:
    """Bring the view up to the catalog: whole when it was never completed, else by the keys the
    catalog's write log names since the view's last sync. Returns the view's position in the log."""
    state = view.get_meta(STATE) or {}
    if state.get("fingerprint") != policy.fingerprint or not state.get("complete"):
        rebuild(catalog, view, policy, progress)
        return (view.get_meta(STATE) or {})["seq"]
    seq = state["seq"]
    shown = set(shown_levels(policy))
    moved = False
    while changes := catalog.changes_after(seq, CHANGE_BATCH):
        by_level: dict[str, set] = {}
        for _, collection, key in changes:
            by_level.setdefault(collection, set()).add(key)
        with view.transaction():  # the documents and the position move together
            for level, keys in by_level.items():
                if level in shown:
                    _copy(catalog, view, policy, level, sorted(keys))
            seq = changes[-1][0]
            view.set_meta(STATE, {**state, "seq": seq})
        moved = True
    if moved:
        catalog.prune_changes(seq - RETAINED_CHANGES)
    return seq


def drop_other_views(catalog: Catalog, policy: PhiPolicy) -> list[str]:
    """Remove the views of other policies or secrets (a policy changed): they would only grow stale."""
    keep = view_name(policy)
    dropped = [name for name in catalog.siblings(PREFIX) if name != keep]
    for name in dropped:
        catalog.drop_sibling(name)
    return dropped


class ResearchCatalog(Catalog):
    """What a researcher's key reads through: the research view for patients, studies, series and
    instances; researchers, collections and jobs from the catalog (their own records); errors, which
    name files, not at all. Researchers never write the catalog's levels."""

    def __init__(self, catalog: Catalog, view: Catalog, policy: PhiPolicy, columns: FollowedCopy | None = None):
        self.catalog, self.view, self.policy = catalog, view, policy
        # Counts and facet counts from the view's columnar copy where it answers them (at the view's
        # position, on fields that are columns); the view itself otherwise.
        self.columns = columns
        self.uri = "the research view"  # not the server's path

    def tagged_studies(self, collection_id: str) -> list[str]:
        # Tags are per researcher, so the view holds none: they are read from the catalog, for a
        # collection the caller owns, as the keys the view knows those studies by.
        return [view_key(self.policy, "studies", uid) for uid in self.catalog.tagged_studies(collection_id)]

    def _route(self, collection: str, writing: bool = False) -> Catalog:
        if collection == "errors":
            raise PolicyRefusal("errors name the files they are about: they are for admin keys")
        if collection in LEVELS:
            if writing:
                raise PolicyRefusal(f"a researcher's key does not write {collection}")
            return self.view
        return self.catalog

    def _from_copy(self, collection: str, question: Callable[[FollowedCopy], Any]) -> Any:
        """The columnar copy's answer for a level the view holds, or ``Unsupported`` (the view answers)."""
        if self.columns is None or self._route(collection) is not self.view:
            raise Unsupported(collection)
        return question(self.columns)

    def find(self, collection, flt=None, projection=None, sort=None, limit=0, skip=0) -> list[dict]:
        store = self._route(collection)
        key = KEYS.get(collection)
        keyed = not projection or (isinstance(projection, dict | list) and key in projection
                                   and (isinstance(projection, list) or projection[key]))
        if limit and keyed:
            # A sorted page: its keys from the copy (no sort of the whole level), its documents from the view.
            try:
                keys = self._from_copy(collection, lambda copy: copy.ordered_keys(collection, flt, sort, limit, skip))
            except Unsupported:
                pass
            else:
                found = {d[key]: d for d in store.find(collection, {key: {"$in": keys}}, projection)} if keys else {}
                return [found[k] for k in keys if k in found]
        return store.find(collection, flt, projection, sort, limit, skip)

    def count(self, collection: str, flt: dict | None = None) -> int:
        try:
            return self._from_copy(collection, lambda copy: copy.count(collection, flt))
        except Unsupported:
            return self._route(collection).count(collection, flt)

    def value_counts(self, collection: str, field: str, flt: dict | None = None) -> list[tuple[Any, int]]:
        try:
            return self._from_copy(collection, lambda copy: copy.value_counts(collection, field, flt))
        except Unsupported:
            return self._route(collection).value_counts(collection, field, flt)

    def keys(self, collection: str, flt: dict | None = None) -> list:
        return self._route(collection).keys(collection, flt)

    def upsert(self, collection: str, docs: Any) -> int:
        return self._route(collection, writing=True).upsert(collection, docs)

    def delete(self, collection: str, flt: dict) -> int:
        return self._route(collection, writing=True).delete(collection, flt)

    def replace_partitions(self, *args: Any, **kwargs: Any) -> dict[str, int]:
        raise PolicyRefusal("a researcher's key does not write the catalog")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.catalog.transaction():
            yield

    # The backend primitives below are reached only through the routed methods above.
    def _upsert(self, collection: str, docs: Sequence[dict]) -> None:
        raise NotImplementedError

    def _delete(self, collection: str, flt: dict) -> int:
        raise NotImplementedError

    def _log_changes(self, collection: str, keys: Sequence[Any]) -> None:
        raise NotImplementedError

    def changes_after(self, seq: int, limit: int) -> list[tuple[int, str, Any]]:
        raise NotImplementedError

    def last_change(self) -> int:
        return self.catalog.last_change()  # the view changes only when the catalog does

    def prune_changes(self, upto: int) -> None:
        raise NotImplementedError

    def get_meta(self, name: str) -> dict | None:
        raise NotImplementedError

    def set_meta(self, name: str, doc: dict) -> None:
        raise NotImplementedError

    def sibling(self, name: str) -> Catalog:
        raise NotImplementedError

    def drop_sibling(self, name: str) -> None:
        raise NotImplementedError

    def siblings(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        """The catalogs are their owners' to close."""
