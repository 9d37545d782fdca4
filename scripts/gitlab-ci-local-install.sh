#!/usr/bin/env bash
# Obtain the pinned gitlab-ci-local (runs .gitlab-ci.yml jobs locally; the tests run ci-templates/gitlab-ci.yml
# with it in shell mode); print the directory holding its executable. Pinned with a lockfile in
# scripts/npm-tools/gitlab-ci-local/ (4.73.0: 4.74 and later need Node 22, Debian's node is 20). See
# scripts/npm-tool-install.sh for the order (GITLAB_CI_LOCAL_BIN, PATH, cache, npm ci) and NOTARY_NO_BUILD.
exec "$(dirname "$0")/npm-tool-install.sh" gitlab-ci-local
