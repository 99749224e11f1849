#!/usr/bin/env bash
# kustomize for the deploy tests, built into the cache; prints its path.
exec "$(dirname "$0")/gotool.sh" kustomize sigs.k8s.io/kustomize/kustomize/v5 v5.8.0
