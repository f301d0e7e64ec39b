#pragma once
#include <chrono>
#include <vector>

#include "core/client_names.hpp"
#include "io/asio.hpp"
#include "io/front/dns_packets.hpp"

namespace smtplb::io {

// Asks `question` of the first of `servers` over UDP and, when it does not
// answer in its share of the time or answers with a temporary failure, of
// the next one (the same one when there is only one). `later` attempts of
// other questions follow before `deadline` and get their share of what is
// left. Never blocks the loop; TempFail when nobody answered in time.
// Used by the client name lookups and by pool discovery.
awaitable<core::DnsAnswer> ask_dns(const asio::any_io_executor& executor,
                                   const std::vector<asio::ip::udp::endpoint>& servers,
                                   const DnsQuestion& question,
                                   std::chrono::steady_clock::time_point deadline, int later);

}  // namespace smtplb::io
