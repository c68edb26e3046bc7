"""Routes for projects and API keys: who am I, projects (instance admins create them),
and each project's keys (its admins issue, list, revoke and rotate them). A key's secret
is in the answer that creates it, and nowhere else, ever."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header
from starlette.responses import Response

from evalledger.api import models
from evalledger.api.datasets import PROBLEMS, LedgerDep, Reason
from evalledger.api.routing import Route
from evalledger.api.security import PrincipalDep, declare
from evalledger.api.wire import answer

OnBehalfOf = Annotated[str | None, Header(alias="X-Actor", max_length=200,
                                          description="Who the key acts for (recorded beside it).")]

router = APIRouter(tags=["access"], responses=PROBLEMS, route_class=Route)


@router.get("/api/me", response_model=models.Me, summary="The calling key: its name, role and project")
def me(ledger: LedgerDep, principal: PrincipalDep) -> Response:
    """Which key is calling, its role, its project (none for an instance key) and the actor its changes record."""
    return answer(models.Me, ledger.access.whoami(principal))


@router.get("/api/projects", response_model=models.ProjectList, summary="Projects this key sees")
def list_projects(ledger: LedgerDep, principal: PrincipalDep) -> Response:
    """Every project for an instance key; a project key's own project otherwise."""
    return answer(models.ProjectList, projects=ledger.access.list_projects(principal))


@router.post("/api/projects", status_code=201, response_model=models.Project, summary="Create a project",
             openapi_extra=declare("instance"))
def create_project(body: models.ProjectCreate, ledger: LedgerDep, principal: PrincipalDep,
                   on_behalf_of: OnBehalfOf = None, reason: Reason = None) -> Response:
    """A new project (an event in the access log). Its slug is its name in URLs and can't be taken twice."""
    return answer(models.Project, ledger.access.create_project(principal, name=body.name, slug=body.slug,
                                                               reason=reason, on_behalf_of=on_behalf_of), 201)


@router.get("/api/projects/{slug}/keys", response_model=models.ApiKeyList, summary="A project's keys",
            openapi_extra=declare("admin"))
def list_project_keys(slug: str, ledger: LedgerDep, principal: PrincipalDep) -> Response:
    """The project's keys, newest first, revoked ones included: prefix, name, role, created, last used."""
    return answer(models.ApiKeyList, keys=ledger.access.list_keys(principal, slug))


@router.post("/api/projects/{slug}/keys", status_code=201, response_model=models.IssuedKey,
             summary="Issue a key of a project (its secret is shown once)", openapi_extra=declare("admin"))
def issue_project_key(slug: str, body: models.KeyCreate, ledger: LedgerDep, principal: PrincipalDep,
                      on_behalf_of: OnBehalfOf = None, reason: Reason = None) -> Response:
    """A new key of the project with a role. The answer holds its secret: store it now, it is never shown again."""
    return answer(models.IssuedKey, ledger.access.issue_key(
        principal, project_slug=slug, name=body.name, role=body.role, reason=reason, on_behalf_of=on_behalf_of), 201)


@router.get("/api/keys", response_model=models.ApiKeyList, summary="Instance keys",
            openapi_extra=declare("instance"))
def list_instance_keys(ledger: LedgerDep, principal: PrincipalDep) -> Response:
    """The instance keys (those of no project), newest first."""
    return answer(models.ApiKeyList, keys=ledger.access.list_keys(principal, None))


@router.post("/api/keys", status_code=201, response_model=models.IssuedKey,
             summary="Issue an instance key (its secret is shown once)", openapi_extra=declare("instance"))
def issue_instance_key(body: models.KeyCreate, ledger: LedgerDep, principal: PrincipalDep,
                       on_behalf_of: OnBehalfOf = None, reason: Reason = None) -> Response:
    """A key of no project: with the admin role it manages projects and sees everything."""
    return answer(models.IssuedKey, ledger.access.issue_key(
        principal, project_slug=None, name=body.name, role=body.role, reason=reason, on_behalf_of=on_behalf_of), 201)


@router.post("/api/keys/{key_id:uuid}/revoke", response_model=models.ApiKey, summary="Revoke a key (at once)",
             openapi_extra=declare("admin"))
def revoke_key(key_id: UUID, ledger: LedgerDep, principal: PrincipalDep, on_behalf_of: OnBehalfOf = None,
               reason: Reason = None) -> Response:
    """The key stops working at once, in every process that serves this database. Revoking twice is refused
    (409)."""
    return answer(models.ApiKey, ledger.access.revoke_key(principal, key_id, reason=reason, on_behalf_of=on_behalf_of))


@router.post("/api/keys/{key_id:uuid}/rotate", status_code=201, response_model=models.IssuedKey,
             summary="Rotate a key: a new secret with the same name and role; the old one is revoked",
             openapi_extra=declare("admin"))
def rotate_key(key_id: UUID, ledger: LedgerDep, principal: PrincipalDep, on_behalf_of: OnBehalfOf = None,
               reason: Reason = None) -> Response:
    """Issues a key with the same project, name and role (its secret shown once) and revokes the old one, in one
    transaction."""
    return answer(models.IssuedKey, ledger.access.rotate_key(principal, key_id, reason=reason,
                                                             on_behalf_of=on_behalf_of), 201)
