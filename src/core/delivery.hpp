#pragma once
#include "proto/reply.hpp"

namespace smtplb::core {

// What one backend's reply means for the transaction (DESIGN.md delivery contract).
enum class Verdict {
    Accepted,      // 2xx/3xx: go on with this backend
    Rejected,      // 5xx: the client gets this reply unchanged
    TryElsewhere,  // 4xx: replay the transaction on another backend
};

Verdict classify(const proto::Reply& reply);

// The client's reply when no backend could take the transaction.
proto::Reply no_backend_reply();
// A backend's reply as passed to the client: code, enhanced code and text are
// kept; a reply without an enhanced code gets the generic one of its class.
proto::Reply relay_reply(const proto::Reply& backend_reply);
// The last backend's 4xx, as the client's reply when every backend deferred
// (relay_reply): a 421 becomes 451 with the same enhanced code and text,
// because smtplb keeps the client's connection open (421 says it closes).
proto::Reply deferral_reply(const proto::Reply& backend_reply);

}  // namespace smtplb::core
