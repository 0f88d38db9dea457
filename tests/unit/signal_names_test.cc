// Signal names as the `signal` and `die` verbs take them: every signal of Ruby's Signal.list on
// Linux but EXIT, normalised as Einhorn does (upcase, a leading SIG dropped).
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "core/types.h"

namespace einhorn::core {
namespace {

// Ruby 3.1's Signal.list on Linux x86-64, EXIT and the aliases left out (`ruby -e 'p
// Signal.list'`).
constexpr const char* kRubySignals[] = {
    "HUP",  "INT",  "QUIT", "ILL",  "TRAP",   "ABRT", "FPE",   "KILL", "BUS",  "SEGV",
    "SYS",  "PIPE", "ALRM", "TERM", "URG",    "STOP", "TSTP",  "CONT", "CHLD", "TTIN",
    "TTOU", "IO",   "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "USR1", "USR2", "PWR",
};

TEST_CASE("signal names: every name of Ruby's Signal.list parses, with or without SIG, any case") {
  std::set<Signal> seen;
  for (const std::string name : kRubySignals) {
    CAPTURE(name);
    Signal bare{};
    REQUIRE(ParseSignalName(name, &bare));
    CHECK(std::string(SignalName(bare)) == "SIG" + name);
    seen.insert(bare);
    Signal s{};
    REQUIRE(ParseSignalName("SIG" + name, &s));
    CHECK(s == bare);
    std::string lower = "sig" + name;
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    REQUIRE(ParseSignalName(lower, &s));
    CHECK(s == bare);
    REQUIRE(ParseSignalName("Sig" + lower.substr(3), &s));
    CHECK(s == bare);
  }
  // One Signal each, and the table names exactly these.
  CHECK(seen.size() == std::size(kRubySignals));
  CHECK(kSignalNames.size() == std::size(kRubySignals));
  for (const auto& [sig, name] : kSignalNames) {
    CHECK(std::string(SignalName(sig)) == name);
    Signal back{};
    REQUIRE(ParseSignalName(std::string(name), &back));
    CHECK(back == sig);
  }
}

TEST_CASE("signal names: Ruby's aliases IOT, CLD and POLL") {
  Signal s{};
  REQUIRE(ParseSignalName("IOT", &s));
  CHECK(s == Signal::kAbrt);
  REQUIRE(ParseSignalName("sigcld", &s));
  CHECK(s == Signal::kChld);
  REQUIRE(ParseSignalName("Poll", &s));
  CHECK(s == Signal::kIo);
}

TEST_CASE("signal names: what Einhorn refuses is refused") {
  Signal s = Signal::kUsr2;
  const std::vector<std::string> refused = {
      "",     "SIG",       "sig",        "BOGUS",      "SIGNOPE",
      "9",    "0",         "-9",         "SIG9",       "15",
      "EXIT", "SIGEXIT",   "RTMIN",      "SIGRTMIN+1", "STKFLT",
      "EMT",  "INFO",      "LOST",       "SIGSIGHUP",  " HUP",
      "HUP ", "HUP\n",     "SIGHUP\n\n", "SIGH\nUP",   std::string("HUP\0", 4),
      "\xff", "h\xc3\xbcp"};
  for (const std::string& bad : refused) {
    CAPTURE(bad);
    CHECK_FALSE(ParseSignalName(bad, &s));
  }
  CHECK(s == Signal::kUsr2);  // untouched
}

TEST_CASE("signal names: normalised as Einhorn does (upcased and a leading SIG dropped)") {
  CHECK(NormalizeSignalArg("usr2") == "USR2");
  CHECK(NormalizeSignalArg("SIGusr2") == "USR2");
  CHECK(NormalizeSignalArg("sig") == "");
  CHECK(NormalizeSignalArg("sigsighup") == "SIGHUP");
  CHECK(NormalizeSignalArg("9") == "9");
  CHECK(NormalizeSignalArg("a\"b") == "A\"B");
  // \Z matches before one final newline, and . stops at newlines.
  CHECK(NormalizeSignalArg("sighup\n") == "HUP");
  CHECK(NormalizeSignalArg("SIG\n") == "");
  CHECK(NormalizeSignalArg("hup\n") == "HUP\n");
  CHECK(NormalizeSignalArg("sighup\n\n") == "SIGHUP\n\n");
  CHECK(NormalizeSignalArg("sigh\nup") == "SIGH\nUP");
  Signal s{};
  REQUIRE(ParseSignalName("sighup\n", &s));  // Einhorn sends HUP for this one
  CHECK(s == Signal::kHup);
  // Ruby's String#upcase maps a few non-ASCII characters to ASCII: "\u0131" (dotless i) is I,
  // "\ufb06" (the st ligature) is ST, "\u00df" is SS. Einhorn accepts "\u0131nt" as INT.
  CHECK(NormalizeSignalArg("\u0131nt") == "INT");
  CHECK(NormalizeSignalArg("t\ufb06p") == "TSTP");
  CHECK(NormalizeSignalArg("\u017fig\u0131nt") == "INT");
  CHECK(NormalizeSignalArg("\u00df") == "SS");
  REQUIRE(ParseSignalName("t\ufb05p", &s));
  CHECK(s == Signal::kTstp);
  // Anything else non-ASCII is left as it is (and never makes a valid name).
  CHECK(NormalizeSignalArg("h\xc3\xbcp") == "H\xc3\xbcP");
  CHECK(NormalizeSignalArg("\xff\xc4") == "\xff\xc4");  // a truncated sequence
}

}  // namespace
}  // namespace einhorn::core
