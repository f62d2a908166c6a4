"""Team administration pages: the teams list (platform administrators create teams), one team
with its projects, members, invites, team API tokens, two-factor requirement and history, the
forms that change them, and the page where an invite link is accepted.

Every view authorises through panel.access.policy (404 outside the user's teams, 403 for a role
that may not act, both audited) and changes state only through panel/access/services.py,
panel/access/invites.py and panel/access/team_tokens.py. Forms post and redirect; a refused
form re-renders the team page with the field named (400, or 409 for a conflict such as
demoting the last admin)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from panel.access import invites, policy, services, team_tokens
from panel.access.models import ApiToken, Membership, Project, Team, TeamInvite, service_accounts
from panel.audit.models import AuditEvent
from panel.web.common import actor, error_text, get_visible, signed_in
from panel.web.team_forms import (
    InviteForm,
    MemberForm,
    ProjectForm,
    SettingsForm,
    TeamForm,
    TeamTokenForm,
    apply_errors,
)
from panel.web.team_history import team_history
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed


def _back(team: Team) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("web-team", args=[team.pk]))


# --- the teams list -----------------------------------------------------------------------------

@signed_in
def teams(request: HttpRequest) -> HttpResponse:
    """GET: the teams the user sees, with their role and counts (a constant number of
    queries); POST: create a team (platform administrators)."""
    form = TeamForm(request.POST or None)
    if request.method == "POST":
        policy.authorize(request.user, "team.create", None, actor(request))
        if form.is_valid():
            data = form.cleaned_data
            try:
                team = services.create_team(actor(request), data["name"], data["description"],
                                            data["require_2fa"])
            except ValidationFailed as exc:
                apply_errors(form, exc)
            else:
                messages.success(request, f"team {team.name} created: add its members")
                return _back(team)
    rows = policy.visible(request.user, Team.objects.annotate(
        n_members=Count("memberships", distinct=True),
        n_projects=Count("projects", distinct=True))).order_by("name")
    roles = policy.team_roles(request.user)
    platform = policy.is_platform_admin(request.user)
    listing = [{"team": team, "role": roles.get(team.pk) or ("platform" if platform else "")}
               for team in rows]
    return render(request, "teams/list.html", {
        "teams": listing, "form": form,
        "can_create": policy.can(request.user, "team.create")},
        status=400 if form.errors else 200)


# --- one team -----------------------------------------------------------------------------------

def _team_page(request: HttpRequest, team: Team, status: int = 200,
               **context: Any) -> HttpResponse:
    """The team page; `context` overrides its forms (a refused, bound one) or adds the
    one-time invite link."""
    user = request.user
    can_members = policy.can(user, "team.members", team)
    can_change = policy.can(user, "team.change", team)
    can_history = policy.can(user, "auditevent.view", AuditEvent(team_id=team.pk))
    # team tokens' service accounts are listed with the tokens, not as people
    without_2fa = list(invites.members_without_2fa(team).exclude(
        user_id__in=service_accounts())) if can_change or can_history else []
    page: dict[str, Any] = {
        "team": team, "role": policy.role_of(user, team),
        "can_members": can_members, "can_change": can_change, "can_history": can_history,
        "can_project": policy.can(user, "project.create", Project(team=team)),
        "projects": team.projects.order_by("name"),
        "members": team.memberships.exclude(user_id__in=service_accounts()).select_related(
            "user").order_by("user__username"),
        "roles": [r for r, _ in Membership.ROLE_CHOICES],
        "invites": invites.pending_invites(team) if can_members else [],
        "tokens": team_tokens.team_tokens(team) if can_members else [],
        "token_form": TeamTokenForm(), "now": timezone.now(),
        "without_2fa": without_2fa, "without_2fa_ids": {m.user_id for m in without_2fa},
        "history": team_history(user, team.pk) if can_history else [],
        "member_form": MemberForm(), "invite_form": InviteForm(),
        "project_form": ProjectForm(),
        "settings_form": SettingsForm(initial={"description": team.description,
                                               "require_2fa": team.require_2fa}),
    }
    page.update(context)
    return render(request, "teams/detail.html", page, status=status)


def _invalid(request: HttpRequest, team: Team, name: str, form: Any) -> HttpResponse:
    """Re-render the team page with `form` (as context `name`) refused: 400, and a message
    naming each bad field as well as the errors beside the fields."""
    named = "; ".join(f"{field if field != '__all__' else 'form'}: {' '.join(errors)}"
                      for field, errors in form.errors.items())
    messages.error(request, named)
    return _team_page(request, team, status=400, **{name: form})


def _refused(request: HttpRequest, team: Team, exc: Exception, **forms: Any) -> HttpResponse:
    """Re-render the team page after a refused change: the message names the field; 409 for
    a conflict with the team's state, 400 for bad input."""
    messages.error(request, error_text(exc))
    return _team_page(request, team, status=409 if isinstance(exc, Conflict) else 400, **forms)


@signed_in
@require_safe
def team_detail(request: HttpRequest, pk: int) -> HttpResponse:
    team = get_visible(request, Team.objects.all(), "team.view", pk=pk)
    return _team_page(request, team)


@signed_in
@require_POST
def team_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Description and the two-factor requirement (team admins)."""
    team = get_visible(request, Team.objects.all(), "team.change", pk=pk)
    form = SettingsForm(request.POST)
    if not form.is_valid():
        return _invalid(request, team, "settings_form", form)
    try:
        team = services.update_team(actor(request), team, **form.cleaned_data)
    except (ValidationFailed, Conflict) as exc:
        if isinstance(exc, ValidationFailed):
            apply_errors(form, exc)
        return _refused(request, team, exc, settings_form=form)
    if team.require_2fa:
        missing = invites.members_without_2fa(team).count()
        messages.success(request, "settings saved: two-factor sign-in is required"
                         + (f"; {missing} member(s) have not enrolled an authenticator yet and "
                            "must do so at their next sign-in" if missing else ""))
    else:
        messages.success(request, "settings saved")
    return _back(team)


@signed_in
@require_POST
def team_members(request: HttpRequest, pk: int) -> HttpResponse:
    """Add an existing user by username with a role (team admins)."""
    team = get_visible(request, Team.objects.all(), "team.members", pk=pk)
    form = MemberForm(request.POST)
    if not form.is_valid():
        return _invalid(request, team, "member_form", form)
    username, role = form.cleaned_data["username"], form.cleaned_data["role"]
    current = team.memberships.filter(user__username=username).first()
    if current is not None:
        form.add_error("username", f"{username} is already a member ({current.role}): change "
                                   "their role in the list of members")
        return _invalid(request, team, "member_form", form)
    try:
        services.set_member(actor(request), team, username, role)
    except (ValidationFailed, Conflict) as exc:
        if isinstance(exc, ValidationFailed):
            apply_errors(form, exc)
        return _refused(request, team, exc, member_form=form)
    messages.success(request, f"{username} added to {team.name} as {role}")
    return _back(team)


def _after_own_change(request: HttpRequest, team: Team) -> HttpResponseRedirect:
    """Back to the team, or to the teams list when the user just left it."""
    policy.forget(request.user)
    if policy.can(request.user, "team.view", team):
        return _back(team)
    return HttpResponseRedirect(reverse("web-teams"))


@signed_in
@require_POST
def team_member(request: HttpRequest, pk: int) -> HttpResponse:
    """One membership (`pk`): change its role (field `role`) or remove it (`action=remove`)."""
    membership = get_object_or_404(Membership.objects.select_related("team", "user"), pk=pk)
    team = membership.team
    policy.authorize(request.user, "team.members", team, actor(request))
    username = membership.user.get_username()
    try:
        if request.POST.get("action") == "remove":
            services.remove_member(actor(request), membership)
            messages.success(request, f"{username} removed from {team.name}")
        else:
            role = request.POST.get("role", "")
            services.set_member(actor(request), team, username, role)
            messages.success(request, f"{username} is now {role} in {team.name}")
    except (ValidationFailed, Conflict) as exc:
        return _refused(request, team, exc)
    return _after_own_change(request, team)


@signed_in
@require_POST
def team_projects(request: HttpRequest, pk: int) -> HttpResponse:
    """Create a project owned by the team (team admins)."""
    team = get_visible(request, Team.objects.all(), "team.view", pk=pk)
    policy.authorize(request.user, "project.create", Project(team=team), actor(request))
    form = ProjectForm(request.POST)
    if not form.is_valid():
        return _invalid(request, team, "project_form", form)
    try:
        project = services.create_project(actor(request), team, form.cleaned_data["name"],
                                          form.cleaned_data["description"])
    except ValidationFailed as exc:
        apply_errors(form, exc)
        return _refused(request, team, exc, project_form=form)
    messages.success(request, f"project {project.name} created")
    return _back(team)


# --- invites ------------------------------------------------------------------------------------

@never_cache
@signed_in
@require_POST
def team_invite(request: HttpRequest, pk: int) -> HttpResponse:
    """Create an invite and show its link this once (never stored, never cached)."""
    team = get_visible(request, Team.objects.all(), "team.members", pk=pk)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _invalid(request, team, "invite_form", form)
    try:
        invite, secret = invites.create_invite(actor(request), team, form.cleaned_data["role"],
                                               form.cleaned_data["days"])
    except ValidationFailed as exc:
        apply_errors(form, exc)
        return _refused(request, team, exc, invite_form=form)
    link = request.build_absolute_uri(reverse("web-team-join", args=[secret]))
    return _team_page(request, team, invite_link=link, new_invite=invite)


@signed_in
@require_POST
def team_invite_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke an unused invite (`pk`: the invite)."""
    invite = get_object_or_404(TeamInvite.objects.select_related("team"), pk=pk)
    policy.authorize(request.user, "team.members", invite.team, actor(request))
    try:
        invites.revoke_invite(actor(request), invite)
    except Conflict as exc:
        return _refused(request, invite.team, exc)
    messages.success(request, f"the invite to {invite.team.name} as {invite.role} is revoked")
    return _back(invite.team)


# --- team API tokens ----------------------------------------------------------------------------

@never_cache
@signed_in
@require_POST
def team_token_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Create a team token and show its secret this once, in this response (never stored,
    never cached)."""
    team = get_visible(request, Team.objects.all(), "team.members", pk=pk)
    form = TeamTokenForm(request.POST)
    if not form.is_valid():
        return _invalid(request, team, "token_form", form)
    data = form.cleaned_data
    try:
        token, secret = team_tokens.create_team_token(
            actor(request), team, data["name"], data["role"], data["read_only"],
            data["expires_in_days"])
    except ValidationFailed as exc:
        apply_errors(form, exc)
        return _refused(request, team, exc, token_form=form)
    return _team_page(request, team, new_token=token, token_secret=secret)


@signed_in
@require_POST
def team_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke a team token (`pk`: the token); a personal token is not found here."""
    token = get_object_or_404(ApiToken.objects.select_related("team"), pk=pk,
                              team__isnull=False)
    team = token.team
    assert team is not None
    policy.authorize(request.user, "team.members", team, actor(request))
    try:
        team_tokens.revoke_team_token(actor(request), token)
    except Conflict as exc:
        return _refused(request, team, exc)
    messages.success(request, f"team token {token.name} revoked: it no longer signs anything "
                              "in")
    return _back(team)


def _no_referrer(response: HttpResponse) -> HttpResponse:
    """The join page's address holds the secret: keep it out of other sites' logs."""
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@signed_in
def team_join(request: HttpRequest, secret: str) -> HttpResponse:
    """GET: "join team X as ROLE" for the signed-in user; POST: accept. A spent or unknown
    link answers 400 without naming any team."""
    try:
        invite = invites.open_invite(secret)
    except ValidationFailed as exc:
        return _no_referrer(render(request, "teams/join_invalid.html",
                                   {"reason": error_text(exc)}, status=400))
    member: Membership | None = invite.team.memberships.filter(user_id=request.user.pk).first()
    if request.method == "POST":
        try:
            membership = invites.accept_invite(actor(request), request.user, secret)
        except ValidationFailed as exc:
            return _no_referrer(render(request, "teams/join_invalid.html",
                                       {"reason": error_text(exc)}, status=400))
        except Conflict as exc:
            messages.error(request, str(exc))
            return _no_referrer(render(request, "teams/join.html",
                                       {"invite": invite, "member": member}, status=409))
        policy.forget(request.user)
        messages.success(request, f"you joined {membership.team.name} as {membership.role}")
        return _back(membership.team)
    return _no_referrer(render(request, "teams/join.html", {"invite": invite, "member": member}))
