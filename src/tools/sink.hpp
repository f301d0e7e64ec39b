#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "base/network.hpp"
#include "io/asio.hpp"
#include "proto/server_session.hpp"

namespace smtplb::tools {

namespace asio = io::asio;
using io::awaitable;
using io::tcp;

// A fault the built-in sink injects, e.g. "mail=452", "message=drop",
// "rcpt=delay:200ms", "greeting=421".
struct SinkFault {
    enum class Stage { Greeting, Mail, Rcpt, Data, Message };
    Stage stage = Stage::Mail;
    int code = 0;  // reply code to answer with; 0 = answer normally
    std::string enhanced;
    bool drop = false;  // close the connection instead of answering
    std::chrono::milliseconds delay{0};

    // Parses "STAGE=ACTION"; nothing on error (message in `error`).
    static std::optional<SinkFault> parse(const std::string& text, std::string& error);
};

struct SinkOptions {
    base::HostPort listen;
    std::string hostname = "sink.invalid";
    std::vector<SinkFault> faults;
    double fault_rate = 1.0;                  // probability that a fault applies
    std::string faults_unless_sender_domain;  // faults spare senders of this domain
    std::string record_path;                  // JSON line per message received
    bool xclient = true;
    bool esmtp = true;  // false: EHLO is refused, only HELO works
    // Postfix 3.7's smtpd (smtpd_authorized_xclient_hosts): XCLIENT is
    // offered to and accepted from authorised clients only, judged on the
    // current client (the connection's peer, then each XCLIENT ADDR), with
    // Postfix's replies, attribute checks, 2048-byte line_length_limit, and
    // a HELO name required before MAIL (smtpd_helo_required = yes).
    bool xclient_strict = false;
    std::vector<base::Cidr> xclient_authorized;  // strict; empty: 127.0.0.1/32
};

struct SinkStats {
    std::uint64_t connections = 0;
    std::uint64_t messages = 0;
    std::uint64_t recipients = 0;
    std::uint64_t bytes = 0;
    std::uint64_t faults = 0;
    std::string last_client;  // as the sink saw it: XCLIENT ADDR, else the peer
};

// A fast SMTP receiver for tests, the demo and benchmarks: accepts and
// discards mail (optionally recording each message), with injectable faults.
class Sink {
  public:
    Sink(asio::io_context& io, SinkOptions options);
    ~Sink();
    bool start(std::string& error);
    void stop();
    std::uint16_t port() const;
    const SinkStats& stats() const { return stats_; }
    const SinkOptions& options() const { return options_; }

  private:
    friend class SinkSession;
    awaitable<void> accept_loop();
    void record(const std::string& line);
    // Strict XCLIENT: whether this client address is authorised.
    bool authorized(const std::optional<base::IpAddress>& address) const;

    asio::io_context& io_;
    SinkOptions options_;
    proto::ServerSettings settings_;
    tcp::acceptor acceptor_;
    SinkStats stats_;
    std::FILE* record_ = nullptr;
    std::uint64_t random_state_ = 0x9E3779B97F4A7C15ull;
};

}  // namespace smtplb::tools
