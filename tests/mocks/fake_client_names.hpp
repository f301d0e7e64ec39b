#pragma once
#include <map>
#include <string>

#include "io/front/client_names.hpp"

namespace smtplb::testing {

// A ClientNameResolver that answers from a table (address text -> names),
// [UNAVAILABLE] for addresses not in it, and counts what it was asked.
class FakeClientNames final : public io::ClientNameResolver {
  public:
    std::map<std::string, core::ClientNames> table;
    std::map<std::string, int> asked;

    io::awaitable<core::ClientNames> lookup(base::IpAddress address) override {
        auto key = address.unmapped().to_string();
        ++asked[key];
        if (auto it = table.find(key); it != table.end()) co_return it->second;
        co_return core::ClientNames{std::string(core::kNameUnavailable),
                                    std::string(core::kNameUnavailable)};
    }
};

}  // namespace smtplb::testing
