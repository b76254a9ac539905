"""Any kind the API server serves, by REST path: discovery, list, get, server-side apply, delete.

The typed client knows the built-in kinds only; backups take every namespaced kind the account can read,
custom resources included, so they go through discovery and plain paths (``/api/v1/...``,
``/apis/<group>/<version>/...``), with the client's own authentication and timeouts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from resilience_tests.cluster.client import api_message
from resilience_tests.errors import ResilienceError

FIELD_MANAGER = "resilience-tests"


@dataclass(frozen=True)
class Resource:
    """One kind as the server serves it."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """``apps/Deployment``, ``core/ConfigMap`` (as the backup archive names kinds)."""
        return f"{self.group or 'core'}/{self.kind}"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The request path; every segment quoted, so no name or namespace can change where it goes
        (``../../kube-system/configmaps/x`` stays one segment, ``x?dryRun=All`` adds no query)."""
        base = f"/apis/{_q(self.group)}/{_q(self.version)}" if self.group else f"/api/{_q(self.version)}"
        where = f"/namespaces/{_q(namespace)}" if namespace and self.namespaced else ""
        return f"{base}{where}/{_q(self.plural)}" + (f"/{_q(name)}" if name else "")


def _q(segment: str) -> str:
    """One URL path segment, quoted whole (``/``, ``?``, ``%``, ``..`` included)."""
    quoted = quote(segment, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


class ResourceError(ResilienceError):
    """A request the server refused: ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Resources:
    """Discovery and plain REST access through one API client."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._found: list[Resource] | None = None

    def _call(self, method: str, path: str, *, body: Any = None, query: list[tuple[str, Any]] | None = None,
              content_type: str = "application/json") -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            request = self.api.param_serialize(method=method, resource_path=path, query_params=query or [],
                                               header_params=headers, body=body, auth_settings=["BearerToken"])
            response = self.api.call_api(*request, _request_timeout=(10, 120))
            data = response.read()
        except ApiException as exc:
            raise ResourceError(int(exc.status or 0), api_message(exc.body, exc.reason)) from None
        except HTTPError as exc:
            raise ResourceError(0, f"{method} {path}: the API server did not answer ({exc})") from None
        if response.status >= 400:
            raise ResourceError(int(response.status), api_message(data, response.reason))
        return json.loads(data) if data else None

    def discover(self) -> list[Resource]:
        """Every kind the server serves in its preferred version (subresources left out), once per client."""
        if self._found is not None:
            return self._found
        found: list[Resource] = []
        versions = [("", v) for v in (self._call("GET", "/api") or {}).get("versions", [])]
        for group in (self._call("GET", "/apis") or {}).get("groups", []):
            preferred = (group.get("preferredVersion") or {}).get("version")
            if preferred:
                versions.append((group["name"], preferred))
        for group, version in versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = self._call("GET", path) or {}
            except ResourceError:
                continue  # an aggregated API that does not answer: its kinds are not listed
            for item in listing.get("resources", []):
                if "/" in item["name"]:
                    continue
                found.append(Resource(group, version, item["kind"], item["name"], bool(item.get("namespaced")),
                                      frozenset(item.get("verbs") or ())))
        self._found = found
        return found

    def find(self, api_version: str, kind: str) -> Resource | None:
        """The served kind of an object's apiVersion and kind (None if the server does not serve it)."""
        group, _, version = api_version.rpartition("/")
        for resource in self.discover():
            if (resource.group, resource.version, resource.kind) == (group, version, kind):
                return resource
        return next((r for r in self.discover() if r.group == group and r.kind == kind), None)

    def list(self, resource: Resource, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        """Every object of a kind in a namespace (matching a label ``selector``), each with apiVersion and kind."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", 500)] + ([("continue", token)] if token else []) + \
                ([("labelSelector", selector)] if selector else [])
            page = self._call("GET", resource.path(namespace), query=query) or {}
            for item in page.get("items", []):
                items.append({"apiVersion": resource.api_version, "kind": resource.kind, **item})
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self._call("GET", resource.path(namespace, name))
        except ResourceError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(found) if found else None

    def apply(self, resource: Resource, namespace: str, obj: dict[str, Any], *, force: bool) -> dict[str, Any]:
        """Server-side apply of ``obj`` (field manager ``resilience-tests``); ``force`` takes over fields
        another manager owns."""
        body = {**obj, "metadata": {**obj.get("metadata", {}), "namespace": namespace}} if resource.namespaced \
            else obj
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)] + ([("force", "true")] if force else [])
        return dict(self._call("PATCH", resource.path(namespace, obj["metadata"]["name"]), body=json.dumps(body),
                               query=query,
                               content_type="application/apply-patch+yaml") or {})

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete an object (background propagation); False if it was not there."""
        try:
            self._call("DELETE", resource.path(namespace, name),
                       body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
        except ResourceError as exc:
            if exc.status == 404:
                return False
            raise
        return True
