#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "core/audit_routing.hpp"

using namespace smtplb;
using core::Finding;
using S = Finding::Severity;

namespace {

// A transparent listener in front of one IPv4 and one IPv6 backend, and a
// plain listener whose backend the audit must leave alone.
config::Config load(const std::string& identity = "transparent") {
    auto loaded = config::load_string(R"([server]
admin = ""
[[listener]]
name = "edge"
bind = "0.0.0.0:25"
accepted_domains = ["example.net"]
pool = "hubs"
client_identity = ")" + identity + R"("
[[pool]]
name = "hubs"
[[pool.backend]]
name = "hub4"
address = "10.1.1.21:25"
[[pool.backend]]
name = "hub6"
address = "[fd00:1::21]:25"
)",
                                      "t");
    EXPECT_TRUE(loaded.config) << loaded.diagnostics.format("t");
    return *loaded.config;
}

// The host as the recipe leaves it: eth1 faces both backends.
core::RoutingFacts recipe_in_place() {
    core::RoutingFacts f;
    for (bool v6 : {false, true}) {
        f.rules.push_back({v6, "", std::nullopt, "local"});
        f.rules.push_back({v6, "eth1", std::nullopt, "100"});
        f.rules.push_back({v6, "", std::nullopt, "main"});
        f.routes.push_back({v6, "100", "local", "default"});
        f.routes.push_back({v6, "main", "unicast", "default"});
    }
    f.paths.push_back({"10.1.1.21", "eth1", "10.1.1.1", ""});
    f.paths.push_back({"fd00:1::21", "eth1", "fd00:1::1", ""});
    return f;
}

std::vector<Finding> only(const std::vector<Finding>& all, S severity) {
    std::vector<Finding> out;
    for (const auto& f : all)
        if (f.severity == severity) out.push_back(f);
    return out;
}

std::string dump(const std::vector<Finding>& all) {
    std::string out;
    for (const auto& f : all)
        out += std::string(core::to_string(f.severity)) + ": " + f.where + ": " + f.what +
               " | fix: " + f.fix + "\n";
    return out;
}

}  // namespace

TEST(AuditRouting, OnlyTransparentListenersAreChecked) {
    EXPECT_TRUE(core::transparent_targets(load("xclient")).empty());
    EXPECT_TRUE(core::audit_transparent_routing(load("xclient"), {}).empty());
    auto targets = core::transparent_targets(load("transparent+xclient"));
    ASSERT_EQ(targets.size(), 2u);
    EXPECT_EQ(targets[0].address, "10.1.1.21");
    EXPECT_EQ(targets[1].address, "fd00:1::21");
    EXPECT_EQ(targets[1].backend, "hubs/hub6");
}

TEST(AuditRouting, RecipeInPlaceLeavesOnlyTheNoteAboutTheBackendsRoute) {
    auto findings = core::audit_transparent_routing(load(), recipe_in_place());
    EXPECT_TRUE(only(findings, S::Problem).empty()) << dump(findings);
    EXPECT_TRUE(only(findings, S::Warning).empty()) << dump(findings);
    auto notes = only(findings, S::Note);
    ASSERT_EQ(notes.size(), 2u) << dump(findings);  // one per family
    EXPECT_NE(notes[0].fix.find("via 10.1.1.1"), std::string::npos) << dump(findings);
}

TEST(AuditRouting, MissingRuleAndRouteSaysBothCommands) {
    auto facts = recipe_in_place();
    facts.rules.clear();
    facts.routes.clear();
    auto problems = only(core::audit_transparent_routing(load(), facts), S::Problem);
    ASSERT_EQ(problems.size(), 2u) << dump(problems);
    EXPECT_NE(problems[0].where.find("IPv4 backends via eth1 (hubs/hub4)"), std::string::npos);
    EXPECT_EQ(problems[0].fix.substr(0, problems[0].fix.find(" (")),
              "ip rule add iif eth1 lookup 100 && ip route add local 0.0.0.0/0 dev lo table 100");
    EXPECT_EQ(problems[1].fix.substr(0, problems[1].fix.find(" (")),
              "ip -6 rule add iif eth1 lookup 100 && ip -6 route add local ::/0 dev lo table 100");
}

TEST(AuditRouting, MissingRuleReusesAnExistingLocalTable) {
    auto facts = recipe_in_place();
    facts.rules.clear();
    for (auto& r : facts.routes)
        if (r.table == "100") r.table = "7";
    auto problems = only(core::audit_transparent_routing(load(), facts), S::Problem);
    ASSERT_EQ(problems.size(), 2u) << dump(problems);
    EXPECT_EQ(problems[0].fix.substr(0, problems[0].fix.find(" (")),
              "ip rule add iif eth1 lookup 7");
}

TEST(AuditRouting, RuleWithoutLocalRouteSaysTheRoute) {
    auto facts = recipe_in_place();
    std::erase_if(facts.routes, [](const core::TableRoute& r) { return r.v6 && r.table == "100"; });
    auto problems = only(core::audit_transparent_routing(load(), facts), S::Problem);
    ASSERT_EQ(problems.size(), 1u) << dump(problems);
    EXPECT_NE(problems[0].what.find("table 100 has no local default route"), std::string::npos);
    EXPECT_EQ(problems[0].fix.substr(0, problems[0].fix.find(" (")),
              "ip -6 route add local ::/0 dev lo table 100");
}

TEST(AuditRouting, RuleForAnotherInterfaceDoesNotCount) {
    auto facts = recipe_in_place();
    facts.paths[0].dev = "eth2";
    auto problems = only(core::audit_transparent_routing(load(), facts), S::Problem);
    ASSERT_EQ(problems.size(), 1u) << dump(problems);
    EXPECT_EQ(problems[0].fix.substr(0, problems[0].fix.find(" (")),
              "ip rule add iif eth2 lookup 100");
}

TEST(AuditRouting, RuleIntoTheMainTableIsNotTheRecipe) {
    auto facts = recipe_in_place();
    for (auto& r : facts.rules)
        if (r.table == "100") r.table = "main";
    facts.routes.clear();
    auto problems = only(core::audit_transparent_routing(load(), facts), S::Problem);
    ASSERT_EQ(problems.size(), 2u) << dump(problems);
    // Never a local default route in main: a table of its own.
    EXPECT_EQ(problems[0].fix.substr(0, problems[0].fix.find(" (")),
              "ip rule add iif eth1 lookup 100 && ip route add local 0.0.0.0/0 dev lo table 100");
}

TEST(AuditRouting, FwmarkRuleNeedsANetfilterRuleMarkingTransparentSockets) {
    auto facts = recipe_in_place();
    for (auto& r : facts.rules)
        if (r.table == "100") r = {r.v6, "", 1u, "100"};
    // Unknown netfilter state: a note, not a problem.
    auto findings = core::audit_transparent_routing(load(), facts);
    EXPECT_TRUE(only(findings, S::Problem).empty()) << dump(findings);
    EXPECT_NE(dump(findings).find("could not be read"), std::string::npos) << dump(findings);
    // Known, and nothing marks: a problem saying the nft rule.
    facts.netfilter = "table inet filter {\n}\n";
    auto problems = only(core::audit_transparent_routing(load(), facts), S::Problem);
    ASSERT_EQ(problems.size(), 2u) << dump(problems);
    EXPECT_NE(problems[0].fix.find("socket transparent 1 meta mark set 1 accept"),
              std::string::npos);
    // The nft recipe in place.
    facts.netfilter =
        "table inet smtplb {\n\tchain prerouting {\n\t\tmeta l4proto tcp socket transparent 1 "
        "meta mark set 0x00000001 accept\n\t}\n}\n";
    findings = core::audit_transparent_routing(load(), facts);
    EXPECT_TRUE(only(findings, S::Problem).empty()) << dump(findings);
    EXPECT_TRUE(only(findings, S::Warning).empty()) << dump(findings);
}

TEST(AuditRouting, TransparentSocketMarksFromNftAndIptables) {
    EXPECT_EQ(
        core::transparent_socket_marks(
            "meta l4proto tcp socket transparent 1 meta mark set 0x00000002 accept\n"
            "-A PREROUTING -p tcp -m socket --transparent -j MARK --set-xmark 0x3/0xffffffff\n"
            "-A PREROUTING -p tcp -m socket --transparent -j MARK --set-mark 4\n"
            "-A PREROUTING -p tcp -j MARK --set-mark 5\n"
            "meta mark set 6\n"),
        (std::vector<std::uint32_t>{2, 3, 4}));
}

TEST(AuditRouting, LoopbackBackendsAndFailedLookupsAreWarnings) {
    auto facts = recipe_in_place();
    facts.paths[0].dev = "lo";
    facts.paths[1] = {"fd00:1::21", "", "", "RTNETLINK answers: Network is unreachable"};
    auto warnings = only(core::audit_transparent_routing(load(), facts), S::Warning);
    ASSERT_EQ(warnings.size(), 2u) << dump(warnings);
    EXPECT_NE(dump(warnings).find("on this host"), std::string::npos);
    EXPECT_NE(dump(warnings).find("Network is unreachable"), std::string::npos);
}

TEST(AuditRouting, NothingGatheredIsAWarning) {
    core::RoutingFacts facts;
    facts.error = "`ip -j rule show` failed: sh: 1: ip: not found";
    auto findings = core::audit_transparent_routing(load(), facts);
    ASSERT_EQ(findings.size(), 1u);
    EXPECT_EQ(findings[0].severity, S::Warning);
    EXPECT_NE(findings[0].what.find("ip: not found"), std::string::npos);
}

TEST(AuditRouting, TransparentListenerIsNotSaidToLoseTheClient) {
    for (const auto& f : core::audit_config(load()))
        EXPECT_EQ(f.where.find("client_identity"), std::string::npos) << f.what;
}
