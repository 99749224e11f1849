#!/usr/bin/env bash
# The Notary Project's notation CLI for the tests that sign with it and
# compare verdicts with `notation verify`, built into the cache; prints its
# path.
exec "$(dirname "$0")/gotool.sh" notation github.com/notaryproject/notation/cmd/notation v1.3.2
