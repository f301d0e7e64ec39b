#pragma once
#include <re2/re2.h>

#include <memory>
#include <string>

namespace smtplb::config {

// A [[route]] `recipient` pattern, compiled the one way both the loader
// (which refuses what RE2 refuses) and the router (which matches) use: RE2
// syntax, case-insensitive, UTF-8, matched against the whole address with
// RE2::FullMatch. RE2 runs in time linear in the address whatever the
// pattern (no backtracking), so a client-supplied address cannot stall an
// event loop; in exchange it has no backreferences and no lookaround. Check
// ok() and error() on the result.
std::unique_ptr<re2::RE2> compile_route_pattern(const std::string& pattern);

}  // namespace smtplb::config
