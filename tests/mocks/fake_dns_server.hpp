#pragma once
// A tiny DNS server for io tests: a UDP responder on loopback (ldns builds
// its answers) that answers from a table, or stays silent, and records the
// questions it got. Records are in zone file syntax, by "name TYPE" (TYPE
// numeric); a name not in the table is NXDOMAIN.
#include <ldns/ldns.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "io/asio.hpp"

namespace smtplb::testing {

namespace asio = io::asio;
using io::asio::ip::udp;

class FakeDns {
  public:
    explicit FakeDns(asio::io_context& io)
        : socket_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        asio::co_spawn(io, serve(), asio::detached);
    }
    ~FakeDns() {
        io::error_code ec;
        socket_.close(ec);
    }
    udp::endpoint endpoint() const { return socket_.local_endpoint(); }

    // "name TYPE" (TYPE numeric) -> records in zone file syntax.
    std::map<std::string, std::vector<std::string>> records;
    std::map<std::string, int> rcodes;  // "name TYPE" -> an rcode to answer with
    bool silent = false;
    std::vector<std::string> asked;

  private:
    io::awaitable<void> serve() {
        std::array<std::uint8_t, 2048> buffer;
        for (;;) {
            udp::endpoint from;
            auto [ec, n] =
                co_await socket_.async_receive_from(asio::buffer(buffer), from, io::use_nothrow);
            if (ec == asio::error::operation_aborted || !socket_.is_open()) co_return;
            if (ec) continue;
            auto reply = answer(buffer.data(), n);
            if (silent || reply.empty()) continue;
            auto [send_ec, sent] =
                co_await socket_.async_send_to(asio::buffer(reply), from, io::use_nothrow);
            (void)send_ec;
        }
    }

    std::vector<std::uint8_t> answer(const std::uint8_t* data, std::size_t size) {
        ldns_pkt* query = nullptr;
        if (ldns_wire2pkt(&query, data, size) != LDNS_STATUS_OK) return {};
        const ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(query), 0);
        char* owner = ldns_rdf2str(ldns_rr_owner(question));
        std::string name = owner;
        free(owner);
        if (!name.empty() && name.back() == '.') name.pop_back();
        auto key = name + " " + std::to_string(static_cast<int>(ldns_rr_get_type(question)));
        asked.push_back(key);

        ldns_pkt* reply = ldns_pkt_new();
        ldns_pkt_set_id(reply, ldns_pkt_id(query));
        ldns_pkt_set_qr(reply, true);
        ldns_pkt_set_aa(reply, true);
        ldns_pkt_set_rd(reply, ldns_pkt_rd(query));
        ldns_pkt_push_rr(reply, LDNS_SECTION_QUESTION, ldns_rr_clone(question));
        auto push = [&](ldns_pkt_section section, const std::string& text) {
            ldns_rr* rr = nullptr;
            if (ldns_rr_new_frm_str(&rr, text.c_str(), 0, nullptr, nullptr) == LDNS_STATUS_OK)
                ldns_pkt_push_rr(reply, section, rr);
        };
        if (auto it = records.find(key); it != records.end()) {
            for (const auto& text : it->second)
                push(LDNS_SECTION_ANSWER, text);
        } else if (auto rc = rcodes.find(key); rc != rcodes.end()) {
            ldns_pkt_set_rcode(reply, static_cast<std::uint8_t>(rc->second));
        } else {
            ldns_pkt_set_rcode(reply, LDNS_RCODE_NXDOMAIN);
            push(LDNS_SECTION_AUTHORITY, "test. 30 IN SOA ns.test. host.test. 1 3600 600 86400 30");
        }
        std::uint8_t* wire = nullptr;
        std::size_t wire_size = 0;
        std::vector<std::uint8_t> out;
        if (ldns_pkt2wire(&wire, reply, &wire_size) == LDNS_STATUS_OK)
            out.assign(wire, wire + wire_size);
        free(wire);
        ldns_pkt_free(reply);
        ldns_pkt_free(query);
        return out;
    }

    udp::socket socket_;
};

}  // namespace smtplb::testing
