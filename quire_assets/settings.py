"""Every setting Quire reads from the environment, in one typed object read once at an edge.

The edges are the ``quire`` command, the API's app factory and the Dagster definitions: each calls
``Settings.from_environ()`` once and passes what it read down as arguments. This is the only module
that touches ``os.environ``: the rest of the package, the Dagster-free core above all, takes its
configuration as arguments. ``docs/configuration.md`` is this table, written by
``python -m quire_assets.settings`` (a test keeps the two the same).

Secrets (a PACS password, the PHI salt) are held here so that an edge knows whether they are set;
the Dagster definitions pass them on as ``EnvVar``s, read at run time and never shown in the UI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

_TRUE = ("1", "true", "yes", "on")


def _setting(variable: str, default: Any, meaning: str, secret: bool = False) -> Any:
    return field(default=default, repr=not secret,
                 metadata={"variable": variable, "meaning": meaning, "secret": secret})


@dataclass(frozen=True)
class Settings:
    # Where things are
    home: str = _setting("QUIRE_HOME", "", "Quire's folder: the embedded catalog, the source indexes, the "
                         "intermediate Parquet files and reports. Empty: this user's data folder "
                         "(`~/.local/share/quire` on Linux).")
    catalog: str = _setting("QUIRE_CATALOG", "", "The catalog URI: `sqlite:///path/catalog.db` or "
                            "`mongodb://user:password@host/db`. Empty: `sqlite:///$QUIRE_HOME/catalog.db`.",
                            secret=True)
    catalog_user: str = _setting("QUIRE_CATALOG_USER", "", "The MongoDB catalog's user, when it is not in "
                                 "`QUIRE_CATALOG`: Quire URL-quotes it into the URI (docker-compose).")
    catalog_password: str = _setting("QUIRE_CATALOG_PASSWORD", "", "That user's password: any character, `@:/%` "
                                     "included, since Quire URL-quotes it.", secret=True)
    source: str = _setting("QUIRE_SOURCE", "", "The archive: a folder, `s3://bucket/prefix`, "
                           "`dicomweb+https://host/path` or `dimse://AET@host:port?calling=AET`. Empty: the "
                           "folder `archive` for the Dagster definitions; `quire serve` then runs no jobs itself.")
    features: str = _setting("QUIRE_FEATURES", "", "A folder with `study.txt`, `series.txt`, `instance.txt` "
                             "feature sets. Empty: the built-in sets.")
    fast_path: bool = _setting("QUIRE_FAST_PATH", True, "`0` makes pydicom read every header (no fast path); "
                               "for comparisons.")
    # PACS credentials (DICOMweb)
    pacs_user: str = _setting("QUIRE_PACS_USER", "", "DICOMweb basic-auth user.")
    pacs_password: str = _setting("QUIRE_PACS_PASSWORD", "", "DICOMweb basic-auth password.", secret=True)
    pacs_token: str = _setting("QUIRE_PACS_TOKEN", "", "A DICOMweb bearer token (instead of user and password).",
                               secret=True)
    pacs_ca_bundle: str = _setting("QUIRE_PACS_CA_BUNDLE", "", "A CA certificate file for the PACS's TLS "
                                   "(verification is always on).")
    # Running
    executor: str = _setting("QUIRE_EXECUTOR", "in_process", "`ingest_job`'s executor: `in_process`, "
                             "`multiprocess` or `celery`.")
    celery_broker: str = _setting("QUIRE_CELERY_BROKER", "redis://localhost:6379/0",
                                  "The Celery broker (a Redis URL), for the executor and its workers.", secret=True)
    celery_backend: str = _setting("QUIRE_CELERY_BACKEND", "redis://localhost:6379/1",
                                   "The Celery result backend (a Redis URL).", secret=True)
    celery_visibility_timeout: int = _setting(
        "QUIRE_CELERY_VISIBILITY_TIMEOUT", 3600, "Seconds a step stays reserved by the worker that took it: a "
        "worker lost mid-step has its step delivered to another after this. Longer than the longest step.")
    partitions_kept: int = _setting(
        "QUIRE_PARTITIONS_KEPT", 10_000, "Accession partitions kept registered in Dagster besides those being "
        "cataloged: older ones the catalog holds are retired from Dagster's partition store (and registered again "
        "when a file changes or a researcher asks), so a run's cost does not grow with the archive "
        "(`docs/dagster.md`). `0`: keep every accession registered.")
    dagster_home: str = _setting("DAGSTER_HOME", "", "The Dagster instance `quire` writes runs to (the one the "
                                 "Dagster UI reads). Empty: an ephemeral instance per command.")
    event_batch_size: int = _setting(
        "DAGSTER_EVENT_BATCH_SIZE", 1000, "Dagster's: events of one output stored as one batch (Quire's storages "
        "write a batch in one transaction). Quire sets it in the processes it starts runs from.")
    planned_partition_subsets: bool = _setting(
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", True, "Dagster's: one planned event per asset for "
        "a run over a partition range instead of one per partition. `false` keeps per-partition events "
        "(the partitions of a failed run then show as failed rather than missing).")
    # The researcher API
    phi_salt: str = _setting("QUIRE_PHI_SALT", "", "The deployment's secret: pseudonyms of hashed values and "
                             "page cursors derive from it. Empty: a random one per `quire serve` (pseudonyms "
                             "change at each restart).", secret=True)
    phi_policy: str = _setting("QUIRE_PHI_POLICY", "", "The PHI policy file. Empty: the built-in allow-list "
                               "(`quire_assets/catalog/phi-policy.toml`).")
    admin_key_file: str = _setting("QUIRE_ADMIN_KEY_FILE", "", "A file holding the first admin's API key "
                                   "(a docker-compose secret): `quire serve` issues it to researcher `admin` when "
                                   "no key was ever issued for the catalog, and ignores it after that.")
    api_open: bool = _setting("QUIRE_API_OPEN", False, "`1`: on loopback, requests without a key are served as "
                              "an admin's until the first key is issued (`quire serve --open`).")
    query_seconds: float = _setting("QUIRE_QUERY_SECONDS", 10.0, "Seconds one API read may run.")
    regex_seconds: float = _setting("QUIRE_REGEX_SECONDS", 5.0, "Seconds the `$regex` conditions of one query "
                                    "may run in all: a backtracking pattern ends as a refusal.")
    stats_min_cell: int = _setting("QUIRE_STATS_MIN_CELL", 5, "Statistics' smallest cell shown to a researcher "
                                   "(smaller counts are suppressed).")
    max_pending_jobs: int = _setting("QUIRE_MAX_PENDING_JOBS", 20, "Pending requests one researcher may have.")
    max_collections: int = _setting("QUIRE_MAX_COLLECTIONS", 500, "Collections one researcher may keep.")
    columnar: bool = _setting("QUIRE_COLUMNAR", True, "Researchers' counts and facet counts from a columnar copy "
                              "of the research view (DuckDB, in each API process's memory: a server held 568 MB in "
                              "all at 100,000 series), built in the background at start and kept at the view's position; "
                              "until it is, and for questions it does not answer, the view answers "
                              "(`docs/performance.md`). `0`: the view always.")
    api_threads: int = _setting("QUIRE_API_THREADS", 2, "Threads serving the API's routes per uvicorn worker.")
    cors_origins: str = _setting("QUIRE_CORS_ORIGINS", "", "Comma-separated origins whose pages may call "
                                 "`/dicomweb` (a viewer served elsewhere, e.g. OHIF at http://127.0.0.1:3000), with "
                                 "the key in its Authorization header. Empty: none (same origin only).")
    public_url: str = _setting("QUIRE_PUBLIC_URL", "", "The service's address as its clients reach it (behind a "
                               "proxy: https://quire.example.org), for the RetrieveURL of DICOMweb answers. "
                               "Empty: the scheme, host and port each request names.")
    viewer_url: str = _setting("QUIRE_VIEWER_URL", "", "A viewer's address for one study, `{study_instance_uid}` "
                               "standing for the study's UID (OHIF: http://127.0.0.1:3000/viewer?StudyInstanceUIDs="
                               "{study_instance_uid}): the dashboard's study pages link to it. Empty: no link.")
    dagster_url: str = _setting("QUIRE_DAGSTER_URL", "", "The Dagster UI's address (http://127.0.0.1:3000): "
                                "the Jobs page links each run to it. Empty: run ids as text.")
    # ask
    ask_synonyms: str = _setting("QUIRE_ASK_SYNONYMS", "", "A TOML file of a site's own phrases for `quire "
                                 "ask`, read before the built-in ones.")
    ask_translator: str = _setting("QUIRE_ASK_TRANSLATOR", "", "`package.module:function`: a translator of "
                                   "questions to use instead of the built-in offline one.")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (default: this process's environment); unset or empty
        variables keep their defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["variable"])
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse(raw, f.default)
            except ValueError:
                raise SettingsError(f"{f.metadata['variable']}={raw!r} is not {_kind(f.default)}") from None
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """These settings with some changed (a command's options)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def is_set(self, name: str) -> bool:
        """Whether a setting differs from its default (for a secret: whether one is given)."""
        return getattr(self, name) != _FIELDS[name].default

    @property
    def home_path(self) -> Path:
        from platformdirs import user_data_dir

        return Path(self.home or user_data_dir("quire", appauthor=False)).expanduser().resolve()

    @property
    def catalog_uri(self) -> str:
        uri = self.catalog or f"sqlite:///{(self.home_path / 'catalog.db').resolve()}"
        return with_credentials(uri, self.catalog_user, self.catalog_password)

    def variable(self, name: str) -> str:
        return _FIELDS[name].metadata["variable"]


def home_of(home: str = "") -> Path:
    """``home`` resolved, or (empty) the home this process's environment names: for a Dagster
    resource built without one, read where its run executes."""
    return Settings(home=home).home_path if home else Settings.from_environ().home_path


def with_credentials(uri: str, user: str, password: str) -> str:
    """``uri`` with ``user`` and ``password`` URL-quoted into it, so that any character is safe in
    either: a generated password with ``@``, ``:`` or ``/`` interpolated raw into a URI would move
    its host or database. A URI that already holds these very credentials is returned as it is."""
    if not user and not password:
        return uri
    scheme, _, rest = uri.partition("://")
    if scheme not in ("mongodb", "mongodb+srv"):
        raise SettingsError("QUIRE_CATALOG_USER and QUIRE_CATALOG_PASSWORD are for a mongodb:// catalog, "
                            f"not {scheme or 'this'}:// one")
    userinfo = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        if authority.rsplit("@", 1)[0] == userinfo:
            return uri
        raise SettingsError("the catalog URI names a user and QUIRE_CATALOG_USER/QUIRE_CATALOG_PASSWORD are set too: "
                            "keep one of the two")
    return f"{scheme}://{userinfo}@{rest}"


class SettingsError(ValueError):
    """A variable set to something its setting cannot take."""


_FIELDS = {f.name: f for f in fields(Settings)}


def _parse(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def _kind(default: Any) -> str:
    return {bool: "a yes/no (1 or 0)", int: "a whole number", float: "a number"}.get(type(default), "text")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dagster_switches(settings: Settings, environ: MutableMapping[str, str] | None = None) -> None:
    """Set Dagster's own two switches where runs are created and executed. Dagster reads them only
    from the process environment, at each event: this is the one place Quire writes it. An
    explicit setting, even "0", is kept."""
    environ = os.environ if environ is None else environ
    environ.setdefault(settings.variable("event_batch_size"), _text(settings.event_batch_size))
    environ.setdefault(settings.variable("planned_partition_subsets"), _text(settings.planned_partition_subsets))


def shared_salt(settings: Settings) -> Settings:
    """Settings with a PHI salt: the given one, else a random one, to hand to the processes this one
    starts (uvicorn's workers, the job worker) so that they all seal and hash alike."""
    return settings if settings.phi_salt else replace(settings, phi_salt=secrets.token_hex(32))


def handed_to_workers(settings: Settings, environ: MutableMapping[str, str] | None = None) -> None:
    """Write ``settings`` where processes started from an import string (uvicorn's ``--workers``)
    read them: their own ``Settings.from_environ()`` then equals these."""
    environ = os.environ if environ is None else environ
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if value == f.default:
            environ.pop(f.metadata["variable"], None)
        else:
            environ[f.metadata["variable"]] = _text(value)


def markdown() -> str:
    """``docs/configuration.md``: every setting, its variable, default and meaning."""
    lines = ["# Configuration", "",
             "Quire reads these environment variables once, where a process starts (the `quire` command, the",
             "API's app factory, the Dagster definitions), into one `Settings` object",
             "(`quire_assets/settings.py`). This page is written from it: `python -m quire_assets.settings > "
             "docs/configuration.md`.",
             "Secrets are marked: Quire never logs them, and the Dagster definitions read them as `EnvVar`s at",
             "run time.", "",
             "| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        default = _text(f.default) if f.default != "" else "(empty)"
        secret = " **Secret.**" if f.metadata["secret"] else ""
        lines.append(f"| `{f.metadata['variable']}` | `{default}` | {f.metadata['meaning']}{secret} |")
    lines += ["", "A catalog URI is shown with its password masked wherever Quire prints it. Settings of the",
              "deployment's other parts (PostgreSQL for Dagster's instance, MongoDB's root password) are",
              "docker-compose's: see [deployment.md](deployment.md)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
