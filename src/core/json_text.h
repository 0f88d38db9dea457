// JSON strings and numbers for the core's hand-written JSON (JSON log lines, the `events`
// reply): the names its users and tests know, over core/text.h, which does the work.
#pragma once

#include <string>
#include <string_view>

#include "core/text.h"

namespace einhorn::core {

// A JSON string literal, quotes included (text::Quote::kJson). Always valid JSON and valid
// UTF-8 whatever the bytes; since JSON is YAML 1.2, also a double-quoted YAML scalar.
inline void AppendJsonString(std::string& out, std::string_view s) {
  text::AppendQuoted(out, s, text::Quote::kJson);
}
inline std::string JsonString(std::string_view s) { return text::Quoted(s, text::Quote::kJson); }

// The shortest decimal that reads back as the same double; "null" for NaN and the infinities.
inline void AppendJsonNumber(std::string& out, double value) { text::AppendJsonNumber(out, value); }

}  // namespace einhorn::core
