#!/usr/bin/env bash
# local-kms (an AWS KMS emulator) for the KMS provider tests, built into the
# cache; prints its path.
exec "$(dirname "$0")/gotool.sh" local-kms github.com/nsmithuk/local-kms v0.0.0-20260228092603-2a5e92d09ab6
