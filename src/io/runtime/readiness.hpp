#pragma once
#include "io/asio.hpp"

namespace smtplb::io {

// Asio tries every read on a socket before it waits for epoll to report
// data ("speculative" reads), so a read started right after a request was
// sent, before the peer can have answered, costs a system call that finds
// nothing: about five per relayed message. Asio's epoll reactor already
// knows how to skip that try (a per-socket flag it clears on end of stream
// and sets again on every readiness event); these functions let smtplb
// clear it too, when it has just seen the socket drained.
//
// The flag is private to Asio, so this is tied to the Asio it was checked
// against (Boost 1.81, epoll). With any other, kSupported is false and
// the functions do nothing: reads are then plain Asio reads. One thread
// runs each event loop, and a socket stays with its loop's reactor, so the
// flag needs no lock of Asio's.
//
// The rule that keeps it correct: mark a socket drained only when, since
// the read that found it drained, the event loop has not had a chance to
// take a readiness event for it. Then any later data brings a new event
// (epoll is edge-triggered), that event sets the flag again, and Asio
// performs the waiting read. Marked wrongly, a read would wait for the
// next data or for its timeout: hence the narrow rule.
namespace readiness {

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define SMTPLB_READINESS_SUPPORTED 1
#else
#define SMTPLB_READINESS_SUPPORTED 0
#endif
inline constexpr bool kSupported = SMTPLB_READINESS_SUPPORTED;
// No readiness event since the socket was last marked drained.
bool drained(tcp::socket& socket);
void mark_drained(tcp::socket& socket);

}  // namespace readiness
}  // namespace smtplb::io
