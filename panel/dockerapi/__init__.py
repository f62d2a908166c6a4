"""A Docker-Engine-compatible endpoint under /docker/ (API 1.41, with or without the /v1.xx
prefix), so the docker CLI and docker-py drive Berth: `DOCKER_HOST=tcp://SERVER:8000/docker`
and a Berth API token sent as `Authorization: Bearer …` (the CLI's config.json `HttpHeaders`).
Each call runs as the token's owner, through the same services, policy and audit (channel
"docker") as the REST API; containers made this way are Berth containers."""
