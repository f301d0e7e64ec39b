#pragma once
#include <map>
#include <string>

#include "io/discovery/discovery_resolver.hpp"

namespace smtplb::testing {

// A DiscoveryResolver that answers from a table (the discover's name ->
// answer), TempFail for a name not in it, and counts what it was asked.
class FakeDiscoveryResolver final : public io::DiscoveryResolver {
  public:
    std::map<std::string, core::DiscoveryAnswer> table;
    std::map<std::string, int> asked;

    io::awaitable<core::DiscoveryAnswer> resolve(const config::Discover& discover) override {
        ++asked[discover.name];
        if (auto it = table.find(discover.name); it != table.end()) co_return it->second;
        co_return core::DiscoveryAnswer{};
    }
};

}  // namespace smtplb::testing
