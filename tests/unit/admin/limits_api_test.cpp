// The limits' visibility apart from HTTP: GET /api/v1/limits (listing, one
// key, bad queries), the status document's "limits", /metrics and the
// command line's tables, on a Balancer whose LimitSet the test drives.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>

#include "admin/api.hpp"
#include "admin/limits_api.hpp"
#include "admin/limits_text.hpp"
#include "admin/metrics.hpp"
#include "config/loader.hpp"

namespace smtplb {
namespace json = boost::json;

namespace {

const std::string kBase = R"([server]
hostname = "lb.test"
tracking_log = ""
state_dir = "/tmp"
admin = ""
[[listener]]
name = "internet"
bind = "127.0.0.1:0"
accepted_domains = ["example.net"]
pool = "p"
[[pool]]
name = "p"
health = { enabled = false }
[[pool.backend]]
name = "a"
address = "127.0.0.1:1"
[[limit]]
name = "conns"
key = "client_ip"
concurrent_connections = 2
)";

const std::string kPerSender = R"(
[[limit]]
name = "per-sender"
key = "sender"
messages = "10/1m"
burst = 5
)";

class LimitsApi : public ::testing::Test {
  protected:
    void SetUp() override { balancer = make(kBase + kPerSender); }

    std::unique_ptr<io::Balancer> make(const std::string& text,
                                       const io::Balancer* previous = nullptr) {
        auto loaded = config::load_string(text, "test");
        EXPECT_TRUE(loaded.config) << loaded.diagnostics.format("test");
        return std::make_unique<io::Balancer>(io, *loaded.config, nullptr, previous);
    }

    core::LimitSubject subject(const char* sender) {
        core::LimitSubject s;
        s.listener = "internet";
        s.client = base::IpAddress::parse("192.0.2.7");
        s.sender = sender;
        return s;
    }

    // Six messages from a@x.example: five pass, the sixth is refused.
    void over_the_limit() {
        auto& limits = balancer->limits();
        for (int i = 0; i < 6; ++i)
            last = limits
                       .check(core::LimitEvent::EndOfData, subject("A@X.example"),
                              balancer->clock().now())
                       .kind;
        connection = limits.check(core::LimitEvent::Connect, subject("a@x.example"),
                                  balancer->clock().now());
    }

    admin::ApiResponse get(const std::string& target) {
        return admin::handle_request(*balancer, "GET", target);
    }
    json::object get_json(const std::string& target) {
        auto r = get(target);
        EXPECT_EQ(r.status, 200) << target << ": " << r.body;
        return json::parse(r.body).as_object();
    }

    io::asio::io_context io{1};
    std::unique_ptr<io::Balancer> balancer;
    core::LimitVerdict::Kind last{};
    core::LimitVerdict connection;  // holds one concurrent connection
};

// The error of a refused request, checked to name what is wrong.
::testing::AssertionResult refused(const admin::ApiResponse& r, int status,
                                   const std::string& says) {
    auto error = std::string(json::parse(r.body).as_object().at("error").as_string());
    if (r.status == status && error.find(says) != std::string::npos)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << r.status << " " << error;
}

}  // namespace

TEST_F(LimitsApi, ListsEachLimitWithItsHitsKeysAndTheKeysNearestIt) {
    over_the_limit();
    ASSERT_EQ(last, core::LimitVerdict::Kind::Tempfail);
    auto doc = get_json("/api/v1/limits");
    EXPECT_EQ(doc.at("top").to_number<std::int64_t>(), 10);
    const auto& list = doc.at("limits").as_array();
    ASSERT_EQ(list.size(), 2u);
    const auto& conns = list[0].as_object();
    EXPECT_EQ(conns.at("name").as_string(), "conns");
    EXPECT_EQ(conns.at("summary").as_string(), "concurrent_connections 2 per client_ip, tempfail");
    EXPECT_EQ(conns.at("concurrency").to_number<std::int64_t>(), 2);
    const auto& held = conns.at("nearest").as_array().at(0).as_object();
    EXPECT_EQ(held.at("key").as_string(), "client_ip=192.0.2.7");
    EXPECT_EQ(held.at("in_use").to_number<std::int64_t>(), 1);

    const auto& sender = list[1].as_object();
    EXPECT_EQ(sender.at("summary").as_string(), "messages 10/1m burst 5 per sender, tempfail");
    EXPECT_EQ(sender.at("hits").at("tempfail").to_number<std::int64_t>(), 1);
    EXPECT_EQ(sender.at("hits").at("delay").to_number<std::int64_t>(), 0);
    EXPECT_EQ(sender.at("tracked_keys").to_number<std::int64_t>(), 1);
    EXPECT_EQ(sender.at("evictions").to_number<std::int64_t>(), 0);
    const auto& nearest = sender.at("nearest").as_array().at(0).as_object();
    EXPECT_EQ(nearest.at("key").as_string(), "sender=a@x.example");
    EXPECT_EQ(nearest.at("remaining").to_number<std::int64_t>(), 0);
    // 5 messages of 6 s each to recover, less the moments since.
    EXPECT_GT(nearest.at("reset_after_ms").to_number<std::int64_t>(), 20000);
    EXPECT_LE(nearest.at("reset_after_ms").to_number<std::int64_t>(), 30000);

    // One limit, one key at most.
    auto one = get_json("/api/v1/limits?limit=per-sender&top=1");
    ASSERT_EQ(one.at("limits").as_array().size(), 1u);
    EXPECT_EQ(one.at("limits").as_array()[0].at("name").as_string(), "per-sender");
}

TEST_F(LimitsApi, ShowsOneKeysStateUnderEachLimitKeyedByItsParts) {
    over_the_limit();
    // URL-encoded, as curl --data-urlencode sends it, in the case it was written.
    auto doc = get_json("/api/v1/limits?key=sender%3DA%40X.example");
    EXPECT_EQ(doc.at("key").as_string(), "sender=A@X.example");
    const auto& states = doc.at("limits").as_array();
    ASSERT_EQ(states.size(), 1u);
    const auto& s = states[0].as_object();
    EXPECT_EQ(s.at("limit").as_string(), "per-sender");
    EXPECT_EQ(s.at("key").as_string(), "sender=a@x.example");
    EXPECT_EQ(s.at("remaining").to_number<std::int64_t>(), 0);
    EXPECT_EQ(s.at("burst").to_number<std::int64_t>(), 5);
    EXPECT_TRUE(s.at("at_limit").as_bool());

    auto ip = get_json("/api/v1/limits?key=client_ip=192.0.2.7&limit=conns");
    const auto& c = ip.at("limits").as_array().at(0).as_object();
    EXPECT_EQ(c.at("in_use").to_number<std::int64_t>(), 1);
    EXPECT_EQ(c.at("concurrency").to_number<std::int64_t>(), 2);
    EXPECT_FALSE(c.at("at_limit").as_bool());

    // A key never seen: the whole burst left.
    auto fresh = get_json("/api/v1/limits?key=sender=b@x.example");
    EXPECT_EQ(fresh.at("limits").as_array()[0].at("remaining").to_number<std::int64_t>(), 5);
}

TEST_F(LimitsApi, ABadQueryIsA400ThatSaysWhatIsWrong) {
    EXPECT_TRUE(refused(get("/api/v1/limits?top=0"), 400, "top must be a number from 1 to 100"));
    EXPECT_TRUE(refused(get("/api/v1/limits?top=101"), 400, "from 1 to 100"));
    EXPECT_TRUE(refused(get("/api/v1/limits?top=ten"), 400, "from 1 to 100"));
    EXPECT_TRUE(refused(get("/api/v1/limits?keys=x"), 400, "unknown parameter \"keys\""));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=a&key=b"), 400, "\"key\" is given twice"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=sender=a%ZZ"), 400, "bad %-escape in the query"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key="), 400, "key: empty"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=helo=x"), 400, "\"helo\" is not a key part"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=a@x.example"), 400, "is not part=value"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=sender%3Da%25Z"), 400, "a bad %-escape in sender"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=sender=a|sender=b"), 400, "sender is given twice"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=client_ip=mx.example"), 400,
                        "client_ip must be an IP address"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=sender=a&top=3"), 400, "does not go with key"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=" + std::string(3000, 'x')), 400, "longer than"));
    EXPECT_TRUE(refused(get("/api/v1/limits?limit=nope"), 404, "no [[limit]] named \"nope\""));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=sender_domain=x.example"), 404,
                        "no limit is keyed by sender_domain (keyed by: client_ip, sender)"));
    EXPECT_TRUE(refused(get("/api/v1/limits?key=sender=a@x&limit=conns"), 404,
                        "no limit \"conns\" is keyed by sender"));
    EXPECT_TRUE(refused(admin::handle_request(*balancer, "POST", "/api/v1/limits"), 405, "GET"));
}

TEST_F(LimitsApi, TheStatusDocumentHasTheLimitsWithAFewKeysEach) {
    for (int i = 0; i < 8; ++i)
        balancer->limits().check(core::LimitEvent::EndOfData,
                                 subject(("s" + std::to_string(i) + "@x.example").c_str()),
                                 balancer->clock().now());
    auto doc = json::parse(admin::status_json(*balancer)).as_object();
    const auto& limits = doc.at("limits").as_array();
    ASSERT_EQ(limits.size(), 2u);
    EXPECT_EQ(limits[1].at("tracked_keys").to_number<std::int64_t>(), 8);
    EXPECT_EQ(limits[1].at("nearest").as_array().size(), admin::kStatusTop);
}

TEST_F(LimitsApi, MetricsCountHitsKeysAndEvictionsAndGoOnOverAReload) {
    over_the_limit();
    auto text = admin::metrics_text(*balancer);
    EXPECT_NE(text.find("# TYPE smtplb_limit_hits_total counter"), std::string::npos) << text;
    EXPECT_NE(text.find("smtplb_limit_hits_total{limit=\"per-sender\",action=\"tempfail\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("smtplb_limit_hits_total{limit=\"conns\",action=\"delay\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("smtplb_limit_keys{limit=\"per-sender\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("smtplb_limit_keys{limit=\"conns\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("smtplb_limit_evictions_total{limit=\"per-sender\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("smtplb_limit_table_full_total{limit=\"conns\"} 0\n"), std::string::npos);

    // A reload that changes the rate: a new LimitSet, the same counters.
    std::string changed = kPerSender;
    changed.replace(changed.find("10/1m"), 5, "20/1m");
    auto next = make(kBase + changed, balancer.get());
    ASSERT_NE(&next->limits(), &balancer->limits());
    auto after = admin::metrics_text(*next);
    EXPECT_NE(after.find("smtplb_limit_hits_total{limit=\"per-sender\",action=\"tempfail\"} 1\n"),
              std::string::npos)
        << after;
    EXPECT_NE(after.find("smtplb_limit_keys{limit=\"per-sender\"} 0\n"), std::string::npos);
}

TEST_F(LimitsApi, TheCommandLineTablesSayEachStateInWords) {
    over_the_limit();
    auto list = get_json("/api/v1/limits").at("limits").as_array();
    auto table = admin::format_limits(list);
    EXPECT_NE(table.find("LIMIT"), std::string::npos) << table;
    EXPECT_NE(table.find("per-sender                  1         0         1         0  messages "
                         "10/1m burst 5 per sender, tempfail\n"),
              std::string::npos)
        << table;
    EXPECT_NE(table.find("    sender=a@x.example  0 of 5 left, all back in "), std::string::npos)
        << table;
    EXPECT_NE(table.find("    client_ip=192.0.2.7  1 of 2 in use\n"), std::string::npos) << table;
    EXPECT_EQ(admin::format_limits(json::array()), "no [[limit]] is configured\n");

    auto key = get_json("/api/v1/limits?key=sender=a@x.example");
    auto states = admin::format_key_states(key);
    EXPECT_NE(states.find("per-sender          sender=a@x.example"), std::string::npos) << states;
    EXPECT_NE(states.find("0 of 5 left, all back in "), std::string::npos);
    EXPECT_NE(states.find("s (at the limit)\n"), std::string::npos);

    auto words = [](const char* state, const char* limit) {
        return admin::key_state_words(json::parse(state).as_object(),
                                      json::parse(limit).as_object());
    };
    EXPECT_EQ(words(R"({"remaining": 0, "reset_after_ms": 65001})", R"({"burst": 5})"),
              "0 of 5 left, all back in 1m 6s (at the limit)");
    EXPECT_EQ(words(R"({"remaining": 3, "reset_after_ms": 0})", R"({"burst": 5})"), "3 of 5 left");
    EXPECT_EQ(words(R"({"in_use": 3})", R"({"concurrency": 3})"), "3 of 3 in use (at the limit)");
    EXPECT_EQ(words(R"({"in_use": 1})", R"({})"), "1 of - in use");  // an older daemon's answer
}

}  // namespace smtplb
