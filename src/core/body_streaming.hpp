#pragma once
#include <cstdint>
#include <optional>

#include "base/clock.hpp"

namespace smtplb::core {

// How a body is arriving, for the choice to stream it to the backend.
struct BodyProgress {
    std::uint64_t received = 0;             // octets stored so far
    base::Clock::Duration elapsed{};        // since the client's DATA
    std::optional<std::uint64_t> declared;  // the client's SIZE=, if any
    base::Clock::Duration hold_left{};      // before the hold lets the backend go
};

// Octets of body before streaming is considered: a smaller message goes
// whole at its end (one write), and the rate so far says little.
inline constexpr std::uint64_t kStreamFrom = 64 * 1024;

// Whether to stream the body to the backend now (Transaction::
// body_arriving). Streaming pays only when the whole body arrives before
// the hold lets the backend go: a body cut off there leaves the backend an
// aborted message (Postfix logs its Message-ID under a queue ID that is
// then dropped) and is replayed whole anyway. So: with SIZE=, when the rest
// would arrive, at the rate so far, within half the hold left; without
// it, when what came so far took at most a quarter of the hold left.
bool worth_streaming(const BodyProgress& progress);

}  // namespace smtplb::core
