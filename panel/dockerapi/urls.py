"""Docker Engine API routes, each with and without the /v1.xx prefix the clients add:

    GET|HEAD _ping           GET version, info
    GET  containers/json     POST containers/create
    GET  containers/ID/json  POST containers/ID/start|stop|restart|kill|wait
    GET  containers/ID/logs  DELETE containers/ID
    GET  volumes, volumes/NAME           POST volumes/create   DELETE volumes/NAME
    GET  networks, networks/ID           POST networks/create  DELETE networks/ID
    POST networks/ID/connect|disconnect  (a container that has not run yet)
    GET  images/json, images/NAME/json
"""

from django.urls import re_path

from panel.dockerapi import resources, views

VERSION = r"^(?:v(?P<version>[0-9]+\.[0-9]+)/)?"
REF = r"(?P<ref>[A-Za-z0-9/][A-Za-z0-9_.-]*)"
NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)"

urlpatterns = [
    re_path(VERSION + r"_ping$", views.ping, name="docker-ping"),
    re_path(VERSION + r"version$", views.version_view, name="docker-version"),
    re_path(VERSION + r"info$", views.info, name="docker-info"),
    re_path(VERSION + r"containers/json$", views.containers_list, name="docker-containers"),
    re_path(VERSION + r"containers/create$", views.containers_create,
            name="docker-container-create"),
    re_path(VERSION + rf"containers/{REF}/json$", views.container_inspect,
            name="docker-container"),
    re_path(VERSION + rf"containers/{REF}/logs$", views.container_logs,
            name="docker-container-logs"),
    re_path(VERSION + rf"containers/{REF}/wait$", views.container_wait,
            name="docker-container-wait"),
    *[re_path(VERSION + rf"containers/{REF}/{action}$", views.container_action,
              {"action": action}, name=f"docker-container-{action}")
      for action in ("start", "stop", "restart", "kill")],
    re_path(VERSION + rf"containers/{REF}$", views.container_remove,
            name="docker-container-remove"),
    re_path(VERSION + r"volumes$", resources.volumes_list, name="docker-volumes"),
    re_path(VERSION + r"volumes/create$", resources.volume_create, name="docker-volume-create"),
    re_path(VERSION + rf"volumes/{NAME}$", resources.volume_detail, name="docker-volume"),
    re_path(VERSION + r"networks$", resources.networks_list, name="docker-networks"),
    re_path(VERSION + r"networks/create$", resources.network_create,
            name="docker-network-create"),
    re_path(VERSION + rf"networks/{REF}$", resources.network_detail, name="docker-network"),
    *[re_path(VERSION + rf"networks/{REF}/{verb}$", resources.network_attach, {"verb": verb},
              name=f"docker-network-{verb}") for verb in ("connect", "disconnect")],
    re_path(VERSION + r"images/json$", resources.images_list, name="docker-images"),
    re_path(VERSION + r"images/(?P<name>[A-Za-z0-9][A-Za-z0-9_./:@-]*)/json$",
            resources.image_inspect, name="docker-image"),
]
