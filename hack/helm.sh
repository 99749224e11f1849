#!/usr/bin/env bash
# helm for the chart tests, built into the cache; prints its path.
exec "$(dirname "$0")/gotool.sh" helm helm.sh/helm/v3/cmd/helm v3.22.0
