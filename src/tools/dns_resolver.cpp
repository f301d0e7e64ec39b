#include "tools/dns_resolver.hpp"

#include <ldns/ldns.h>

#include <algorithm>

#include "io/front/dns_packets.hpp"

namespace smtplb::tools {
namespace {

class LdnsResolver final : public DnsResolver {
  public:
    explicit LdnsResolver(ldns_resolver* resolver) : resolver_(resolver) {}
    ~LdnsResolver() override { ldns_resolver_deep_free(resolver_); }

    core::MxLookup mx(const std::string& domain) override {
        core::MxLookup lookup;
        lookup.domain = domain;
        ldns_pkt* answer = query(domain, LDNS_RR_TYPE_MX);
        if (!answer) {
            lookup.error = "no answer from the DNS server";
            return lookup;
        }
        auto rcode = ldns_pkt_get_rcode(answer);
        if (rcode == LDNS_RCODE_NXDOMAIN) {
            lookup.exists = false;
        } else if (rcode != LDNS_RCODE_NOERROR) {
            lookup.error = "the DNS server answered rcode " + std::to_string(rcode);
        } else if (ldns_rr_list* mx =
                       ldns_pkt_rr_list_by_type(answer, LDNS_RR_TYPE_MX, LDNS_SECTION_ANSWER)) {
            for (std::size_t i = 0; i < ldns_rr_list_rr_count(mx); ++i) {
                ldns_rr* rr = ldns_rr_list_rr(mx, i);
                if (ldns_rr_rd_count(rr) < 2) continue;
                core::MxRecord record;
                record.preference = ldns_rdf2native_int16(ldns_rr_rdf(rr, 0));
                record.host = io::dname_text(ldns_rr_rdf(rr, 1));
                for (auto type : {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA})
                    addresses(record.host, type, record.addresses);
                lookup.records.push_back(std::move(record));
            }
            ldns_rr_list_deep_free(mx);
        }
        ldns_pkt_free(answer);
        std::sort(lookup.records.begin(), lookup.records.end(),
                  [](const auto& a, const auto& b) { return a.preference < b.preference; });
        return lookup;
    }

  private:
    ldns_pkt* query(const std::string& name, ldns_rr_type type) {
        ldns_rdf* dname = ldns_dname_new_frm_str(name.c_str());
        if (!dname) return nullptr;
        ldns_pkt* answer = ldns_resolver_query(resolver_, dname, type, LDNS_RR_CLASS_IN, LDNS_RD);
        ldns_rdf_deep_free(dname);
        return answer;
    }

    void addresses(const std::string& host, ldns_rr_type type, std::vector<std::string>& out) {
        ldns_pkt* answer = query(host, type);
        if (!answer) return;
        if (ldns_rr_list* list = ldns_pkt_rr_list_by_type(answer, type, LDNS_SECTION_ANSWER)) {
            for (std::size_t i = 0; i < ldns_rr_list_rr_count(list); ++i)
                out.push_back(io::dname_text(ldns_rr_rdf(ldns_rr_list_rr(list, i), 0)));
            ldns_rr_list_deep_free(list);
        }
        ldns_pkt_free(answer);
    }

    ldns_resolver* resolver_;
};

}  // namespace

std::unique_ptr<DnsResolver> make_dns_resolver(const std::optional<base::HostPort>& server,
                                               std::string& error) {
    ldns_resolver* resolver = nullptr;
    if (!server) {
        if (ldns_resolver_new_frm_file(&resolver, nullptr) != LDNS_STATUS_OK) {
            error = "cannot read the system's resolvers (/etc/resolv.conf)";
            return nullptr;
        }
    } else {
        resolver = ldns_resolver_new();
        bool v6 = server->host.find(':') != std::string::npos;
        ldns_rdf* address =
            ldns_rdf_new_frm_str(v6 ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, server->host.c_str());
        if (!resolver || !address ||
            ldns_resolver_push_nameserver(resolver, address) != LDNS_STATUS_OK) {
            if (address) ldns_rdf_deep_free(address);
            if (resolver) ldns_resolver_deep_free(resolver);
            error = "cannot use DNS server " + server->to_string();
            return nullptr;
        }
        ldns_rdf_deep_free(address);
        ldns_resolver_set_port(resolver, server->port);
    }
    ldns_resolver_set_retry(resolver, 2);
    timeval timeout{3, 0};
    ldns_resolver_set_timeout(resolver, timeout);
    return std::make_unique<LdnsResolver>(resolver);
}

}  // namespace smtplb::tools
