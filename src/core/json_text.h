// Writing JSON by hand where the core needs it (JSON log lines, the `events` reply) without a
// JSON library in src/core. Only the two things that need care: strings and numbers.
#pragma once

#include <string>
#include <string_view>

namespace einhorn::core {

// A JSON string literal, quotes included. Always valid JSON and valid UTF-8 whatever the bytes:
// '"', '\\' and control characters are escaped (\n \r \t, others \u00XX; also DEL, U+2028 and
// U+2029, which some readers take for line breaks), and a byte that is not part of valid UTF-8
// becomes U+FFFD. Since JSON is YAML 1.2, the result is also a double-quoted YAML scalar.
void AppendJsonString(std::string& out, std::string_view s);
std::string JsonString(std::string_view s);

// The shortest decimal that reads back as the same double ("0.25", "3", "1e+21"); "null" for
// NaN and the infinities, which JSON cannot hold.
void AppendJsonNumber(std::string& out, double value);

}  // namespace einhorn::core
