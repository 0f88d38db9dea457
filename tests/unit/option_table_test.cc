// The table of settings (core/option_table.h) is well formed: one entry per Options member,
// unique config and state keys, the state's positions a permutation (their order is frozen),
// and a hook wherever the member's type has no handling of its own.
#include "core/option_table.h"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <variant>
#include <vector>

namespace einhorn::core {
namespace {

bool ByType(const Field& f) {
  return std::holds_alternative<int Options::*>(f) ||
         std::holds_alternative<double Options::*>(f) ||
         std::holds_alternative<bool Options::*>(f) ||
         std::holds_alternative<std::string Options::*>(f) ||
         std::holds_alternative<std::vector<std::string> Options::*>(f) ||
         std::holds_alternative<std::optional<int> Options::*>(f) ||
         std::holds_alternative<std::optional<double> Options::*>(f);
}

TEST_CASE("option table: keys, state keys and state positions are unique") {
  std::set<std::string> keys;
  std::set<std::string> state_keys;
  std::set<int> positions;
  std::vector<Field> fields;
  for (const OptionDef& d : OptionTable()) {
    INFO(d.key);
    CHECK(keys.insert(d.key).second);
    CHECK(state_keys.insert(d.StateKey()).second);
    CHECK(positions.insert(d.state_pos).second);
    for (const Field& f : fields) CHECK_FALSE(f == d.field);  // one entry per member
    fields.push_back(d.field);
    CHECK(FindOption(d.key) == &d);
  }
  const int n = static_cast<int>(OptionTable().size());
  CHECK(*positions.begin() == 0);
  CHECK(*positions.rbegin() == n - 1);
  REQUIRE(OptionsInStateOrder().size() == OptionTable().size());
  for (int i = 0; i < n; ++i) CHECK(OptionsInStateOrder()[i]->state_pos == i);
  CHECK(FindOption("no_such_key") == nullptr);
}

TEST_CASE("option table: a member of a type without its own handling has every hook") {
  for (const OptionDef& d : OptionTable()) {
    INFO(d.key);
    if (ByType(d.field)) continue;
    const bool reads = d.read != nullptr;
    const bool shows = d.show != nullptr;
    const bool flag_reads = !d.flag.names || d.from_flag != nullptr;
    CHECK(reads);
    CHECK(shows);
    CHECK(flag_reads);
  }
}

}  // namespace
}  // namespace einhorn::core
