#include <gtest/gtest.h>
#include <algorithm>

#include "config/loader.hpp"
#include "core/audit.hpp"

using namespace smtplb;

namespace {
std::vector<core::Finding> audit(const std::string& pool_extra, const std::string& backends,
                                 const std::string& listener_extra = "") {
    auto loaded = config::load_string(R"([server]
admin = ""
[[listener]]
name = "in"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "p"
)" + listener_extra + R"(
[[pool]]
name = "p"
)" + pool_extra + "\n" + backends,
                                      "t");
    EXPECT_TRUE(loaded.config) << loaded.diagnostics.format("t");
    return loaded.config ? core::audit_config(*loaded.config) : std::vector<core::Finding>{};
}
const char* kTwo = R"([[pool.backend]]
name = "a"
address = "127.0.0.1:26"
[[pool.backend]]
name = "b"
address = "127.0.0.1:27"
)";
bool has(const std::vector<core::Finding>& f, core::Finding::Severity s, const std::string& text) {
    for (const auto& x : f)
        if (x.severity == s && x.what.find(text) != std::string::npos) return true;
    return false;
}
}  // namespace

TEST(Audit, ASoundConfigurationHasNoFindings) {
    EXPECT_TRUE(audit("", kTwo).empty());
}

TEST(Audit, EachMistakeIsNamed) {
    using S = core::Finding::Severity;
    auto f = audit("health = { depth = \"banner\" }\npersistence = \"source_ip\"",
                   "[[pool.backend]]\nname = \"a\"\naddress = \"127.0.0.1:26\"\nweight = 5\n",
                   "client_identity = \"none\"\n");
    EXPECT_TRUE(has(f, S::Warning, "probes stop before MAIL FROM"));
    EXPECT_TRUE(has(f, S::Warning, "source_ip persistence"));
    EXPECT_TRUE(has(f, S::Warning, "see only the balancer's address"));
    EXPECT_TRUE(has(f, S::Note, "a single backend"));
    f = audit("algorithm = \"source_hash\"\nhealth = { enabled = false }",
              std::string(kTwo) +
                  "[[pool.backend]]\nname = \"c\"\naddress = \"127.0.0.1:28\"\n"
                  "weight = 4\n");
    EXPECT_TRUE(has(f, S::Warning, "source_hash"));
    EXPECT_TRUE(has(f, S::Warning, "no active probes"));
    EXPECT_TRUE(has(f, S::Note, "4 times the lightest"));
}

TEST(Audit, RelayListenerTrustingEveryoneIsAProblem) {
    auto loaded = config::load_string(R"([server]
admin = ""
[[listener]]
name = "out"
bind = "127.0.0.1:2525"
role = "relay"
trusted_networks = ["0.0.0.0/0"]
pool = "p"
[[pool]]
name = "p"
[[pool.backend]]
name = "a"
address = "127.0.0.1:26"
[[pool.backend]]
name = "b"
address = "127.0.0.1:27"
)",
                                      "t");
    ASSERT_TRUE(loaded.config);
    auto f = core::audit_config(*loaded.config);
    EXPECT_TRUE(has(f, core::Finding::Severity::Problem, "trusts every address"));
}

TEST(Audit, ProbeVerdictsBecomeFindings) {
    using S = core::Finding::Severity;
    core::ProbeIdentity xclient_ok{true, true, false, false};
    core::ProbeIdentity xclient_missing{false, true, false, false};
    core::ProbeIdentity none{false, false, false, false};
    proto::ProbeResult relayed{proto::ProbeVerdict::Healthy, "rcpt",
                               proto::Reply::make(250, "2.1.5", "Ok"), "ok", ""};
    auto f = core::audit_probe("b", relayed, xclient_ok);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, S::Problem);
    EXPECT_NE(f[0].what.find("250 2.1.5 Ok"), std::string::npos);
    proto::ProbeResult refused{proto::ProbeVerdict::Down, "rcpt",
                               proto::Reply::make(554, "5.7.1", "Relay access denied"), "x", ""};
    EXPECT_TRUE(core::audit_probe("b", refused, xclient_ok).empty());
    f = core::audit_probe("b", refused, xclient_missing);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_NE(f[0].what.find("XCLIENT"), std::string::npos);
    EXPECT_TRUE(core::audit_probe("b", refused, none).empty());
    proto::ProbeResult unreachable{proto::ProbeVerdict::Down, "connect", std::nullopt,
                                   "connection failed: refused", ""};
    f = core::audit_probe("b", unreachable, xclient_missing);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, S::Warning);
    EXPECT_NE(f[0].what.find("could not be checked"), std::string::npos);

    // PROXY listeners: a header the backend does not take, and an open relay
    // for the outside client the header names.
    core::ProbeIdentity proxy_refused{false, false, true, true};
    f = core::audit_probe("b", refused, proxy_refused);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, S::Problem);
    EXPECT_NE(f[0].what.find("does not take the PROXY header"), std::string::npos);
    core::ProbeIdentity proxy_ok{false, false, true, false};
    f = core::audit_probe("b", relayed, proxy_ok);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_NE(f[0].what.find("outside client named in the PROXY header"), std::string::npos);
    EXPECT_TRUE(core::audit_probe("b", refused, proxy_ok).empty());
}

TEST(Audit, RelayBatteryFormsAndVerdicts) {
    auto forms = core::relay_battery("192.0.2.25");
    ASSERT_GE(forms.size(), 5u);
    for (const auto& form : forms) {
        // Each hides the outside domain, and none is the plain attempt.
        EXPECT_NE(form.find("audit.invalid"), std::string::npos) << form;
        EXPECT_NE(form, core::kAuditRecipient);
    }
    EXPECT_NE(std::find(forms.begin(), forms.end(), "relay-test%audit.invalid@[192.0.2.25]"),
              forms.end());
    proto::ProbeResult accepted{proto::ProbeVerdict::Healthy, "rcpt",
                                proto::Reply::make(250, "2.1.5", "Ok"), "ok", ""};
    auto f = core::audit_relay_form("b", forms[0], accepted);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->severity, core::Finding::Severity::Problem);
    EXPECT_NE(f->what.find(forms[0]), std::string::npos);
    proto::ProbeResult refused{proto::ProbeVerdict::Down, "rcpt",
                               proto::Reply::make(554, "5.7.1", "Relay access denied"), "x", ""};
    EXPECT_FALSE(core::audit_relay_form("b", forms[0], refused));
    proto::ProbeResult busy{proto::ProbeVerdict::Busy, "mail",
                            proto::Reply::make(452, "4.3.1", "full"), "x", ""};
    EXPECT_FALSE(core::audit_relay_form("b", forms[0], busy));
}

TEST(Audit, MxRecordsAgainstTheBalancer) {
    using S = core::Finding::Severity;
    std::vector<std::string> balancer{"198.51.100.25"};
    core::MxLookup lookup{
        "example.net",
        true,
        "",
        {{10, "mx1.example.net", {"192.0.2.5"}}, {20, "lb.example.net", {"198.51.100.25"}}}};
    auto f = core::audit_mx(lookup, balancer, false);
    EXPECT_TRUE(has(f, S::Problem, "backup MX lb.example.net (preference 20) is this balancer"));
    EXPECT_FALSE(has(core::audit_mx(lookup, balancer, true), S::Problem, "backup MX"));

    core::MxLookup single{"example.org", true, "", {{10, "lb.example.net", {"198.51.100.25"}}}};
    EXPECT_TRUE(has(core::audit_mx(single, balancer, true), S::Warning, "a single MX"));

    core::MxLookup gone{"gone.example", false, "", {}};
    EXPECT_TRUE(has(core::audit_mx(gone, balancer, true), S::Problem, "NXDOMAIN"));
    core::MxLookup none{"none.example", true, "", {}};
    EXPECT_TRUE(has(core::audit_mx(none, balancer, true), S::Warning, "no MX records"));
    core::MxLookup failed{"x.example", true, "no answer from the DNS server", {}};
    f = core::audit_mx(failed, balancer, true);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].severity, S::Warning);
    core::MxLookup dangling{"d.example", true, "", {{10, "nowhere.d.example", {}}}};
    EXPECT_TRUE(has(core::audit_mx(dangling, balancer, true), S::Problem, "no A or AAAA"));
}
