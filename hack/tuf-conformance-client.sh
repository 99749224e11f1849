#!/bin/sh
# The tuf-conformance suite's entry point for ward: `ward tuf client` with
# the reference time taken from date(1). The suite fakes the clock of some
# runs with libfaketime, which reaches date(1) but not a static Go binary;
# the controller never takes its time this way. WARD_BIN overrides the
# binary (default: bin/ward beside this script's folder).
exec "${WARD_BIN:-$(dirname "$0")/../bin/ward}" tuf client --reference-time "$(date +%s)" "$@"
