// The telemetry section of the re-exec state (core/state.h): the counters, the histograms and
// the event ring, so that a reload or an upgrade (which re-execs the master first) keeps the
// pool's history and its metrics do not reset. Written with the format's building blocks
// (state_format.h); decoding refuses what EncodeTelemetry never writes (histograms with other
// buckets, unknown command labels, events out of sequence), naming the key path.
#pragma once

#include "core/state_format.h"
#include "core/telemetry.h"

namespace einhorn::core::state_format {

class BlockIn;

void EncodeTelemetry(const Telemetry::Snapshot& telemetry, Block b);
Telemetry::Snapshot DecodeTelemetry(const In& in);
// The same, read by the canonical reader (core/state_stream.h) from the section's entries.
Telemetry::Snapshot StreamTelemetry(BlockIn& section);

}  // namespace einhorn::core::state_format
