#include "io/runtime/readiness.hpp"

#include <sys/epoll.h>

#include <cstdint>

namespace smtplb::io::readiness {

#if SMTPLB_READINESS_SUPPORTED
namespace {

namespace detail = asio::detail;
using Reactor = detail::epoll_reactor;
using SocketBase = asio::basic_socket<tcp, asio::any_io_executor>;
using SocketImpl =
    detail::io_object_impl<detail::reactive_socket_service<tcp>, asio::any_io_executor>;

// A pointer to a private member, taken where C++ allows it: access is not
// checked in an explicit instantiation's arguments ([temp.spec.general]).
template <typename Tag, typename Tag::type Member>
struct Expose {
    friend typename Tag::type member(Tag) { return Member; }
};
struct ImplTag {
    using type = SocketImpl SocketBase::*;
    friend type member(ImplTag);
};
struct SpeculativeTag {
    using type = bool (Reactor::descriptor_state::*)[Reactor::max_ops];
    friend type member(SpeculativeTag);
};
struct RegisteredTag {
    using type = std::uint32_t Reactor::descriptor_state::*;
    friend type member(RegisteredTag);
};
struct EventsTag {
    using type = unsigned int detail::scheduler_operation::*;
    friend type member(EventsTag);
};
struct EpollTag {
    using type = int Reactor::*;
    friend type member(EpollTag);
};
template struct Expose<ImplTag, &SocketBase::impl_>;
template struct Expose<SpeculativeTag, &Reactor::descriptor_state::try_speculative_>;
template struct Expose<RegisteredTag, &Reactor::descriptor_state::registered_events_>;
template struct Expose<EventsTag, &detail::scheduler_operation::task_result_>;
template struct Expose<EpollTag, &Reactor::epoll_fd_>;

Reactor::descriptor_state* state_of(tcp::socket& socket) {
    SocketBase& base = socket;
    return (base.*member(ImplTag{})).get_implementation().reactor_data_;
}

// The events epoll last reported for the socket. Asio keeps them in the
// descriptor's operation base, a private base: a C-style cast may name it.
unsigned& events_of(Reactor::descriptor_state* state) {
    auto* base = (detail::scheduler_operation*)state;  // NOLINT
    return base->*member(EventsTag{});
}

// Asio registers sockets without EPOLLRDHUP, so its events do not say
// whether the peer's FIN came along with the data just read; a read that
// emptied the socket then proves nothing. Added once per socket, and kept
// in Asio's own record so its later changes of the registration keep it.
bool reports_end_of_stream(tcp::socket& socket, Reactor::descriptor_state* state) {
    auto& registered = state->*member(RegisteredTag{});
    if (registered & EPOLLRDHUP) return true;
    // Asio reuses descriptor records: an EPOLLRDHUP still there was the
    // previous socket's (this one never asked for it). Asio itself ignores
    // the bit.
    events_of(state) &= ~unsigned{EPOLLRDHUP};
    auto& reactor =
        asio::use_service<Reactor>(asio::query(socket.get_executor(), asio::execution::context));
    epoll_event event{};
    event.events = registered | EPOLLRDHUP;
    event.data.ptr = state;
    // Re-arming reports anything readable now (edge-triggered epoll), so
    // an end of stream that came before this is not missed either.
    if (::epoll_ctl(reactor.*member(EpollTag{}), EPOLL_CTL_MOD, socket.native_handle(), &event) !=
        0)
        return false;
    registered = event.events;
    return true;
}

}  // namespace

bool drained(tcp::socket& socket) {
    auto* state = state_of(socket);
    return state && !(state->*member(SpeculativeTag{}))[Reactor::read_op];
}

void mark_drained(tcp::socket& socket) {
    auto* state = state_of(socket);
    if (!state || !reports_end_of_stream(socket, state)) return;
    // The peer has closed its side: the next read finds the end at once.
    if (events_of(state) & EPOLLRDHUP) return;
    (state->*member(SpeculativeTag{}))[Reactor::read_op] = false;
}

#else
bool drained(tcp::socket&) {
    return false;
}
void mark_drained(tcp::socket&) {}
#endif

}  // namespace smtplb::io::readiness
