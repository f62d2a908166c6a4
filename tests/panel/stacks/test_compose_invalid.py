"""A catalogue of compose files Berth refuses: each must name the right key, line and column,
and say what is allowed instead. Pure parsing, no database."""

from __future__ import annotations

import textwrap

import pytest

from panel.stacks.compose import ComposeError, parse_compose

# (id, compose text, path, line, column, a fragment of the message)
CASES = [
    ("malformed_yaml", """\
        services:
          web:
            image: nginx
            ports: [80
        """, "", 5, 1, "malformed YAML"),
    ("unclosed_quote", """\
        services:
          web:
            image: "nginx
        """, "", 4, 1, "malformed YAML"),
    ("tab_indentation", "services:\n  web:\n\timage: nginx\n", "", 3, 1,
     "indent with spaces, not tabs"),
    ("duplicate_key", """\
        services:
          web:
            image: nginx
            image: httpd
        """, "services.web.image", 4, 5, "already defined at line 3"),
    ("root_is_a_list", """\
        - services
        """, "", 1, 1, "a compose file is a mapping"),
    ("no_services", """\
        name: shop
        """, "services", 1, 1, "at least one service"),
    ("empty_services", """\
        services: {}
        """, "services", 1, 1, "at least one service"),
    ("secret_file_not_uploaded", """\
        services:
          web: {image: nginx}
        secrets:
          token: {file: ./token}
        """, "secrets.token.file", 4, 17, "not among the stack's files"),
    ("secret_external", """\
        services:
          web: {image: nginx, secrets: [token]}
        secrets:
          token: {external: true}
        """, "secrets.token.external", 4, 11, "Berth keeps no swarm secrets"),
    ("secret_undeclared", """\
        services:
          web: {image: nginx, secrets: [token]}
        """, "services.web.secrets[0]", 2, 33, "undefined secret 'token'"),
    ("config_from_a_secret_variable_file_leaving_the_directory", """\
        services:
          web: {image: nginx, configs: [conf]}
        configs:
          conf: {file: ../conf}
        """, "configs.conf.file", 4, 16, "not leaving the directory"),
    ("relative_bind_leaving_the_directory", """\
        services:
          web:
            image: nginx
            volumes: ["../etc:/etc/x"]
        """, "services.web.volumes[0]", 4, 15, "stay inside the stack's directory"),
    ("unknown_top_level_key", """\
        services:
          web: {image: nginx}
        servics: {}
        """, "servics", 3, 1, "allowed here are version, name, services"),
    ("build_refused", """\
        services:
          web:
            image: shop/web
            build: .
        """, "services.web.build", 4, 5,
     "this service also names image: shop/web: remove build: to deploy that image"),
    ("build_without_image", """\
        services:
          web:
            build: .
        """, "services.web.build", 3, 5, "builds from source are not supported yet: build the "
                                          "image, push it"),
    ("container_name_with_replicas", """\
        services:
          web:
            image: nginx
            container_name: web1
            deploy: {replicas: 2}
        """, "services.web.container_name", 4, 21, "names one container, and this service runs 2"),
    ("unknown_service_key", """\
        services:
          web:
            image: nginx
            imagee: httpd
        """, "services.web.imagee", 4, 5, "unknown key 'imagee'"),
    ("privileged_not_a_boolean", """\
        services:
          web:
            image: nginx
            privileged: sure
        """, "services.web.privileged", 4, 17, "must be true or false"),
    ("network_mode_with_networks", """\
        services:
          web:
            image: nginx
            network_mode: host
            networks: [default]
        """, "services.web.networks", 5, 15, "cannot be combined"),
    ("network_mode_of_an_unknown_service", """\
        services:
          web:
            image: nginx
            network_mode: "service:vpn"
        """, "services.web.network_mode", 4, 19, "is not another service"),
    ("duplicate_environment_entry", """\
        services:
          web:
            image: nginx
            environment: ["A=1", "B=2", "A=3"]
        """, "services.web.environment[2]", 4, 33, "'A' is set twice"),
    ("extends_another_file", """\
        services:
          web:
            image: nginx
            extends: {file: base.yml, service: app}
        """, "services.web.extends.file", 4, 15, "another file is not supported"),
    ("extends_cycle", """\
        services:
          a: {image: nginx, extends: b}
          b: {image: nginx, extends: a}
        """, "services.a.extends", 2, 30, "extends cycle"),
    ("dependency_in_inactive_profile", """\
        services:
          web: {image: nginx, depends_on: [debug]}
          debug: {image: busybox, profiles: [debug]}
        """, "services.web.depends_on[0]", 2, 36, "profile that is not active"),
    ("env_file_not_uploaded", """\
        services:
          web:
            image: nginx
            env_file: .env
        """, "services.web.env_file", 4, 15, "not among the stack's files"),
    ("mem_limit_refused", """\
        services:
          web:
            image: nginx
            mem_limit: 256m
        """, "services.web.mem_limit", 4, 5, "deploy.resources.limits.memory"),
    ("service_not_a_mapping", """\
        services:
          web: nginx
        """, "services.web", 2, 8, "must be a mapping"),
    ("invalid_service_name", """\
        services:
          "web app":
            image: nginx
        """, "services.web app", 2, 3, "not a valid service name"),
    ("invalid_image_reference", """\
        services:
          web:
            image: Nginx:Latest
        """, "services.web.image", 3, 12, "invalid image reference"),
    ("image_not_a_string", """\
        services:
          web:
            image: [nginx]
        """, "services.web.image", 3, 12, "must be a string"),
    ("port_out_of_range", """\
        services:
          web:
            image: nginx
            ports:
              - "80:99999"
        """, "services.web.ports[0]", 5, 9, "not a port number 1-65535"),
    ("port_protocol", """\
        services:
          web:
            image: nginx
            ports: ["80/sctp"]
        """, "services.web.ports[0]", 4, 13, "not one of tcp, udp"),
    ("port_ipv6_host_ip", """\
        services:
          web:
            image: nginx
            ports: ["[::1]:8080:80"]
        """, "services.web.ports[0]", 4, 13, "not an IPv4 address"),
    ("port_range_length", """\
        services:
          web:
            image: nginx
            ports: ["8000-8002:80-81"]
        """, "services.web.ports[0]", 4, 13, "same length"),
    ("port_long_without_target", """\
        services:
          web:
            image: nginx
            ports:
              - published: 8080
        """, "services.web.ports[0]", 5, 9, "target: is required"),
    ("port_long_mode", """\
        services:
          web:
            image: nginx
            ports:
              - {target: 80, published: 8080, mode: global}
        """, "services.web.ports[0].mode", 5, 45, "mode must be ingress or host"),
    ("duplicate_host_port_across_services", """\
        services:
          web:
            image: nginx
            ports: ["8080:80"]
          admin:
            image: httpd
            ports:
              - target: 80
                published: 8080
        """, "services.admin.ports[0]", 8, 9, "already published by services.web"),
    ("host_port_on_all_addresses_and_one", """\
        services:
          web:
            image: nginx
            ports: ["127.0.0.1:9000:80"]
          api:
            image: httpd
            ports: ["9000:80"]
        """, "services.api.ports[0]", 7, 13, "already published by services.web"),
    ("undefined_volume", """\
        services:
          db:
            image: postgres
            volumes:
              - pgdata:/var/lib/postgresql/data
        """, "services.db.volumes[0]", 5, 9, "undefined volume 'pgdata'"),
    ("bind_mount_not_admin", """\
        services:
          web:
            image: nginx
            volumes:
              - /etc:/host-etc:ro
        """, "services.web.volumes[0]", 5, 9, "platform admins only"),
    ("volume_mode", """\
        services:
          web:
            image: nginx
            volumes: ["data:/data:rx"]
        volumes:
          data: {}
        """, "services.web.volumes[0]", 4, 15, "the mode must be ro or rw"),
    ("duplicate_mount_target", """\
        services:
          web:
            image: nginx
            volumes:
              - data:/data
              - cache:/data
        volumes:
          data:
          cache:
        """, "services.web.volumes[1]", 6, 9, "already mounted by services.web.volumes[0]"),
    ("tmpfs_mount", """\
        services:
          web:
            image: nginx
            volumes:
              - type: tmpfs
                target: /run
        """, "services.web.volumes[0].type", 5, 15, "tmpfs mounts are not supported"),
    ("undefined_network", """\
        services:
          web:
            image: nginx
            networks: [front]
        """, "services.web.networks[0]", 4, 16, "undefined network 'front'"),
    ("network_ipv4_address", """\
        services:
          web:
            image: nginx
            networks:
              front:
                ipv4_address: 10.0.0.5
        networks:
          front: {}
        """, "services.web.networks.front.ipv4_address", 6, 9, "Berth assigns addresses"),
    ("depends_on_unknown_service", """\
        services:
          web:
            image: nginx
            depends_on: [db]
        """, "services.web.depends_on[0]", 4, 18, "unknown service 'db'"),
    ("dependency_cycle", """\
        services:
          api:
            image: a
            depends_on: [web]
          web:
            image: w
            depends_on: [api]
        """, "services.api.depends_on[0]", 4, 18, "dependency cycle: api -> web -> api"),
    ("dependency_cycle_of_three", """\
        services:
          a:
            image: a
            depends_on: {b: {condition: service_started}}
          b:
            image: b
            depends_on: [c]
          c:
            image: c
            depends_on: [a]
        """, "services.a.depends_on.b", 4, 18, "dependency cycle: a -> b -> c -> a"),
    ("depends_on_itself", """\
        services:
          web:
            image: nginx
            depends_on: [web]
        """, "services.web.depends_on[0]", 4, 18, "dependency cycle: web -> web"),
    ("service_healthy_without_healthcheck", """\
        services:
          web:
            image: nginx
            depends_on:
              db:
                condition: service_healthy
          db:
            image: postgres
        """, "services.web.depends_on.db", 5, 7, "needs a health check on services.db"),
    ("depends_on_completed_successfully", """\
        services:
          web:
            image: nginx
            depends_on:
              migrate: {condition: service_completed_successfully}
          migrate:
            image: app
        """, "services.web.depends_on.migrate.condition", 5, 28, "service_started or"),
    ("healthcheck_without_test", """\
        services:
          web:
            image: nginx
            healthcheck:
              interval: 10s
        """, "services.web.healthcheck", 5, 7, "test: is required"),
    ("healthcheck_bad_test", """\
        services:
          web:
            image: nginx
            healthcheck:
              test: ["RUN", "true"]
        """, "services.web.healthcheck.test", 5, 13, '"CMD"'),
    ("healthcheck_bad_duration", """\
        services:
          web:
            image: nginx
            healthcheck:
              test: ["CMD", "true"]
              interval: 10 seconds
        """, "services.web.healthcheck.interval", 6, 17, "use a duration such as 30s"),
    ("healthcheck_negative_retries", """\
        services:
          web:
            image: nginx
            healthcheck:
              test: ["CMD", "true"]
              retries: -1
        """, "services.web.healthcheck.retries", 6, 16, "at least 0"),
    ("restart_policy_value", """\
        services:
          web:
            image: nginx
            restart: sometimes
        """, "services.web.restart", 4, 14, "allowed no, on-failure[:N], always"),
    ("memory_below_minimum", """\
        services:
          web:
            image: nginx
            deploy:
              resources:
                limits:
                  memory: 4m
        """, "services.web.deploy.resources.limits.memory", 7, 19, "below the minimum of 6m"),
    ("memory_bad_size", """\
        services:
          web:
            image: nginx
            deploy: {resources: {limits: {memory: lots}}}
        """, "services.web.deploy.resources.limits.memory", 4, 43, "e.g. 256m"),
    ("cpus_out_of_range", """\
        services:
          web:
            image: nginx
            deploy: {resources: {limits: {cpus: "2000"}}}
        """, "services.web.deploy.resources.limits.cpus", 4, 41, "from 0.01 to 1024"),
    ("negative_replicas", """\
        services:
          web:
            image: nginx
            deploy:
              replicas: -1
        """, "services.web.deploy.replicas", 5, 17, "at least 0"),
    ("replicas_not_a_number", """\
        services:
          web:
            image: nginx
            deploy:
              replicas: two
        """, "services.web.deploy.replicas", 5, 17, "whole number"),
    ("update_order", """\
        services:
          web:
            image: nginx
            deploy:
              update_config:
                order: random
        """, "services.web.deploy.update_config.order", 6, 16, "start-first or stop-first"),
    ("update_failure_action", """\
        services:
          web:
            image: nginx
            deploy:
              update_config: {failure_action: explode}
        """, "services.web.deploy.update_config.failure_action", 5, 39, "rollback or pause"),
    ("update_delay_duration", """\
        services:
          web:
            image: nginx
            deploy:
              update_config: {delay: 1x}
        """, "services.web.deploy.update_config.delay", 5, 30, "use a duration"),
    ("stop_grace_period_duration", """\
        services:
          web:
            image: nginx
            stop_grace_period: forever
        """, "services.web.stop_grace_period", 4, 24, "use a duration"),
    ("stop_signal_unknown", """\
        services:
          web:
            image: nginx
            stop_signal: SIGFOO
        """, "services.web.stop_signal", 4, 18, "invalid signal"),
    ("placement_by_role", """\
        services:
          web:
            image: nginx
            deploy:
              placement:
                constraints: ["node.role==manager"]
        """, "services.web.deploy.placement.constraints[0]", 6, 23, "host labels only"),
    ("global_mode", """\
        services:
          web:
            image: nginx
            deploy: {mode: global}
        """, "services.web.deploy.mode", 4, 20, "only replicated"),
    ("deploy_restart_policy", """\
        services:
          web:
            image: nginx
            deploy:
              restart_policy: {condition: on-failure}
        """, "services.web.deploy.restart_policy", 5, 7, "use the service's restart:"),
    ("reservations_of_devices", """\
        services:
          web:
            image: nginx
            deploy:
              resources:
                reservations: {devices: [{capabilities: [gpu]}]}
        """, "services.web.deploy.resources.reservations.devices", 6, 24,
     "GPUs) are not supported"),
    ("reserved_label", """\
        services:
          web:
            image: nginx
            labels:
              berth.uid: forged
        """, "services.web.labels.berth.uid", 5, 7, "reserved for Berth"),
    ("environment_name", """\
        services:
          web:
            image: nginx
            environment:
              - 1BAD=x
        """, "services.web.environment[0]", 5, 9, "not a valid name"),
    ("required_variable", """\
        services:
          web:
            image: nginx
            environment:
              DB_URL: ${DB_URL:?give the database URL}
        """, "services.web.environment.DB_URL", 5, 15,
     "variable DB_URL is required: give the database URL"),
    ("lone_dollar", """\
        services:
          web:
            image: nginx
            command: echo costs $ 5
        """, "services.web.command", 4, 14, "write $$ for a literal $"),
    ("unclosed_brace", """\
        services:
          web:
            image: nginx
            command: echo ${HOME
        """, "services.web.command", 4, 14, "unclosed ${"),
    ("volume_driver", """\
        services:
          web: {image: nginx}
        volumes:
          data:
            driver: nfs
        """, "volumes.data.driver", 5, 13, "only the local driver"),
    ("network_driver_overlay", """\
        services:
          web: {image: nginx}
        networks:
          mesh:
            driver: overlay
        """, "networks.mesh.driver", 5, 13, "only the bridge driver"),
    ("external_with_driver", """\
        services:
          web: {image: nginx}
        volumes:
          data:
            external: true
            driver: local
        """, "volumes.data.driver", 6, 5, "managed outside the stack"),
    ("custom_yaml_tag", """\
        services:
          web:
            image: nginx
            ports: !reset []
        """, "services.web.ports", 4, 12, "YAML tag !reset is not supported"),
    ("working_dir_relative", """\
        services:
          web:
            image: nginx
            working_dir: srv/app
        """, "services.web.working_dir", 4, 18, "absolute path"),
    ("pull_policy_build", """\
        services:
          web:
            image: nginx
            pull_policy: build
        """, "services.web.pull_policy", 4, 18, "builds from source are not supported yet"),
    ("not_an_extension_prefix", """\
        services:
          web:
            image: nginx
            y-notes: hi
        """, "services.web.y-notes", 4, 5, "x- extension fields"),
    ("command_unbalanced_quotes", """\
        services:
          web:
            image: nginx
            command: sh -c 'echo hi
        """, "services.web.command", 4, 14, "cannot split"),
    ("merge_of_a_scalar", """\
        x-name: &name web
        services:
          web:
            <<: *name
            image: nginx
        """, "services.web", 1, 9, "merge key"),
    ("ipam_gateway_outside_subnet", """\
        services:
          web: {image: nginx}
        networks:
          back:
            ipam:
              config:
                - subnet: 10.9.0.0/24
                  gateway: 10.8.0.1
        """, "networks.back.ipam.config[0].gateway", 8, 20, "inside subnet"),
    ("invalid_stack_name", """\
        name: My Stack
        services:
          web: {image: nginx}
        """, "name", 1, 1, "not a valid stack name"),
    ("memory_as_float", """\
        services:
          web:
            image: nginx
            deploy: {resources: {limits: {memory: 1.5}}}
        """, "services.web.deploy.resources.limits.memory", 4, 43, "a size such as 256m"),
]


@pytest.mark.parametrize(("text", "path", "line", "column", "fragment"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_invalid_compose_file_is_refused_at_its_line(text: str, path: str, line: int,
                                                       column: int, fragment: str) -> None:
    with pytest.raises(ComposeError) as caught:
        text = textwrap.dedent(text)
        # a file that names itself is parsed as it would be on import, under its own name
        parse_compose(text, stack_name=None if text.startswith("name:") else "shop")
    found = [(e["path"], e["line"], e["column"]) for e in caught.value.errors]
    matching = [e for e in caught.value.errors
                if (e["path"], e["line"], e["column"]) == (path, line, column)]
    assert matching, f"expected an error at {path} {line}:{column}, got {caught.value.errors}"
    assert any(fragment in e["message"] for e in matching), matching
    assert len(found) == len(set(found)), "the same problem is reported twice"


def test_catalogue_is_large_and_its_ids_unique() -> None:
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)
