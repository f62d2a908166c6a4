"""The team administration pages, included at "teams/" by panel/web/urls.py. Names start with
"web-team"; `pk` is a team id, except for web-team-member (a membership id) and
web-team-invite-revoke (an invite id) and web-team-token-revoke (a team token's id)."""

from django.urls import path

from panel.web import views_teams as teams

urlpatterns = [
    path("", teams.teams, name="web-teams"),
    path("<int:pk>/", teams.team_detail, name="web-team"),
    path("<int:pk>/members/", teams.team_members, name="web-team-members"),
    path("<int:pk>/settings/", teams.team_settings, name="web-team-settings"),
    path("<int:pk>/invites/", teams.team_invite, name="web-team-invite"),
    path("<int:pk>/projects/", teams.team_projects, name="web-team-projects"),
    path("<int:pk>/tokens/", teams.team_token_create, name="web-team-tokens"),
    path("members/<int:pk>/", teams.team_member, name="web-team-member"),
    path("invites/<int:pk>/revoke/", teams.team_invite_revoke, name="web-team-invite-revoke"),
    path("tokens/<int:pk>/revoke/", teams.team_token_revoke, name="web-team-token-revoke"),
    path("join/<str:secret>/", teams.team_join, name="web-team-join"),
]
