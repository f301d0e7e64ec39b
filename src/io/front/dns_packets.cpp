#include "io/front/dns_packets.hpp"

#include <ldns/ldns.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace smtplb::io {
namespace {

struct PacketFree {
    void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
using Packet = std::unique_ptr<ldns_pkt, PacketFree>;
struct RdfFree {
    void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
using Rdf = std::unique_ptr<ldns_rdf, RdfFree>;

bool same_name(const ldns_rdf* a, const ldns_rdf* b) {
    return a && b && ldns_rdf_get_type(a) == LDNS_RDF_TYPE_DNAME &&
           ldns_rdf_get_type(b) == LDNS_RDF_TYPE_DNAME && ldns_dname_compare(a, b) == 0;
}

std::optional<std::uint16_t> number16(const ldns_rdf* rdf) {
    if (!rdf || ldns_rdf_size(rdf) != 2) return std::nullopt;
    return ldns_rdf2native_int16(rdf);
}

// An MX (preference, exchange) or SRV (priority, weight, port, target).
bool service_record(const ldns_rr* rr, std::uint16_t type, core::DnsAnswer& out) {
    bool mx = type == kDnsTypeMx;
    std::size_t fields = mx ? 2 : 4;
    if (ldns_rr_rd_count(rr) < fields) return false;
    const ldns_rdf* host = ldns_rr_rdf(rr, fields - 1);
    if (!host || ldns_rdf_get_type(host) != LDNS_RDF_TYPE_DNAME) return false;
    core::ServiceRecord record;
    auto priority = number16(ldns_rr_rdf(rr, 0));
    if (!priority) return false;
    record.priority = *priority;
    if (!mx) {
        auto weight = number16(ldns_rr_rdf(rr, 1));
        auto port = number16(ldns_rr_rdf(rr, 2));
        if (!weight || !port) return false;
        record.weight = *weight;
        record.port = *port;
    }
    record.host = dname_text(host);
    out.services.push_back(std::move(record));
    return true;
}

// The records of `type` for `name`, following at most a few CNAMEs.
void collect(const ldns_rr_list* answers, const ldns_rdf* name, std::uint16_t type,
             core::DnsAnswer& out) {
    const ldns_rdf* current = name;
    for (int hops = 0; hops < 8 && current; ++hops) {
        const ldns_rdf* next = nullptr;
        for (std::size_t i = 0; i < ldns_rr_list_rr_count(answers); ++i) {
            const ldns_rr* rr = ldns_rr_list_rr(answers, i);
            if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || !same_name(ldns_rr_owner(rr), current))
                continue;
            auto rr_type = static_cast<std::uint16_t>(ldns_rr_get_type(rr));
            const ldns_rdf* data = ldns_rr_rd_count(rr) > 0 ? ldns_rr_rdf(rr, 0) : nullptr;
            if (!data) continue;
            if (rr_type == LDNS_RR_TYPE_CNAME && type != LDNS_RR_TYPE_CNAME) {
                if (ldns_rdf_get_type(data) == LDNS_RDF_TYPE_DNAME) next = data;
                continue;
            }
            if (rr_type != type) continue;
            bool used = false;
            if (type == kDnsTypeMx || type == kDnsTypeSrv) {
                used = service_record(rr, type, out);
            } else if (type == kDnsTypePtr && ldns_rdf_get_type(data) == LDNS_RDF_TYPE_DNAME) {
                out.names.push_back(dname_text(data));
                used = true;
            } else if (type == kDnsTypeA || type == kDnsTypeAaaa) {
                std::size_t size = type == kDnsTypeA ? 4 : 16;
                if (ldns_rdf_size(data) == size) {
                    base::IpAddress address;
                    address.v6 = type == kDnsTypeAaaa;
                    std::memcpy(address.bytes.data(), ldns_rdf_data(data), size);
                    out.addresses.push_back(address);
                    used = true;
                }
            }
            if (used) out.ttl = std::min(out.ttl.value_or(UINT32_MAX), ldns_rr_ttl(rr));
        }
        if (!out.names.empty() || !out.addresses.empty() || !out.services.empty()) return;
        current = next;
    }
}

// RFC 2308 §5: a negative answer lives for the SOA's TTL, at most its MINIMUM.
std::optional<std::uint32_t> negative_ttl(const ldns_pkt* packet) {
    const ldns_rr_list* authority = ldns_pkt_authority(packet);
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(authority); ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(authority, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA || ldns_rr_rd_count(rr) < 7) continue;
        const ldns_rdf* minimum = ldns_rr_rdf(rr, 6);
        if (ldns_rdf_size(minimum) != 4) continue;
        return std::min(ldns_rr_ttl(rr), ldns_rdf2native_int32(minimum));
    }
    return std::nullopt;
}

}  // namespace

std::string dname_text(const ldns_struct_rdf* rdf) {
    char* text = ldns_rdf2str(rdf);
    std::string out = text ? text : "";
    free(text);
    if (!out.empty() && out.back() == '.') out.pop_back();
    return out;
}

std::vector<std::uint8_t> dns_query(const DnsQuestion& question, std::uint16_t id) {
    ldns_rdf* name = ldns_dname_new_frm_str(question.name.c_str());
    if (!name) return {};
    Packet packet(ldns_pkt_query_new(name, static_cast<ldns_rr_type>(question.type),
                                     LDNS_RR_CLASS_IN, LDNS_RD));
    if (!packet) return {};
    ldns_pkt_set_id(packet.get(), id);
    ldns_pkt_set_edns_udp_size(packet.get(), kDnsUdpSize);
    std::uint8_t* wire = nullptr;
    std::size_t size = 0;
    if (ldns_pkt2wire(&wire, packet.get(), &size) != LDNS_STATUS_OK || !wire) return {};
    std::vector<std::uint8_t> out(wire, wire + size);
    free(wire);
    return out;
}

std::optional<core::DnsAnswer> dns_answer(std::span<const std::uint8_t> reply,
                                          const DnsQuestion& question, std::uint16_t id) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, reply.data(), reply.size()) != LDNS_STATUS_OK || !raw)
        return std::nullopt;
    Packet packet(raw);
    if (ldns_pkt_id(raw) != id || !ldns_pkt_qr(raw)) return std::nullopt;
    // The question must come back as asked (RFC 5452 §9.1).
    Rdf name(ldns_dname_new_frm_str(question.name.c_str()));
    const ldns_rr_list* asked = ldns_pkt_question(raw);
    if (!name || ldns_rr_list_rr_count(asked) != 1) return std::nullopt;
    const ldns_rr* q = ldns_rr_list_rr(asked, 0);
    if (static_cast<std::uint16_t>(ldns_rr_get_type(q)) != question.type ||
        ldns_rr_get_class(q) != LDNS_RR_CLASS_IN || !same_name(ldns_rr_owner(q), name.get()))
        return std::nullopt;

    core::DnsAnswer answer;
    collect(ldns_pkt_answer(raw), name.get(), question.type, answer);
    bool records = !answer.names.empty() || !answer.addresses.empty() || !answer.services.empty();
    answer.status =
        core::answer_status(static_cast<int>(ldns_pkt_get_rcode(raw)), ldns_pkt_tc(raw), records);
    if (answer.status == core::DnsStatus::NoName) answer.negative_ttl = negative_ttl(raw);
    if (answer.status != core::DnsStatus::Ok) {
        answer.names.clear();
        answer.addresses.clear();
        answer.services.clear();
        answer.ttl.reset();
    }
    return answer;
}

}  // namespace smtplb::io
