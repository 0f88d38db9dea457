// einhornctl's interactive shell, like Einhorn's einhornsh: one connection to the master, one
// command per line. Pure like commands.h: the lines come from the context's stream.
#pragma once

#include "ctl/cli.h"
#include "ctl/commands.h"

namespace einhorn::ctl {

// ehlo, then one request per line until quit, exit or the end of the input. Exit code 0, or
// kExitUnreachable when the master cannot be reached or goes away.
int Shell(const Invocation& invocation, Context& context);

}  // namespace einhorn::ctl
